-- exact_avg(x): an aggregate macro, the mean of a double column that is the same bits whatever
-- order the rows arrive in (see exact_sum: the terms are added exactly as decimals).
--   exact_avg(x) = exact_sum(x) / count(x), NULL when no row has a value
create or replace macro exact_avg(x) as sum(x::decimal(38, 18))::double / count(x)

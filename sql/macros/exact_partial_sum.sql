-- exact_partial_sum(x): an aggregate macro, exact_sum(x) kept as a decimal: partial sums of
-- groups of rows that add up, exactly and in any order, to the sum of all of them.
--   exact_partial_sum(x) = sum over rows of round(x, 18 decimals), as decimal(38, 18)
--   exact_sum of the rows = sum of their groups' exact_partial_sum, cast to double
create or replace macro exact_partial_sum(x) as sum(x::decimal(38, 18))

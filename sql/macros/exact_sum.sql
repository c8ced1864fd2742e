-- exact_sum(x): an aggregate macro, the sum of a double column that is the same bits whatever
-- order the threads deliver the rows in.
--   exact_sum(x) = sum over rows of round(x, 18 decimals), added exactly, then as a double
-- A plain sum() of doubles rounds after every addition, so its last bits depend on the order of
-- the rows, which changes with the thread count and the timing of a parallel query. Decimal
-- addition is exact (128-bit integers), so the order no longer matters. Terms are rounded to
-- 1e-18; |x| and the sum must stay below 1e20 (an error, not a wrong value, otherwise).
create or replace macro exact_sum(x) as sum(x::decimal(38, 18))::double

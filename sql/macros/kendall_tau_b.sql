-- kendall_tau_b(difference, reference_difference): an aggregate macro over one row per pair of
-- models (a, b): Kendall's tau-b between two orders of the same models, from the differences
-- value_a - value_b and reference_a - reference_b of each pair:
--   s = tie_sign(difference), f = tie_sign(reference_difference)   (within 1e-9: a tie, 0)
--   tau_b = sum of s * f / sqrt(sum of |s| * sum of |f|)
-- 1: both orders agree; -1: reversed; null when one side ties every pair (or no pairs).
-- The sums are over integers: exact, whatever the order.
create or replace macro kendall_tau_b(difference, reference_difference) as
sum(tie_sign(difference) * tie_sign(reference_difference))
/ nullif(
    sqrt(sum(abs(tie_sign(difference))) * sum(abs(tie_sign(reference_difference)))), 0
)

-- eval_paired: one row per ordered pair of models (model_a, model_b; a model with itself
-- included), split (tune, test or all), k and metric: is a better than b on the same users?
-- d_u = value of model_a - value of model_b for user u (eval_user_metrics), over the n users
-- both models have (eval_user_metrics gives every model the same users).
--   mean_diff        = sum of d_u / n  (= eval_metrics.value of a - that of b)
--   ci_low, ci_high  = 95% bootstrap percentile interval of the mean difference: the 2.5th
--                      and 97.5th percentiles (quantile_cont) over replicates r of
--                      sum of w_ru * d_u / sum of w_ru (the weights of eval_metrics_ci)
--   win_rate         = share of the n users with d_u > 1e-9; tie_rate = share with
--                      |d_u| <= 1e-9 (a tie is not a win; the loss rate is 1 - win_rate -
--                      tie_rate; 1e-9: equal values summed in another order differ in their
--                      last bits)
--   p_value          = two-sided sign-flip permutation test of mean d_u = 0, with the 1,000
--                      random sign vectors s_pu of int_resampling_weights (p = replicate):
--                      T_p = sum of s_pu * d_u, T = sum of d_u,
--                      p_value = (1 + #{p : |T_p| >= |T| - 1e-9}) / (1 + 1,000)
--                      (the +1 counts the observed signs; 1e-9 absorbs rounding, so a model
--                      against itself has p_value 1); smallest possible p_value: 1 / 1,001
--                      (n_permutations = 1,000: a p_value at 1 / (1 + n_permutations) means
--                      "< 0.001", the floor of the test, not a measured 0.001)
--   p_value_holm     = Holm's step-down adjustment over the family of one split, k and metric:
--                      the m unordered pairs of different models {a, b} (both orders get the
--                      same value; a model against itself gets 1). With the family's p-values
--                      sorted p_(1) <= ... <= p_(m):
--                      p_holm_(i) = min(1, max over j <= i of (m - j + 1) * p_(j))
--                      rejecting where p_value_holm <= 0.05 keeps the family-wise error rate
--                      at most 5%
-- The resampled sums are linear in d_u, so they are taken once per model (eval_resampled_sums)
-- and subtracted:
-- sum of w * d_u = sum of w * a_u - sum of w * b_u. That needs a and b to have every user of
-- the split; where one does not, ci_low, ci_high and p_value are null.
with

user_metrics as materialized (
    select * from eval_user_metrics
),

model_sums as materialized (
    select * from eval_resampled_sums
    where relation = 'eval_metrics'
),

-- Per pair and replicate: the resampled mean difference, the sign-flipped sum T_p and T.
replicate_diffs as (
    select
        sums_a.model as model_a,
        sums_b.model as model_b,
        sums_a.split,
        sums_a.k,
        sums_a.metric,
        (sums_a.weighted_sum - sums_b.weighted_sum) / nullif(sums_a.weight_sum, 0)
            as mean_diff,
        sums_a.signed_sum - sums_b.signed_sum as signed_diff_sum,
        sums_a.value_sum - sums_b.value_sum as diff_sum
    from model_sums as sums_a
    inner join model_sums as sums_b
        on
            sums_a.split = sums_b.split
            and sums_a.k = sums_b.k
            and sums_a.metric = sums_b.metric
            and sums_a.replicate = sums_b.replicate
),

resampled as (
    select
        model_a,
        model_b,
        split,
        k,
        metric,
        quantile_cont(mean_diff, [0.025, 0.975]) as ci,
        (1 + count(*) filter (where abs(signed_diff_sum) >= abs(diff_sum) - 1e-9))
        / (1 + count(*)) as p_value,
        count(*) as n_permutations
    from replicate_diffs
    group by model_a, model_b, split, k, metric
),

-- Holm over the unordered pairs a < b of each family, in order of p_value
holm_steps as (
    select
        model_a,
        model_b,
        split,
        k,
        metric,
        row_number() over ordered_family as step,
        (count(*) over family - row_number() over ordered_family + 1) * p_value as step_value
    from resampled
    where model_a < model_b
    window
        family as (partition by split, k, metric),
        ordered_family as (partition by split, k, metric order by p_value, model_a, model_b)
),

holm as (
    select
        model_a,
        model_b,
        split,
        k,
        metric,
        least(
            1.0,
            max(step_value) over (
                partition by split, k, metric
                order by step
                rows between unbounded preceding and current row
            )
        ) as p_value_holm
    from holm_steps
),

-- Per pair: the observed differences, user by user.
user_diffs as (
    select
        model_a.model as model_a,
        model_b.model as model_b,
        model_a.split,
        model_a.k,
        model_a.metric,
        model_a.user_id,
        model_a.value - model_b.value as diff
    from user_metrics as model_a
    inner join user_metrics as model_b
        on
            model_a.user_id = model_b.user_id
            and model_a.split = model_b.split
            and model_a.k = model_b.k
            and model_a.metric = model_b.metric
),

observed as (
    select
        model_a,
        model_b,
        coalesce(split, 'all') as split,
        k,
        metric,
        exact_avg(diff) as mean_diff,
        avg((diff > 1e-9)::integer) as win_rate,
        avg((abs(diff) <= 1e-9)::integer) as tie_rate,
        count(*) as n_users
    from user_diffs
    group by
        grouping sets ((model_a, model_b, split, k, metric), (model_a, model_b, k, metric))
),

final as (
    select
        observed.model_a,
        observed.model_b,
        observed.split,
        observed.k,
        observed.metric,
        observed.mean_diff,
        resampled.ci[1] as ci_low,
        resampled.ci[2] as ci_high,
        observed.win_rate,
        observed.tie_rate,
        resampled.p_value,
        case
            when observed.model_a = observed.model_b then 1.0
            else coalesce(holm.p_value_holm, holm_reversed.p_value_holm)
        end as p_value_holm,
        resampled.n_permutations,
        observed.n_users
    from observed
    left join resampled
        on
            observed.model_a = resampled.model_a
            and observed.model_b = resampled.model_b
            and observed.split = resampled.split
            and observed.k = resampled.k
            and observed.metric = resampled.metric
    left join holm
        on
            observed.model_a = holm.model_a
            and observed.model_b = holm.model_b
            and observed.split = holm.split
            and observed.k = holm.k
            and observed.metric = holm.metric
    left join holm as holm_reversed
        on
            observed.model_a = holm_reversed.model_b
            and observed.model_b = holm_reversed.model_a
            and observed.split = holm_reversed.split
            and observed.k = holm_reversed.k
            and observed.metric = holm_reversed.metric
)

select * from final

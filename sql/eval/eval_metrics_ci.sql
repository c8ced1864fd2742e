-- eval_metrics_ci: one row per model, split (tune, test or all), k and metric: eval_metrics'
-- mean with a 95% bootstrap percentile interval over users.
--   value            = mean over the split's users of eval_user_metrics.value v_u
--                      (= eval_metrics.value)
--   replicate mean   = sum over users of w_ru * v_u / sum over users of w_ru, with w_ru the
--                      Poisson(1) weight of user u in replicate r (eval_resampled_sums)
--   ci_low, ci_high  = the 2.5th and 97.5th percentiles of the replicate means (quantile_cont:
--                      linear interpolation between order statistics); a replicate whose
--                      weights are all 0 has no mean and is skipped
--   n_users          = users in the mean; n_replicates = replicates with a mean
-- The weighted sums are taken per split and added up for 'all', so 'all' resamples the same
-- users with the same weights as tune and test. A series that lacks some user of its split
-- (eval_user_metrics never does) gets no interval rather than a misaligned one.
with

user_metrics as materialized (
    select * from eval_user_metrics
),

resampled_sums as (
    select * from eval_resampled_sums
),

full_data as (
    select
        model,
        coalesce(split, 'all') as split,
        k,
        metric,
        avg(value) as value,
        count(*) as n_users
    from user_metrics
    group by grouping sets ((model, split, k, metric), (model, k, metric))
),

-- a replicate whose weights are all 0 has no mean
replicate_means as (
    select
        model,
        split,
        k,
        metric,
        replicate,
        weighted_sum / nullif(weight_sum, 0) as mean_value
    from resampled_sums
),

intervals as (
    select
        model,
        split,
        k,
        metric,
        quantile_cont(mean_value, [0.025, 0.975]) as ci,
        count(mean_value) as n_replicates
    from replicate_means
    group by model, split, k, metric
),

final as (
    select
        full_data.model,
        full_data.split,
        full_data.k,
        full_data.metric,
        full_data.value,
        intervals.ci[1] as ci_low,
        intervals.ci[2] as ci_high,
        full_data.n_users,
        intervals.n_replicates
    from full_data
    left join intervals
        on
            full_data.model = intervals.model
            and full_data.split = intervals.split
            and full_data.k = intervals.k
            and full_data.metric = intervals.metric
)

select * from final

-- eval_metrics_ci: one row per model, split (tune, test or all), k and metric: eval_metrics'
-- mean with a 95% bootstrap percentile interval over users, taken from eval_intervals (the
-- project's one bootstrap; formulas there):
--   value            = mean over the split's users of eval_user_metrics.value
--                      (= eval_metrics.value)
--   ci_low, ci_high  = 2.5th and 97.5th percentiles of the 1,000 Poisson(1)-weighted means
--   n_users          = users in the mean; n_replicates = replicates with a mean
-- 'all' resamples the same users with the same weights as tune and test.
with

intervals as (
    select * from eval_intervals
),

final as (
    select
        model,
        split,
        k,
        metric,
        value,
        ci_low,
        ci_high,
        n_users,
        n_replicates
    from intervals
    where relation = 'eval_metrics'
)

select * from final

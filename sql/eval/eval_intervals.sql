-- eval_intervals: one row per series of eval_user_values (relation, model, split,
-- segment_kind, segment, k, metric): the mean over users with its 95% bootstrap percentile
-- interval. Every interval of the project comes from here (eval_metrics_ci,
-- eval_segment_metrics, eval_beyond_accuracy; exposure-study runs this file for the temporal
-- split).
--   value            = mean over the series' users of v_u = value_sum / n_users; n_users =
--                      how many (split 'all': over the tune and test users together)
--   replicate mean   = weighted_sum / weight_sum = sum of w_ru * v_u / sum of w_ru, with w_ru
--                      the Poisson(1) weight of user u in replicate r (eval_resampled_sums)
--   ci_low, ci_high  = the 2.5th and 97.5th percentiles of the replicate means (quantile_cont:
--                      linear interpolation between order statistics); a replicate whose
--                      weights are all 0 has no mean and is skipped
--   n_replicates     = replicates with a mean
-- Everything comes from the sums (value = value_sum / n_users), so eval_user_values is read
-- once. A series that lacks some user of its cell has no sums (eval_resampled_sums) and so no
-- row here, rather than a misaligned interval; eval_user_metrics never lacks one.
with

resampled_sums as (
    select * from eval_resampled_sums
),

final as (
    select
        relation,
        model,
        split,
        segment_kind,
        segment,
        k,
        metric,
        any_value(value_sum) / any_value(n_users) as value,
        quantile_cont(weighted_sum / nullif(weight_sum, 0), [0.025, 0.975])[1] as ci_low,
        quantile_cont(weighted_sum / nullif(weight_sum, 0), [0.025, 0.975])[2] as ci_high,
        any_value(n_users) as n_users,
        count(weighted_sum / nullif(weight_sum, 0)) as n_replicates
    from resampled_sums
    group by all
)

select * from final

-- eval_intervals: one row per series of eval_user_values (relation, model, split,
-- segment_kind, segment, k, metric): the mean over users with its 95% bootstrap percentile
-- interval. Every interval of the project comes from here (eval_metrics_ci,
-- eval_segment_metrics, eval_beyond_accuracy; exposure-study runs this file for the temporal
-- split).
--   value            = mean over the series' users of v_u; n_users = how many
--                      (split 'all': over the tune and test users together)
--   replicate mean   = weighted_sum / weight_sum = sum of w_ru * v_u / sum of w_ru, with w_ru
--                      the Poisson(1) weight of user u in replicate r (eval_resampled_sums)
--   ci_low, ci_high  = the 2.5th and 97.5th percentiles of the replicate means (quantile_cont:
--                      linear interpolation between order statistics); a replicate whose
--                      weights are all 0 has no mean and is skipped
--   n_replicates     = replicates with a mean
-- A series whose resampled sums do not cover all its users (it lacks some user of its cell)
-- gets no interval rather than a misaligned one.
with

user_values as (
    select * from eval_user_values
),

resampled_sums as (
    select * from eval_resampled_sums
),

strata_values as (
    select
        relation,
        model,
        split,
        segment_kind,
        segment,
        k,
        metric,
        sum(value) as value_sum,
        count(*) as n_users
    from user_values
    group by all
),

full_data as (
    select * from strata_values
    union all
    select
        relation,
        model,
        'all' as split,
        segment_kind,
        segment,
        k,
        metric,
        sum(value_sum) as value_sum,
        sum(n_users) as n_users
    from strata_values
    where split in ('tune', 'test')
    group by all
),

intervals as (
    select
        relation,
        model,
        split,
        segment_kind,
        segment,
        k,
        metric,
        quantile_cont(weighted_sum / nullif(weight_sum, 0), [0.025, 0.975]) as ci,
        count(weighted_sum / nullif(weight_sum, 0)) as n_replicates,
        any_value(n_users) as n_users
    from resampled_sums
    group by all
),

final as (
    select
        full_data.relation,
        full_data.model,
        full_data.split,
        full_data.segment_kind,
        full_data.segment,
        full_data.k,
        full_data.metric,
        full_data.value_sum / full_data.n_users as value,
        intervals.ci[1] as ci_low,
        intervals.ci[2] as ci_high,
        full_data.n_users,
        intervals.n_replicates
    from full_data
    left join intervals
        on
            full_data.relation = intervals.relation
            and full_data.model = intervals.model
            and full_data.split = intervals.split
            and full_data.segment_kind = intervals.segment_kind
            and full_data.segment = intervals.segment
            and full_data.k = intervals.k
            and full_data.metric = intervals.metric
            and full_data.n_users = intervals.n_users
)

select * from final

-- eval_segment_metrics: one row per model, split (tune, test or all), segment kind, segment,
-- k and metric: eval_metrics within groups of users (eval_user_segments), with the bootstrap
-- interval of eval_intervals (the project's one bootstrap; formulas there).
--   value           = mean of eval_user_metrics.value over the segment's users in the split
--   ci_low, ci_high = its 95% bootstrap percentile interval over those users
--   n_users         = how many (over the segments of one kind they add up to
--                     eval_metrics.n_users)
--   segment_order   = where the segment sorts (1 = the least active; eval_user_segments)
--   is_small        = n_users below 20 (a constant of this file): too
--                     few users for the mean to say much; shown apart, not as an equal
-- Segment kinds (eval_user_segments): user_active_degree, the profile field ('unknown' when
-- missing), and activity_quartile, quarters of the small-matrix users by training views.
with

intervals as (
    select * from eval_intervals
),

user_segments as (
    select * from eval_user_segments
),

segment_orders as (
    select distinct
        segment_kind,
        segment,
        segment_order
    from user_segments
),

final as (
    select
        intervals.model,
        intervals.split,
        intervals.segment_kind,
        intervals.segment,
        intervals.k,
        intervals.metric,
        intervals.value,
        intervals.ci_low,
        intervals.ci_high,
        intervals.n_users,
        segment_orders.segment_order,
        intervals.n_users < 20 as is_small
    from intervals
    inner join segment_orders
        on
            intervals.segment_kind = segment_orders.segment_kind
            and intervals.segment = segment_orders.segment
    where intervals.relation = 'eval_segment_metrics'
)

select * from final

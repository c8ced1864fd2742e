-- eval_segment_metrics: one row per model, split (tune, test or all), segment kind, segment,
-- k and metric: eval_metrics within groups of users. value = mean of eval_user_metrics.value
-- over the segment's users in the split; n_users = how many (over the segments of one kind
-- they add up to eval_metrics.n_users). Segment kinds:
--   user_active_degree : the user's profile field (user_features.csv), 'unknown' when missing
--   activity_quartile  : quartile of training views (feat_user_activity.n_views, 0 for a user
--                        without any) among all small-matrix users, 4 equal-count groups in
--                        order of n_views (ties broken by user_id); segment 'q1: A-B views'
--                        is the least active quarter, viewing A to B videos in training
with

user_metrics as (
    select * from eval_user_metrics
),

user_relevance as (
    select * from eval_user_relevance
),

activity as (
    select * from feat_user_activity
),

small_users as (
    select
        user_relevance.user_id,
        coalesce(activity.n_views, 0) as n_views,
        coalesce(activity.user_active_degree, 'unknown') as user_active_degree,
        ntile(4) over (
            order by coalesce(activity.n_views, 0), user_relevance.user_id
        ) as activity_quartile
    from user_relevance
    left join activity on user_relevance.user_id = activity.user_id
),

quartile_labels as (
    select
        activity_quartile,
        'q' || activity_quartile::varchar || ': ' || min(n_views)::varchar || '-'
        || max(n_views)::varchar || ' views' as segment
    from small_users
    group by activity_quartile
),

segments as (
    select
        user_id,
        'user_active_degree' as segment_kind,
        user_active_degree as segment
    from small_users
    union all
    select
        small_users.user_id,
        'activity_quartile' as segment_kind,
        quartile_labels.segment
    from small_users
    inner join quartile_labels on small_users.activity_quartile = quartile_labels.activity_quartile
),

final as (
    select
        user_metrics.model,
        coalesce(user_metrics.split, 'all') as split,
        segments.segment_kind,
        segments.segment,
        user_metrics.k,
        user_metrics.metric,
        avg(user_metrics.value) as value,
        count(*) as n_users
    from user_metrics
    inner join segments on user_metrics.user_id = segments.user_id
    group by grouping sets (
        (
            user_metrics.model,
            user_metrics.split,
            segments.segment_kind,
            segments.segment,
            user_metrics.k,
            user_metrics.metric
        ),
        (
            user_metrics.model,
            segments.segment_kind,
            segments.segment,
            user_metrics.k,
            user_metrics.metric
        )
    )
)

select * from final

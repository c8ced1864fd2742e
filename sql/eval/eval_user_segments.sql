-- eval_user_segments: one row per segment kind and small-matrix user:
-- the user's segment and where the segment sorts (segment_order, 1 = the least active).
--   user_active_degree : the user's profile field (user_features.csv), 'unknown' when missing;
--                        order low_active, middle_active, high_active, full_active, any
--                        other value, then unknown / UNKNOWN
--   activity_quartile  : quartile of training views (feat_user_activity.n_views, 0 for a user
--                        without any) among all small-matrix users, 4 equal-count
--                        groups in order of n_views (ties broken by user_id);
--                        segment 'q1: A-B views' is the least active quarter, viewing A to B
--                        videos in training
with

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

final as (
    select
        'user_active_degree' as segment_kind,
        user_id,
        user_active_degree as segment,
        case lower(user_active_degree)
            when 'low_active' then 1
            when 'middle_active' then 2
            when 'high_active' then 3
            when 'full_active' then 4
            when 'unknown' then 6
            else 5
        end as segment_order
    from small_users
    union all
    select
        'activity_quartile' as segment_kind,
        small_users.user_id,
        quartile_labels.segment,
        small_users.activity_quartile as segment_order
    from small_users
    inner join quartile_labels on small_users.activity_quartile = quartile_labels.activity_quartile
)

select * from final

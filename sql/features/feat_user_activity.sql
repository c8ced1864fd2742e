-- feat_user_activity: one row per big-matrix user: training activity and profile features.
-- n_active_days counts distinct local dates of the user's training views.
with

users as (
    select * from int_user_index
),

train_events as (
    select * from int_train_events
),

profiles as (
    select * from stg_user_features
),

train_pairs as (
    select * from int_train_interactions
),

-- one row per user and day first: counting distinct days directly is far slower
per_user_day as (
    select
        user_id,
        event_at::date as view_date,
        count(*) as n_views,
        exact_sum(watch_ratio) as watch_ratio_sum,
        min(event_at) as first_view_at,
        max(event_at) as last_view_at
    from train_events
    group by all
),

per_user as (
    select
        user_id,
        sum(n_views)::bigint as n_views,
        count(view_date) as n_active_days,
        exact_sum(watch_ratio_sum) / sum(n_views) as mean_watch_ratio,
        min(first_view_at) as first_view_at,
        max(last_view_at) as last_view_at
    from per_user_day
    group by all
),

videos_per_user as (
    select
        user_id,
        count(*) as n_videos
    from train_pairs
    group by all
),

final as (
    select
        users.user_id,
        coalesce(per_user.n_views, 0) as n_views,
        coalesce(videos_per_user.n_videos, 0) as n_videos,
        coalesce(per_user.n_active_days, 0) as n_active_days,
        per_user.mean_watch_ratio,
        per_user.first_view_at,
        per_user.last_view_at,
        profiles.user_active_degree,
        profiles.is_video_author,
        profiles.is_live_streamer,
        profiles.n_register_days
    from users
    left join per_user on users.user_id = per_user.user_id
    left join videos_per_user on users.user_id = videos_per_user.user_id
    left join profiles on users.user_id = profiles.user_id
)

select * from final

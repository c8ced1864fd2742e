-- similar_by_coviews: one row per video most like a list of videos by who watched them in
-- training (item neighbours from int_train_interactions), for models without item factors.
-- Reads the variables api_video_ids (the list) and api_n.
--   sim(v, h) = |U_v and U_h| / sqrt(|U_v| |U_h|), U_x = the training users of video x
--               (the cosine of the binary user columns)
--   score(v)  = mean over the listed videos h of sim(v, h)
-- The listed videos themselves are left out. Every other scored video is a row; the API keeps
-- the best api_n with their captions (sql/api/similar_videos.sql).
with

interactions as (
    select * from int_train_interactions
),

video_users as (
    select
        interactions.video_id,
        count(*) as n_users
    from interactions
    group by interactions.video_id
),

history_views as (
    select
        interactions.user_id,
        interactions.video_id as history_video_id
    from interactions
    where list_contains(getvariable('api_video_ids'), interactions.video_id)
),

co_views as (
    select
        interactions.video_id,
        history_views.history_video_id,
        count(*) as n_common_users
    from history_views
    inner join interactions on history_views.user_id = interactions.user_id
    where not list_contains(getvariable('api_video_ids'), interactions.video_id)
    group by interactions.video_id, history_views.history_video_id
),

final as (
    select
        co_views.video_id,
        exact_sum(co_views.n_common_users / sqrt(video_users.n_users * history_users.n_users))
        / len(list_distinct(getvariable('api_video_ids'))) as score
    from co_views
    inner join video_users on co_views.video_id = video_users.video_id
    inner join video_users as history_users
        on co_views.history_video_id = history_users.video_id
    group by co_views.video_id
)

select * from final

-- int_leak_pairs: one row per (user, video) pair present in both matrices.
-- Such a pair would leak the test label into training: it is removed from training and reported.
-- Only big-matrix events of a small-matrix user on a small-matrix video can be one: those are
-- picked first (two small lookups), then matched on the pair.
with

big_events as (
    select * from int_big_matrix_events
),

small_events as (
    select * from int_small_matrix_events
),

small_users as (
    select distinct user_id from small_events
),

small_videos as (
    select distinct video_id from small_events
),

suspects as (
    select
        user_id,
        video_id
    from big_events
    where
        user_id in (select small_users.user_id from small_users)
        and video_id in (select small_videos.video_id from small_videos)
),

final as (
    select
        user_id,
        video_id,
        count(*) as n_big_events
    from suspects
    where
        exists (
            select 1
            from small_events
            where
                small_events.user_id = suspects.user_id
                and small_events.video_id = suspects.video_id
        )
    group by all
)

select * from final

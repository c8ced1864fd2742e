-- int_small_matrix_events: one row per distinct view event of the small matrix.
-- Duplicate log rows (equal on user, video, play and video duration, timestamp and watch ratio)
-- are dropped; the log partition date is not an event field (KUAIREC.md): log_date is the
-- earliest and last_log_date the latest it was filed under.
-- Re-watches (same pair, another timestamp) are distinct events and stay.
with

views as (
    select * from stg_small_matrix
),

final as (
    select
        user_id,
        video_id,
        play_duration_ms,
        video_duration_ms,
        event_unix_s,
        watch_ratio,
        min(event_at) as event_at,
        min(log_date) as log_date,
        count(*) as n_log_rows,
        max(log_date) as last_log_date
    from views
    group by all
)

select * from final

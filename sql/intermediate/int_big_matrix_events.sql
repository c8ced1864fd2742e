-- int_big_matrix_events: one row per distinct view event of the big matrix.
-- Duplicate log rows (equal on user, video, play and video duration, timestamp and watch ratio)
-- are dropped; the log partition date is not an event field (in the real big matrix it
-- disagrees with the event's local date in about 0.1% of rows, and about 2.2k events were filed
-- under two dates): log_date is the earliest and last_log_date the latest it was filed under
-- (null when not a valid date).
-- n_log_rows counts the data lines behind the event: their sum is the file's row count.
-- Re-watches (same pair, another timestamp) are distinct events and stay.
with

views as (
    select * from stg_big_matrix
),

events as (
    select
        user_id,
        video_id,
        play_duration_ms,
        video_duration_ms,
        event_unix_s,
        watch_ratio,
        min(event_at) as event_at,
        min(log_yyyymmdd) as first_yyyymmdd,
        max(log_yyyymmdd) as last_yyyymmdd,
        count(*) as n_log_rows
    from views
    group by all
),

final as (
    select
        user_id,
        video_id,
        play_duration_ms,
        video_duration_ms,
        event_unix_s,
        watch_ratio,
        event_at,
        try(make_date(first_yyyymmdd // 10000, first_yyyymmdd // 100 % 100, first_yyyymmdd % 100))
            as log_date,
        n_log_rows,
        try(make_date(last_yyyymmdd // 10000, last_yyyymmdd // 100 % 100, last_yyyymmdd % 100))
            as last_log_date
    from events
)

select * from final

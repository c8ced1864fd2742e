-- stg_big_matrix: one row per data line of big_matrix.csv (duplicates included), typed.
-- time, date and timestamp are empty on some small-matrix rows: they stay null.
with

source as (
    select * from src_big_matrix
),

final as (
    select
        user_id,
        video_id,
        play_duration::bigint as play_duration_ms,
        video_duration::bigint as video_duration_ms,
        time as event_at,
        try_strptime(date::bigint::varchar, '%Y%m%d')::date as log_date,
        timestamp as event_unix_s,
        watch_ratio
    from source
)

select * from final

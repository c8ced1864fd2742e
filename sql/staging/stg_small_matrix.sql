-- stg_small_matrix: one row per data line of small_matrix.csv (duplicates included), typed.
-- materialized: ephemeral
-- Not stored: int_small_matrix_events types and deduplicates the file in one pass.
-- log_yyyymmdd is the date column as the integer it holds (20200705); time, date and timestamp
-- are empty on some small-matrix rows: they stay null.
with

source as (
    select * from src_small_matrix
),

final as (
    select
        user_id,
        video_id,
        play_duration::bigint as play_duration_ms,
        video_duration::bigint as video_duration_ms,
        time as event_at,
        date::integer as log_yyyymmdd,
        timestamp as event_unix_s,
        watch_ratio
    from source
)

select * from final

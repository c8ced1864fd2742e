-- int_train_events: one row per training view event: the deduplicated big matrix minus leak pairs.
-- materialized: view
-- A view: stored, it would copy int_big_matrix_events (leak pairs are none on KuaiRec).
with

big_events as (
    select * from int_big_matrix_events
),

leak_pairs as (
    select * from int_leak_pairs
),

final as (
    select
        big_events.user_id,
        big_events.video_id,
        big_events.play_duration_ms,
        big_events.video_duration_ms,
        big_events.event_unix_s,
        big_events.watch_ratio,
        big_events.event_at,
        big_events.log_date,
        big_events.n_log_rows,
        big_events.last_log_date
    from big_events
    where not exists (
        select 1
        from leak_pairs
        where
            leak_pairs.user_id = big_events.user_id
            and leak_pairs.video_id = big_events.video_id
    )
)

select * from final

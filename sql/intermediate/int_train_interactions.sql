-- int_train_interactions: one row per (user, video) pair of training, re-watches aggregated.
-- confidence = 1 + alpha * ln(1 + sum over the pair's views of min(watch_ratio, cap)),
-- alpha = confidence_alpha and cap = watch_ratio_cap (build parameters, see build_info).
-- The cap keeps a few 500x re-plays from dominating; the log damps heavy re-watching.
-- Sums run over decimal(18, 9): parallel aggregation then gives the same bits every build.
with

train_events as (
    select * from int_train_events
),

final as (
    select
        user_id,
        video_id,
        count(*) as n_views,
        max(watch_ratio) as max_watch_ratio,
        sum(least(greatest(watch_ratio, 0), getvariable('watch_ratio_cap'))::decimal(18, 9))
        ::double as capped_watch_ratio_sum,
        max(event_at) as last_view_at,
        1 + getvariable('confidence_alpha') * ln(1 + capped_watch_ratio_sum) as confidence
    from train_events
    group by all
)

select * from final

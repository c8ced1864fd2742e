-- int_label_buckets: one row per video-duration bucket of the duration-debiased label, fitted on
-- training views only. Buckets are equal-count quantiles of training views' video duration
-- (label_duration_buckets of them); ratio_threshold is the label_quantile quantile of those
-- views' watch_ratio. A view is relevant when its watch_ratio is above its bucket's threshold.
with

train_events as (
    select * from int_train_events
),

bucketed as (
    select
        video_duration_ms,
        watch_ratio,
        ntile(getvariable('label_duration_buckets')::integer) over (
            order by video_duration_ms
        ) as duration_bucket
    from train_events
),

final as (
    select
        duration_bucket,
        min(video_duration_ms) as min_duration_ms,
        max(video_duration_ms) as max_duration_ms,
        count(*) as n_train_views,
        quantile_cont(watch_ratio, getvariable('label_quantile')) as ratio_threshold
    from bucketed
    group by all
)

select * from final

-- int_train_duration_thresholds: one row per distinct video duration of the training views: the
-- duration bucket of int_label_buckets it falls in (from_duration_ms <= duration <
-- to_duration_ms) and relevance_threshold, the watch_ratio a view of that length must exceed to
-- count as engaged: the test label's rule applied to training views (label 'ratio':
-- label_threshold; label 'debiased': the bucket's ratio_threshold).
-- Models flag engaged training views with an equality join on video_duration_ms.
with

train_events as (
    select * from int_train_events
),

buckets as (
    select * from int_label_buckets
),

durations as (
    select distinct video_duration_ms
    from train_events
    where video_duration_ms is not null
),

final as (
    select
        durations.video_duration_ms,
        buckets.duration_bucket,
        case getvariable('label')
            when 'ratio' then getvariable('label_threshold')
            else buckets.ratio_threshold
        end as relevance_threshold
    from durations
    inner join buckets
        on
            durations.video_duration_ms >= buckets.from_duration_ms
            and (
                durations.video_duration_ms < buckets.to_duration_ms
                or buckets.to_duration_ms is null
            )
)

select * from final

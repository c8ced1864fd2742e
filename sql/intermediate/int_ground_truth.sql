-- int_ground_truth: one row per (user, video) pair of the small matrix, labelled and split.
-- watch_ratio is the pair's largest over its views (a few pairs have more than one).
-- label 'ratio': relevant when watch_ratio > label_threshold.
-- label 'debiased': relevant when watch_ratio > ratio_threshold of the video's duration bucket
-- (int_label_buckets: the bucket with the largest from_duration_ms not above the video's
-- duration; a duration below every bucket takes the first).
-- split: 'tune' when the first 8 hex digits of md5(user_id) mod 100 < tune_percent, else 'test'.
with

small_events as (
    select * from int_small_matrix_events
),

buckets as (
    select * from int_label_buckets
),

pairs as (
    select
        user_id,
        video_id,
        max(video_duration_ms) as video_duration_ms,
        max(watch_ratio) as watch_ratio,
        count(*) as n_views
    from small_events
    group by all
),

first_bucket as (
    select min(duration_bucket) as duration_bucket from buckets
),

-- the bucket of each distinct duration (a few thousand), then of each pair by equality
durations as (
    select distinct video_duration_ms from pairs
),

duration_buckets as (
    select
        durations.video_duration_ms,
        max(buckets.duration_bucket) as duration_bucket
    from durations
    inner join buckets on durations.video_duration_ms >= buckets.from_duration_ms
    group by all
),

user_splits as (
    select
        user_id,
        case
            when
                ('0x' || left(md5(user_id::varchar), 8))::bigint % 100
                < getvariable('tune_percent')
                then 'tune'
            else 'test'
        end as split
    from (select distinct user_id from pairs) as users
),

final as (
    select
        pairs.user_id,
        pairs.video_id,
        pairs.watch_ratio,
        pairs.video_duration_ms,
        pairs.n_views,
        case getvariable('label')
            when 'ratio' then getvariable('label_threshold')
            else buckets.ratio_threshold
        end as relevance_threshold,
        coalesce(pairs.watch_ratio > relevance_threshold, false) as is_relevant,
        user_splits.split
    from pairs
    cross join first_bucket
    inner join user_splits on pairs.user_id = user_splits.user_id
    left join duration_buckets on pairs.video_duration_ms = duration_buckets.video_duration_ms
    left join buckets
        on
            coalesce(duration_buckets.duration_bucket, first_bucket.duration_bucket)
            = buckets.duration_bucket
)

select * from final

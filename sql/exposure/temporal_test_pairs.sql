-- temporal_test_pairs: one row per (user, video) pair viewed in the temporal test period (the
-- big-matrix views at or after temporal_cutoff, temporal_test_events) that the user had not
-- viewed before it (int_train_interactions, here the earlier views only): the usual sparse
-- test set, labelled like the small matrix (int_ground_truth):
--   watch_ratio = the pair's largest over its test views
--   label 'ratio'   : relevant when watch_ratio > label_threshold
--   label 'debiased': relevant when watch_ratio > ratio_threshold of the video's duration
--                     bucket (int_label_buckets, here fitted on the earlier views)
with

test_events as (
    select * from temporal_test_events
),

train_pairs as (
    select * from int_train_interactions
),

buckets as (
    select * from int_label_buckets
),

pairs as (
    select
        user_id,
        video_id,
        max(video_duration_ms) as video_duration_ms,
        max(watch_ratio) as watch_ratio
    from test_events
    group by all
),

new_pairs as (
    select pairs.*
    from pairs
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = pairs.user_id
            and train_pairs.video_id = pairs.video_id
    )
),

first_bucket as (
    select min(duration_bucket) as duration_bucket from buckets
),

pair_buckets as (
    select
        new_pairs.user_id,
        new_pairs.video_id,
        coalesce(max(buckets.duration_bucket), any_value(first_bucket.duration_bucket))
            as duration_bucket
    from new_pairs
    cross join first_bucket
    left join buckets on new_pairs.video_duration_ms >= buckets.from_duration_ms
    group by all
),

final as (
    select
        new_pairs.user_id,
        new_pairs.video_id,
        new_pairs.watch_ratio,
        case getvariable('label')
            when 'ratio' then getvariable('label_threshold')
            else buckets.ratio_threshold
        end as relevance_threshold,
        coalesce(new_pairs.watch_ratio > relevance_threshold, false) as is_relevant
    from new_pairs
    inner join pair_buckets
        on
            new_pairs.user_id = pair_buckets.user_id
            and new_pairs.video_id = pair_buckets.video_id
    left join buckets on pair_buckets.duration_bucket = buckets.duration_bucket
)

select * from final

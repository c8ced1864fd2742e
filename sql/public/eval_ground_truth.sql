-- eval_ground_truth: one row per (user, video) pair of the fully observed small matrix.
-- is_relevant follows the build's label (build_info: label, label_threshold, label_quantile);
-- split is 'tune' for a stable ~20% of users (md5 of user_id) and 'test' for the rest.
with

ground_truth as (
    select * from int_ground_truth
),

final as (
    select
        user_id,
        video_id,
        watch_ratio,
        is_relevant,
        split,
        relevance_threshold,
        video_duration_ms
    from ground_truth
)

select * from final

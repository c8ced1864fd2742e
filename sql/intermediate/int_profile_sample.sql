-- int_profile_sample: one row per sampled (user, video) pair of the fully observed small matrix,
-- the fixed sample the structure statistics of data_profile are computed on.
-- Sample: per user the 83 pairs with the smallest md5(user_id || '-' || video_id) (all of its
-- pairs when a user has 83 or fewer), so any two datasets are sampled alike.
-- watch_ratio: the mean over the pair's events; y = ln(1 + least(watch_ratio, 50));
-- first_level_category_id: from the caption file, -124 (unknown or missing) a category of its own;
-- is_holdout: the first 8 hex digits of md5('holdout-' || user_id || '-' || video_id) mod 5 = 0
-- (about 20% of pairs, held out by the factor-model gain).
with

events as (
    select * from int_small_matrix_events
),

captions as (
    select * from stg_caption_category
),

pairs as (
    select
        user_id,
        video_id,
        exact_avg(watch_ratio) as watch_ratio
    from events
    group by user_id, video_id
),

ranked as (
    select
        user_id,
        video_id,
        watch_ratio,
        row_number() over (
            partition by user_id
            order by md5(user_id::varchar || '-' || video_id::varchar)
        ) as sample_rank
    from pairs
),

final as (
    select
        ranked.user_id,
        ranked.video_id,
        ranked.watch_ratio,
        ln(1 + least(ranked.watch_ratio, 50)) as y,
        coalesce(captions.first_level_category_id, -124) as first_level_category_id,
        ('0x' || left(md5('holdout-' || ranked.user_id || '-' || ranked.video_id), 8))::bigint
        % 5 = 0 as is_holdout
    from ranked
    left join captions
        on ranked.video_id = captions.video_id
    where ranked.sample_rank <= 83
)

select * from final

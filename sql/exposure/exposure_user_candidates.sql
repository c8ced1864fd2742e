-- exposure_user_candidates: one row per study user: the user's fully observed candidates
-- (exposure_pairs) as lists in video_id order. A candidate's number is its position in these
-- lists (1 = the user's smallest video_id); the sampling and the top lists of the study work on
-- these numbers, so that they gather by list position instead of joining pairs.
--   n_candidates = the user's fully observed pairs
with

pairs as (
    select * from exposure_pairs
),

final as (
    select
        user_id,
        count(*) as n_candidates,
        list(video_id order by video_id) as video_ids,
        list(is_relevant order by video_id) as labels,
        list(n_video_users order by video_id) as n_video_users,
        list(popularity_percentile order by video_id) as popularity_percentiles
    from pairs
    group by user_id
)

select * from final

-- similar_videos: one row per video most like a list of videos, best first: the api_n best
-- rows of api_scores (a temp table of video_id, score: what similar_by_factors.sql or
-- similar_by_coviews.sql gave, run by kuairec_db.api) with each video's caption, category,
-- duration and training popularity. Ties go to the smaller video_id.
with

scored as (
    select * from api_scores
),

content as (
    select * from feat_video_content
),

popularity as (
    select * from feat_video_popularity
),

final as (
    select
        scored.video_id,
        scored.score,
        content.caption,
        content.first_level_category_name,
        round(content.video_duration_ms / 1000.0, 1) as video_duration_s,
        popularity.n_users as train_n_users
    from scored
    left join content on scored.video_id = content.video_id
    left join popularity on scored.video_id = popularity.video_id
    order by scored.score desc, scored.video_id asc
    limit getvariable('api_n')
)

select * from final

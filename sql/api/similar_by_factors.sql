-- similar_by_factors: one row per video most like a list of videos in one model's item
-- factors (model_item_factors), for kuairec_db.similar_videos and recommend_for_history.
-- Reads the variables api_model, api_video_ids (the list) and api_n.
--   score(v) = mean over the listed videos h of cosine(f_v, f_h)
--            = mean over h of (f_v . f_h) / (|f_v| |f_h|)
-- The listed videos themselves are left out; ties go to the smaller video_id.
with

item_factors as (
    select * from model_item_factors
),

content as (
    select * from feat_video_content
),

popularity as (
    select * from feat_video_popularity
),

model_factors as (
    select
        item_factors.video_id,
        item_factors.factors
    from item_factors
    where item_factors.model = getvariable('api_model')
),

history as (
    select model_factors.factors
    from model_factors
    where list_contains(getvariable('api_video_ids'), model_factors.video_id)
),

scored as (
    select
        model_factors.video_id,
        avg(list_cosine_similarity(model_factors.factors, history.factors)) as score
    from model_factors
    cross join history
    where not list_contains(getvariable('api_video_ids'), model_factors.video_id)
    group by model_factors.video_id
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

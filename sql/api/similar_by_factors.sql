-- similar_by_factors: one row per video most like a list of videos in one model's item
-- factors (model_item_factors), for kuairec_db.similar_videos and recommend_for_history.
-- Reads the variables api_model, api_video_ids (the list) and api_n.
--   score(v) = mean over the listed videos h of cosine(f_v, f_h)
--            = mean over h of (f_v . f_h) / (|f_v| |f_h|)
-- The listed videos themselves are left out. Every other scored video is a row; the API keeps
-- the best api_n with their captions (sql/api/similar_videos.sql).
with

item_factors as (
    select * from model_item_factors
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

final as (
    select
        model_factors.video_id,
        exact_avg(list_cosine_similarity(model_factors.factors, history.factors)) as score
    from model_factors
    cross join history
    where not list_contains(getvariable('api_video_ids'), model_factors.video_id)
    group by model_factors.video_id
)

select * from final

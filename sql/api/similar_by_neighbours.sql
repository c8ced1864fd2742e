-- similar_by_neighbours: one row per video most like a list of videos by a neighbourhood
-- model's own similarities (model_video_neighbours of the model api_model: itemknn keeps each
-- video's K nearest), for the models that store them. Reads api_video_ids and api_n too.
--   score(v) = mean over the listed videos h of S[h, v], S[h, v] = the similarity of v as a
--              neighbour of h (0 when v is not among h's K)
-- The listed videos themselves are left out. Every video some listed video has as a neighbour
-- is a row; the API keeps the best api_n with their captions (sql/api/similar_videos.sql).
with

neighbours as (
    select * from model_video_neighbours
    where model = getvariable('api_model')
),

final as (
    select
        neighbour_id as video_id,
        exact_sum(similarity) / len(list_distinct(getvariable('api_video_ids'))) as score
    from neighbours
    where
        list_contains(getvariable('api_video_ids'), video_id)
        and not list_contains(getvariable('api_video_ids'), neighbour_id)
    group by neighbour_id
)

select * from final

-- exposure_full_ranks: one row per model and (user, video) pair of the study: the model's rank
-- of the video among all of the user's fully observed candidates (exposure_scores: every
-- model's score of every candidate), 1 = best. Ties and unscored videos follow the ranking
-- templates (sql/ranking): higher score first, no score last, then the smaller video_id.
-- A model's ranking of a sparse sample is this ranking restricted to the sampled pairs.
with

scores as (
    select * from exposure_scores
),

final as (
    select
        model,
        user_id,
        video_id,
        row_number() over (
            partition by model, user_id
            order by score desc nulls last, video_id asc
        )::integer as full_rank
    from scores
)

select * from final

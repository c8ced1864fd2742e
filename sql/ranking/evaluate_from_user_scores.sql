-- evaluate_from_user_scores: one row per small-matrix user and rank 1 .. top_n among that
-- user's candidates, for a model that scores (user, video) pairs (model_user_scores).
-- Pairs outside the user's candidates are ignored; ties go to the smaller video_id.
with

user_scores as (
    select * from model_user_scores
),

candidates as (
    select * from int_ground_truth
),

scored as (
    select
        candidates.user_id,
        candidates.video_id,
        user_scores.score
    from candidates
    inner join user_scores
        on
            candidates.user_id = user_scores.user_id
            and candidates.video_id = user_scores.video_id
),

final as (
    select
        getvariable('model_name') as model,
        user_id,
        row_number() over (
            partition by user_id order by score desc, video_id asc
        )::integer as rank,
        video_id,
        score
    from scored
    qualify rank <= getvariable('top_n')
)

select * from final
order by user_id, rank

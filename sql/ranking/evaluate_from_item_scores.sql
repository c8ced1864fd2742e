-- evaluate_from_item_scores: one row per small-matrix user and rank 1 .. top_n among that
-- user's candidates (the videos it has ground truth for), for a model with one score per video.
-- Videos the model did not score rank last; ties go to the smaller video_id.
with

item_scores as (
    select * from model_item_scores
),

candidates as (
    select * from int_ground_truth
),

scored as (
    select
        candidates.user_id,
        candidates.video_id,
        item_scores.score
    from candidates
    left join item_scores on candidates.video_id = item_scores.video_id
),

final as (
    select
        getvariable('model_name') as model,
        user_id,
        row_number() over (
            partition by user_id order by score desc nulls last, video_id asc
        )::integer as rank,
        video_id,
        score
    from scored
    qualify rank <= getvariable('top_n')
)

select * from final
order by user_id, rank

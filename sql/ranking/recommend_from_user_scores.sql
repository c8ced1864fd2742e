-- recommend_from_user_scores: one row per user and rank 1 .. top_n, for a model that scores
-- (user, video) pairs itself (model_user_scores). Videos the user has in training are skipped;
-- ties go to the smaller video_id.
with

user_scores as (
    select * from model_user_scores
),

train_pairs as (
    select * from int_train_interactions
),

unseen as (
    select user_scores.*
    from user_scores
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = user_scores.user_id
            and train_pairs.video_id = user_scores.video_id
    )
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
    from unseen
    qualify rank <= getvariable('top_n')
)

select * from final
order by user_id, rank

-- recommend_from_item_scores: one row per big-matrix user and rank 1 .. top_n, for a model that
-- gives every video one score for all users (model_item_scores). Videos the user has in
-- training are skipped; ties go to the smaller video_id. A user with t training videos only
-- needs the first t + top_n videos of the global order.
with

item_scores as (
    select * from model_item_scores
),

users as (
    select * from int_user_index
),

train_pairs as (
    select * from int_train_interactions
),

global_order as (
    select
        video_id,
        score,
        row_number() over (order by score desc, video_id asc) as global_rank
    from item_scores
),

candidates as (
    select
        users.user_id,
        global_order.video_id,
        global_order.score,
        global_order.global_rank
    from users
    inner join global_order
        on global_order.global_rank <= users.n_train_videos + getvariable('top_n')
),

unseen as (
    select candidates.*
    from candidates
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = candidates.user_id
            and train_pairs.video_id = candidates.video_id
    )
),

final as (
    select
        getvariable('model_name') as model,
        user_id,
        row_number() over (partition by user_id order by global_rank)::integer as rank,
        video_id,
        score
    from unseen
    qualify rank <= getvariable('top_n')
)

select * from final
order by user_id, rank

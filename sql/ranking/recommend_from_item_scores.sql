-- recommend_from_item_scores: one row per big-matrix user and rank 1 .. top_n, for a model that
-- gives every video one score for all users (model_item_scores). Videos the user has in
-- training are skipped; ties go to the smaller video_id.
-- Only a prefix of the global order is ranked per user: with s(R) the user's training videos
-- among the first R videos, the first R videos hold R - s(R) unseen ones. For M = 10 * top_n,
-- R = top_n + s(M) <= M gives s(R) <= s(M), so R - s(R) >= top_n: the first R videos are enough.
-- A user for whom top_n + s(M) > M takes R = n_train_videos + top_n, which is always enough.
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

prefix as (
    select 10 * getvariable('top_n') as m
),

-- each training pair at its video's place in the global order
seen_ranks as (
    select
        train_pairs.user_id,
        global_order.global_rank
    from train_pairs
    inner join global_order on train_pairs.video_id = global_order.video_id
),

limits as (
    select
        users.user_id,
        case
            when getvariable('top_n') + count(seen_ranks.global_rank) <= any_value(prefix.m)
                then getvariable('top_n') + count(seen_ranks.global_rank)
            else any_value(users.n_train_videos) + getvariable('top_n')
        end as max_rank
    from users
    cross join prefix
    left join seen_ranks
        on
            users.user_id = seen_ranks.user_id
            and prefix.m >= seen_ranks.global_rank
    group by users.user_id
),

candidates as (
    select
        limits.user_id,
        global_order.video_id,
        global_order.score,
        global_order.global_rank
    from limits
    inner join global_order on limits.max_rank >= global_order.global_rank
),

seen_candidates as (
    select
        seen_ranks.user_id,
        seen_ranks.global_rank
    from seen_ranks
    inner join limits
        on
            seen_ranks.user_id = limits.user_id
            and seen_ranks.global_rank <= limits.max_rank
),

unseen as (
    select candidates.*
    from candidates
    where not exists (
        select 1
        from seen_candidates
        where
            seen_candidates.user_id = candidates.user_id
            and seen_candidates.global_rank = candidates.global_rank
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

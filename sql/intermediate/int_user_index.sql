-- int_user_index: one row per big-matrix user; user_index is the dense 0-based row position that
-- Python models use for their matrices (mapped back to user_id in SQL, never by list position).
with

big_events as (
    select * from int_big_matrix_events
),

train_pairs as (
    select * from int_train_interactions
),

users as (
    select distinct user_id from big_events
),

train_counts as (
    select
        user_id,
        count(*) as n_train_videos
    from train_pairs
    group by all
),

final as (
    select
        users.user_id,
        (row_number() over (order by users.user_id) - 1)::integer as user_index,
        coalesce(train_counts.n_train_videos, 0) as n_train_videos
    from users
    left join train_counts on users.user_id = train_counts.user_id
)

select * from final

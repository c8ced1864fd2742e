-- audit_no_training_leak: training pairs that are also test pairs. Must return no rows.
with

train_pairs as (
    select * from int_train_interactions
),

ground_truth as (
    select * from int_ground_truth
),

final as (
    select
        train_pairs.user_id,
        train_pairs.video_id
    from train_pairs
    inner join ground_truth
        on
            train_pairs.user_id = ground_truth.user_id
            and train_pairs.video_id = ground_truth.video_id
)

select * from final

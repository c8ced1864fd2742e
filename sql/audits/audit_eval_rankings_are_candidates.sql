-- audit_eval_rankings_are_candidates: ranked videos outside the user's ground truth.
-- Must return no rows.
with

rankings as (
    select * from eval_rankings
),

ground_truth as (
    select * from int_ground_truth
),

final as (
    select
        rankings.model,
        rankings.user_id,
        rankings.video_id
    from rankings
    left join ground_truth
        on
            rankings.user_id = ground_truth.user_id
            and rankings.video_id = ground_truth.video_id
    where ground_truth.video_id is null
)

select * from final

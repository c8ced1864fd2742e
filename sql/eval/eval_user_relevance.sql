-- eval_user_relevance: one row per small-matrix user: candidates, relevant videos and split.
-- Users with n_relevant = 0 are left out of the metrics (counted in data_quality).
with

ground_truth as (
    select * from eval_ground_truth
),

final as (
    select
        user_id,
        any_value(split) as split,
        count(*) as n_candidates,
        count(*) filter (where is_relevant) as n_relevant
    from ground_truth
    group by user_id
)

select * from final

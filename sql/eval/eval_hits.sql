-- eval_hits: one row per ranked video of eval_rankings (model, user, rank) with its label.
-- n_hits_so_far = relevant videos at ranks 1 .. rank; the shared base of every metric.
with

rankings as (
    select * from eval_rankings
),

ground_truth as (
    select * from eval_ground_truth
),

final as (
    select
        rankings.model,
        rankings.user_id,
        rankings.rank,
        rankings.video_id,
        coalesce(ground_truth.is_relevant, false) as is_relevant,
        sum(coalesce(ground_truth.is_relevant, false)::integer) over (
            partition by rankings.model, rankings.user_id
            order by rankings.rank
            rows between unbounded preceding and current row
        ) as n_hits_so_far
    from rankings
    left join ground_truth
        on
            rankings.user_id = ground_truth.user_id
            and rankings.video_id = ground_truth.video_id
)

select * from final

-- temporal_user_metrics: one row per retrained model, user with a relevant temporal test view,
-- k and metric: the usual sparse protocol's per-user values. Models retrained on the
-- big-matrix views before temporal_cutoff rank the whole catalogue for every big-matrix user,
-- without the videos the user viewed before it (recommendations, here the retrained lists).
-- Test set: temporal_test_pairs. Binary relevance, hits = relevant test videos at ranks 1 .. k,
-- R = the user's relevant test videos (users with R = 0 left out); every other video counts as
-- not relevant, unobserved or not: the sparse, biased assumption the fully observed matrix
-- avoids. The formulas and their arithmetic are the macro user_metric_values (sql/macros/),
-- as in eval_user_metrics:
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1))
--                 / (sum over i = 1 .. min(R, k) of 1 / log2(i + 1))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (rank of the first hit) if it is <= k else 0
with

rankings as (
    select * from recommendations
),

test_pairs as (
    select * from temporal_test_pairs
),

cutoffs as (
    select unnest(getvariable('exposure_k'))::integer as k
),

ideal as (
    select
        n_hits,
        ideal_dcg
    from ideal_dcgs(list_max(getvariable('exposure_k')))
),

users as (
    select
        user_id,
        count(*) filter (where is_relevant) as n_relevant
    from test_pairs
    group by all
    having count(*) filter (where is_relevant) > 0
),

hits as (
    select
        rankings.model,
        rankings.user_id,
        rankings.rank,
        coalesce(test_pairs.is_relevant, false) as is_relevant,
        sum(coalesce(test_pairs.is_relevant, false)::integer) over (
            partition by rankings.model, rankings.user_id
            order by rankings.rank
            rows between unbounded preceding and current row
        ) as n_hits_so_far
    from rankings
    left join test_pairs
        on
            rankings.user_id = test_pairs.user_id
            and rankings.video_id = test_pairs.video_id
    where rankings.rank <= list_max(getvariable('exposure_k'))
),

models as (
    select distinct model from rankings
),

grid as (
    select
        models.model,
        users.user_id,
        users.n_relevant,
        cutoffs.k,
        ideal.ideal_dcg
    from models
    cross join users
    cross join cutoffs
    inner join ideal on least(users.n_relevant, cutoffs.k) = ideal.n_hits
),

final as (
    select
        grid.model,
        grid.user_id,
        grid.k,
        -- one row per metric: (metric, value)
        unnest(  -- noqa: AL03
            user_metric_values(
                hits.rank, hits.is_relevant, hits.n_hits_so_far,
                grid.n_relevant, grid.k, grid.ideal_dcg
            ),
            recursive := true
        )
    from grid
    left join hits
        on
            grid.model = hits.model
            and grid.user_id = hits.user_id
            and grid.k >= hits.rank
    group by grid.model, grid.user_id, grid.k, grid.n_relevant, grid.ideal_dcg
)

select * from final

-- temporal_user_metrics: one row per retrained model, user with a relevant temporal test view,
-- k and metric: the usual sparse protocol's per-user values. Models retrained on the
-- big-matrix views before temporal_cutoff rank the whole catalogue for every big-matrix user,
-- without the videos the user viewed before it (recommendations, here the retrained lists).
-- Test set: temporal_test_pairs. Binary relevance, hits = relevant test videos at ranks 1 .. k,
-- R = the user's relevant test videos (users with R = 0 left out); every other video counts as
-- not relevant, unobserved or not: the sparse, biased assumption the fully observed matrix
-- avoids.
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

ranks as (
    select range::integer as n_hits
    from range(1, list_max(getvariable('exposure_k'))::bigint + 1)
),

ideal as (
    select
        n_hits,
        sum(1 / log2(n_hits + 1)) over (order by n_hits) as ideal_dcg
    from ranks
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
        cutoffs.k
    from models
    cross join users
    cross join cutoffs
),

per_cutoff as (
    select
        grid.model,
        grid.user_id,
        grid.k,
        count(hits.rank) filter (where hits.is_relevant) as n_hits,
        coalesce(
            sum((hits.n_hits_so_far / hits.rank)::decimal(18, 12))
            filter (where hits.is_relevant),
            0
        ) as precision_sum,
        coalesce(
            sum((1 / log2(hits.rank + 1))::decimal(18, 12)) filter (where hits.is_relevant),
            0
        ) as dcg,
        min(hits.rank) filter (where hits.is_relevant) as first_hit_rank
    from grid
    left join hits
        on
            grid.model = hits.model
            and grid.user_id = hits.user_id
            and grid.k >= hits.rank
    group by grid.model, grid.user_id, grid.k
),

scored as (
    select
        grid.model,
        grid.user_id,
        grid.k,
        per_cutoff.n_hits / grid.k as precision_value,
        per_cutoff.n_hits / grid.n_relevant as recall_value,
        per_cutoff.precision_sum / least(grid.n_relevant, grid.k) as map_value,
        per_cutoff.dcg / ideal.ideal_dcg as ndcg_value,
        (per_cutoff.n_hits > 0)::integer::double as hit_rate_value,
        coalesce(1 / per_cutoff.first_hit_rank, 0) as mrr_value
    from grid
    inner join per_cutoff
        on
            grid.model = per_cutoff.model
            and grid.user_id = per_cutoff.user_id
            and grid.k = per_cutoff.k
    inner join ideal on least(grid.n_relevant, grid.k) = ideal.n_hits
),

final as (
    select
        model,
        user_id,
        k,
        metric,
        value
    from scored
    unpivot (
        value for metric in (
            precision_value as precision,
            recall_value as recall,
            map_value as map,
            ndcg_value as ndcg,
            hit_rate_value as hit_rate,
            mrr_value as mrr
        )
    )
)

select * from final

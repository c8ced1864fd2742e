-- eval_user_metrics: one row per model, user (with at least one relevant video), k and metric.
-- Binary relevance; hits = relevant videos at ranks 1 .. k; R = the user's relevant videos.
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1)) / ideal_dcg(min(R, k))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (rank of the first hit) if it is <= k else 0
with

hits as (
    select * from eval_hits
),

users as (
    select * from eval_user_relevance
),

cutoffs as (
    select * from int_eval_cutoffs
),

ideal as (
    select * from int_ideal_dcg
),

models as (
    select distinct model from hits
),

grid as (
    select
        models.model,
        users.user_id,
        users.split,
        users.n_relevant,
        cutoffs.k
    from models
    cross join users
    cross join cutoffs
    where users.n_relevant > 0
),

per_cutoff as (
    select
        grid.model,
        grid.user_id,
        grid.k,
        count(hits.rank) filter (where hits.is_relevant) as n_hits,
        coalesce(sum(hits.n_hits_so_far / hits.rank) filter (where hits.is_relevant), 0)
            as precision_sum,
        coalesce(sum(1 / log2(hits.rank + 1)) filter (where hits.is_relevant), 0) as dcg,
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
        grid.split,
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
        split,
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

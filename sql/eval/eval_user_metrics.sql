-- eval_user_metrics: one row per model, user (with at least one relevant video), k and metric.
-- Binary relevance; hits = relevant videos at ranks 1 .. k; R = the user's relevant videos.
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1)) / ideal_dcg(min(R, k))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (rank of the first hit) if it is <= k else 0
-- The formulas and their arithmetic are the macro user_metric_values
-- (sql/macros/user_metric_values.sql), shared with the exposure study; a user the model did
-- not rank scores 0.
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
        cutoffs.k,
        ideal.ideal_dcg
    from models
    cross join users
    cross join cutoffs
    inner join ideal on least(users.n_relevant, cutoffs.k) = ideal.n_hits
    where users.n_relevant > 0
),

final as (
    select
        grid.model,
        grid.split,
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
    group by grid.model, grid.split, grid.user_id, grid.k, grid.n_relevant, grid.ideal_dcg
)

select * from final

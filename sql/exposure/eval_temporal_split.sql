-- eval_temporal_split: one row per model, k and metric: the usual sparse protocol beside the
-- fully observed one. Models retrained on the big-matrix views before temporal_cutoff rank
-- the whole catalogue for every big-matrix user, without the videos the user viewed before it
-- (recommendations, here the retrained lists). Test set: temporal_test_pairs. Binary
-- relevance, hits = relevant test videos at ranks 1 .. k, R = the user's relevant test videos
-- (users with R = 0 left out); every other video counts as not relevant, unobserved or not:
-- the sparse, biased assumption the fully observed matrix avoids.
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1))
--                 / (sum over i = 1 .. min(R, k) of 1 / log2(i + 1))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (rank of the first hit) if it is <= k else 0
--   value           = mean over users; n_users = how many
--   full_value      = the model's eval_metrics value on the fully observed test users
--                     (trained on the whole big matrix; temporal_reference)
--   model_rank      = rank by value among the retrained models (1 = best; ties share)
--   full_model_rank = rank by full_value among the same models
--   kendall_tau     = Kendall's tau-b between the two orders of these models
--                     (as in eval_exposure_study: differences within 1e-9 are ties)
-- Sums and means run over decimal(18, 12): parallel aggregation then gives the same bits
-- every run (the same seed gives an identical table).
with

rankings as (
    select * from recommendations
),

test_pairs as (
    select * from temporal_test_pairs
),

reference as (
    select * from temporal_reference
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

user_metrics as (
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
),

compared as (
    select
        user_metrics.model,
        user_metrics.k,
        user_metrics.metric,
        avg(user_metrics.value::decimal(18, 12))::double as value,
        count(*) as n_users,
        any_value(reference.value) as full_value
    from user_metrics
    left join reference
        on
            user_metrics.model = reference.model
            and user_metrics.k = reference.k
            and user_metrics.metric = reference.metric
    group by user_metrics.model, user_metrics.k, user_metrics.metric
),

pair_signs as (
    select
        model_a.k,
        model_a.metric,
        case
            when model_a.value - model_b.value > 1e-9 then 1
            when model_a.value - model_b.value < -1e-9 then -1
            else 0
        end as sparse_sign,
        case
            when model_a.full_value - model_b.full_value > 1e-9 then 1
            when model_a.full_value - model_b.full_value < -1e-9 then -1
            else 0
        end as full_sign
    from compared as model_a
    inner join compared as model_b
        on
            model_a.k = model_b.k
            and model_a.metric = model_b.metric
            and model_a.model < model_b.model
),

taus as (
    select
        k,
        metric,
        sum(sparse_sign * full_sign)
        / nullif(sqrt(sum(abs(sparse_sign)) * sum(abs(full_sign))), 0) as kendall_tau
    from pair_signs
    group by all
),

final as (
    select
        compared.model,
        compared.k,
        compared.metric,
        compared.value,
        compared.n_users,
        rank() over (
            partition by compared.k, compared.metric order by compared.value desc
        ) as model_rank,
        compared.full_value,
        rank() over (
            partition by compared.k, compared.metric order by compared.full_value desc
        ) as full_model_rank,
        taus.kendall_tau
    from compared
    left join taus on compared.k = taus.k and compared.metric = taus.metric
)

select * from final
order by k, metric, model_rank, model

-- exposure_user_metrics: one row per sample set (strategy, density), model, user with at least
-- one relevant sampled video, k and metric. A model's ranking of a user's sampled candidates
-- is its ranking of all the user's candidates (exposure_full_ranks) restricted to the sampled
-- ones; sparse_rank numbers them 1, 2, ... in that order. Binary relevance, the formulas of
-- sql/eval/eval_user_metrics.sql with hits = relevant sampled videos at sparse ranks 1 .. k and
-- R = the user's relevant sampled videos:
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1))
--                 / (sum over i = 1 .. min(R, k) of 1 / log2(i + 1))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (sparse rank of the first hit) if it is <= k else 0
-- Users whose sample holds no relevant video are left out (as in eval_user_metrics).
-- Sums and means run over decimal(18, 12): parallel aggregation then gives the same bits
-- every run (the same seed gives an identical table).
with

pairs as (
    select * from exposure_pairs
),

sample_sets as (
    select * from exposure_sample_sets
),

sample_order as (
    select * from exposure_sample_order
),

full_ranks as (
    select * from exposure_full_ranks
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

-- one row per sample set and sampled pair ('fully_observed': every pair)
sampled as (
    select
        sample_sets.strategy,
        sample_sets.density,
        sample_order.user_id,
        sample_order.video_id,
        sample_order.is_relevant
    from sample_sets
    inner join sample_order
        on
            sample_sets.strategy = sample_order.strategy
            and sample_sets.n_sampled >= sample_order.sample_position
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        user_id,
        video_id,
        is_relevant
    from pairs
),

user_relevance as (
    select
        strategy,
        density,
        user_id,
        count(*) filter (where is_relevant) as n_relevant
    from sampled
    group by all
    having count(*) filter (where is_relevant) > 0
),

-- the first max(k) sampled videos of every list, their labels in sparse rank order
top_lists as (
    select
        sampled.strategy,
        sampled.density,
        full_ranks.model,
        sampled.user_id,
        min_by(
            sampled.is_relevant,
            full_ranks.full_rank,
            list_max(getvariable('exposure_k'))
        ) as labels_in_order
    from sampled
    inner join full_ranks
        on
            sampled.user_id = full_ranks.user_id
            and sampled.video_id = full_ranks.video_id
    group by all
),

hits as (
    select
        strategy,
        density,
        model,
        user_id,
        unnest(labels_in_order) as is_relevant,
        unnest(range(1, len(labels_in_order) + 1)) as sparse_rank
    from top_lists
),

running_hits as (
    select
        strategy,
        density,
        model,
        user_id,
        sparse_rank,
        is_relevant,
        sum(is_relevant::integer) over (
            partition by strategy, density, model, user_id
            order by sparse_rank
            rows between unbounded preceding and current row
        ) as n_hits_so_far
    from hits
),

per_cutoff as (
    select
        running_hits.strategy,
        running_hits.density,
        running_hits.model,
        running_hits.user_id,
        cutoffs.k,
        count(*) filter (where running_hits.is_relevant) as n_hits,
        coalesce(
            sum((running_hits.n_hits_so_far / running_hits.sparse_rank)::decimal(18, 12))
            filter (where running_hits.is_relevant),
            0
        ) as precision_sum,
        coalesce(
            sum((1 / log2(running_hits.sparse_rank + 1))::decimal(18, 12))
            filter (where running_hits.is_relevant),
            0
        ) as dcg,
        min(running_hits.sparse_rank) filter (where running_hits.is_relevant) as first_hit_rank
    from running_hits
    inner join cutoffs on running_hits.sparse_rank <= cutoffs.k
    group by all
),

scored as (
    select
        per_cutoff.strategy,
        per_cutoff.density,
        per_cutoff.model,
        per_cutoff.user_id,
        per_cutoff.k,
        per_cutoff.n_hits / per_cutoff.k as precision_value,
        per_cutoff.n_hits / user_relevance.n_relevant as recall_value,
        per_cutoff.precision_sum / least(user_relevance.n_relevant, per_cutoff.k) as map_value,
        per_cutoff.dcg / ideal.ideal_dcg as ndcg_value,
        (per_cutoff.n_hits > 0)::integer::double as hit_rate_value,
        coalesce(1 / per_cutoff.first_hit_rank, 0) as mrr_value
    from per_cutoff
    inner join user_relevance
        on
            per_cutoff.strategy = user_relevance.strategy
            and per_cutoff.density = user_relevance.density
            and per_cutoff.user_id = user_relevance.user_id
    inner join ideal on least(user_relevance.n_relevant, per_cutoff.k) = ideal.n_hits
),

final as (
    select
        strategy,
        density,
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

-- exposure_user_metrics: one row per sample set (strategy, density), model, user with at least
-- one relevant sampled video, k and metric. A model's ranking of a user's sampled candidates
-- is its ranking of all the user's candidates (exposure_full_ranks) restricted to the sampled
-- ones; sparse_rank numbers them 1, 2, ... in that order. Binary relevance, the formulas of
-- eval_user_metrics (the macro user_metric_values, sql/macros/) with hits = relevant sampled
-- videos at sparse ranks 1 .. k and R = the user's relevant sampled videos:
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k)
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1))
--                 / (sum over i = 1 .. min(R, k) of 1 / log2(i + 1))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (sparse rank of the first hit) if it is <= k else 0
-- Users whose sample holds no relevant video are left out (as in eval_user_metrics). The
-- macro's sums run in rank order: the same bits every run (the same seed gives an identical
-- table).
-- Two passes, exact: exposure_list_keys takes each list from the model's ranks 1 ..
-- exposure_rank_depth; the lists it could not complete are taken here from every rank.
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

ideal as (
    select
        n_hits,
        ideal_dcg
    from ideal_dcgs(list_max(getvariable('exposure_k')))
),

list_keys as (
    select * from exposure_list_keys
),

incomplete_keys as (
    select
        strategy,
        density,
        model,
        user_id
    from list_keys
    where not is_complete
),

-- the sampled pairs of the incomplete lists' users ('fully_observed': every pair)
incomplete_pairs as (
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
    where
        exists (
            select 1 from incomplete_keys
            where
                incomplete_keys.strategy = sample_sets.strategy
                and incomplete_keys.user_id = sample_order.user_id
        )
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        user_id,
        video_id,
        is_relevant
    from pairs
    where exists (
        select 1 from incomplete_keys
        where
            incomplete_keys.strategy = 'fully_observed'
            and incomplete_keys.user_id = pairs.user_id
    )
),

-- second pass, over every rank, for the lists the first pass left incomplete
deep_lists as (
    select
        incomplete_keys.strategy,
        incomplete_keys.density,
        incomplete_keys.model,
        incomplete_keys.user_id,
        min_by(
            incomplete_pairs.is_relevant,
            full_ranks.full_rank,
            list_max(getvariable('exposure_k'))
        ) as labels_in_order
    from incomplete_keys
    inner join incomplete_pairs
        on
            incomplete_keys.strategy = incomplete_pairs.strategy
            and incomplete_keys.density = incomplete_pairs.density
            and incomplete_keys.user_id = incomplete_pairs.user_id
    inner join full_ranks
        on
            incomplete_keys.model = full_ranks.model
            and incomplete_pairs.user_id = full_ranks.user_id
            and incomplete_pairs.video_id = full_ranks.video_id
    group by all
),

-- the first max(k) sampled videos of every list, their labels in sparse rank order
top_lists as (
    select
        strategy,
        density,
        model,
        user_id,
        labels_in_order
    from list_keys
    where is_complete
    union all
    select * from deep_lists
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

final as (
    select
        running_hits.strategy,
        running_hits.density,
        running_hits.model,
        running_hits.user_id,
        cutoffs.k,
        -- one row per metric: (metric, value)
        unnest(  -- noqa: AL03
            user_metric_values(
                running_hits.sparse_rank, running_hits.is_relevant, running_hits.n_hits_so_far,
                list_keys.n_relevant, cutoffs.k, ideal.ideal_dcg
            ),
            recursive := true
        )
    from running_hits
    inner join cutoffs on running_hits.sparse_rank <= cutoffs.k
    inner join list_keys
        on
            running_hits.strategy = list_keys.strategy
            and running_hits.density = list_keys.density
            and running_hits.model = list_keys.model
            and running_hits.user_id = list_keys.user_id
    inner join ideal on least(list_keys.n_relevant, cutoffs.k) = ideal.n_hits
    group by
        running_hits.strategy,
        running_hits.density,
        running_hits.model,
        running_hits.user_id,
        cutoffs.k,
        list_keys.n_relevant,
        ideal.ideal_dcg
)

select * from final

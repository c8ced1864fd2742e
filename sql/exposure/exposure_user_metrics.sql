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

users as (
    select * from exposure_user_candidates
),

sample_sets as (
    select * from exposure_sample_sets
),

first_sets as (
    select * from exposure_first_sets
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
        list_keys.strategy,
        list_keys.density,
        list_keys.model,
        list_keys.user_id,
        sample_sets.n_sampled as set_size
    from list_keys
    inner join sample_sets
        on
            list_keys.strategy = sample_sets.strategy
            and list_keys.density = sample_sets.density
    where not list_keys.is_complete
),

-- the candidates of the incomplete lists' users, by candidate number
incomplete_candidates as (
    select
        user_id,
        unnest(video_ids) as video_id,
        unnest(labels) as is_relevant,
        unnest(range(1, n_candidates + 1)) as candidate
    from users
    where user_id in (select incomplete_keys.user_id from incomplete_keys)
),

-- second pass, over every rank, for the lists the first pass left incomplete
deep_lists as (
    select
        incomplete_keys.strategy,
        incomplete_keys.density,
        incomplete_keys.model,
        incomplete_keys.user_id,
        min_by(
            incomplete_candidates.is_relevant,
            full_ranks.full_rank,
            list_max(getvariable('exposure_k'))
        ) as labels_in_order
    from incomplete_keys
    inner join full_ranks
        on
            incomplete_keys.model = full_ranks.model
            and incomplete_keys.user_id = full_ranks.user_id
    inner join incomplete_candidates
        on
            full_ranks.user_id = incomplete_candidates.user_id
            and full_ranks.video_id = incomplete_candidates.video_id
    left join first_sets
        on
            incomplete_keys.strategy = first_sets.strategy
            and incomplete_keys.user_id = first_sets.user_id
    where
        incomplete_keys.strategy = 'fully_observed'
        or first_sets.first_set_sizes[incomplete_candidates.candidate] <= incomplete_keys.set_size
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

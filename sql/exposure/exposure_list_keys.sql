-- exposure_list_keys: one row per sample set (strategy, density), model and user with at least
-- one relevant sampled video: the first pass of exposure_user_metrics. A model's ranking of a
-- user's sampled candidates is its full ranking restricted to the sampled ones; this pass
-- reads only the model's ranks 1 .. exposure_rank_depth (exposure_model_lists) and gathers, by
-- candidate number, each one's smallest set (exposure_first_sets): no join of pairs.
--   n_relevant      = R, the user's relevant sampled videos; n_sampled = the user's sampled videos
--                     (exposure_set_users)
--   labels_in_order = is_relevant of the first max(k) sampled videos found in that prefix, in
--                     rank order
--   is_complete     = the prefix holds the list's first max(k) sampled videos: it found max(k)
--                     of them, or every one the user has (least(max(k), n_sampled))
-- exposure_user_metrics takes the incomplete lists again from every rank, so the result does
-- not depend on the depth; the depth only decides how much work the second pass has.
-- 'fully_observed' holds every candidate: its lists are the model's first ranks.
with

users as (
    select
        user_id,
        n_candidates,
        list_count(list_filter(labels, lambda is_relevant: is_relevant))::bigint as n_relevant
    from exposure_user_candidates
),

first_sets as (
    select * from exposure_first_sets
),

model_lists as (
    select * from exposure_model_lists
),

user_relevance as (
    select
        strategy,
        density,
        set_size,
        user_id,
        n_sampled,
        n_relevant
    from exposure_set_users
    where n_relevant > 0
),

-- per strategy, model and user: the smallest set of each of the model's first candidates
model_first_sets as (
    select
        first_sets.strategy,
        model_lists.model,
        model_lists.user_id,
        model_lists.candidates,
        model_lists.labels,
        first_sets.first_set_sizes
    from model_lists
    inner join first_sets on model_lists.user_id = first_sets.user_id
),

gathered as (
    select
        strategy,
        model,
        user_id,
        labels,
        list_transform(candidates, lambda candidate: first_set_sizes[candidate]) as first_set_sizes
    from model_first_sets
),

set_lists as (
    select
        user_relevance.strategy,
        user_relevance.density,
        gathered.model,
        user_relevance.user_id,
        user_relevance.n_relevant,
        user_relevance.n_sampled,
        user_relevance.set_size,
        gathered.labels,
        gathered.first_set_sizes
    from user_relevance
    inner join gathered
        on
            user_relevance.strategy = gathered.strategy
            and user_relevance.user_id = gathered.user_id
),

sparse_lists as (
    select
        strategy,
        density,
        model,
        user_id,
        n_relevant,
        n_sampled,
        list_transform(
            list_filter(range(1, len(labels) + 1), lambda i: first_set_sizes[i] <= set_size),
            lambda i: labels[i]
        ) as found
    from set_lists
),

full_lists as (
    select
        'fully_observed' as strategy,
        1.0::double as density,
        model_lists.model,
        model_lists.user_id,
        users.n_relevant,
        users.n_candidates as n_sampled,
        model_lists.labels as found
    from model_lists
    inner join users on model_lists.user_id = users.user_id
    where users.n_relevant > 0
),

lists as (
    select * from sparse_lists
    union all
    select * from full_lists
),

final as (
    select
        strategy,
        density,
        model,
        user_id,
        n_relevant,
        n_sampled,
        found[1:list_max(getvariable('exposure_k'))] as labels_in_order,
        len(found)
        >= least(list_max(getvariable('exposure_k')), n_sampled) as is_complete
    from lists
)

select * from final

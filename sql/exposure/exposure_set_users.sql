-- exposure_set_users: one row per sparse sample set (strategy, density) and study user with at
-- least one sampled pair: what the set holds of the user, without reading its pairs. Each pair
-- counts once by the size of its smallest set (exposure_first_sets); the sets are nested, so a
-- set of size n holds a user's pairs of every first set size <= n:
--   set_size       = the set's n_sampled (exposure_sample_sets)
--   n_sampled      = the user's sampled pairs
--   n_relevant     = the relevant ones among them
--   popularity_sum = exact_partial_sum of their videos' popularity_percentile (a decimal)
with

users as (
    select * from exposure_user_candidates
),

first_sets as (
    select * from exposure_first_sets
),

pairs as (
    select
        first_sets.strategy,
        first_sets.user_id,
        unnest(first_sets.first_set_sizes) as first_set_size,
        unnest(users.labels) as is_relevant,
        unnest(users.popularity_percentiles) as popularity_percentile
    from first_sets
    inner join users on first_sets.user_id = users.user_id
),

first_set_counts as (
    select
        strategy,
        user_id,
        first_set_size,
        count(*) as n_pairs,
        count(*) filter (where is_relevant) as n_relevant,
        exact_partial_sum(popularity_percentile) as popularity_sum
    from pairs
    where first_set_size is not null
    group by strategy, user_id, first_set_size
),

sparse_sets as (
    select * from exposure_sample_sets
    where strategy <> 'fully_observed'
),

final as (
    select
        sparse_sets.strategy,
        sparse_sets.density,
        sparse_sets.n_sampled as set_size,
        first_set_counts.user_id,
        sum(first_set_counts.n_pairs)::bigint as n_sampled,
        sum(first_set_counts.n_relevant)::bigint as n_relevant,
        sum(first_set_counts.popularity_sum) as popularity_sum
    from sparse_sets
    inner join first_set_counts
        on
            sparse_sets.strategy = first_set_counts.strategy
            and sparse_sets.n_sampled >= first_set_counts.first_set_size
    group by
        sparse_sets.strategy, sparse_sets.density, sparse_sets.n_sampled, first_set_counts.user_id
)

select * from final

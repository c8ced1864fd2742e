-- exposure_first_set_counts: one row per exposure strategy, study user and first set size
-- (exposure_first_sets; null: pairs in no sparse set). Since the sets are nested, a set of
-- size n holds a user's pairs of every first_set_size <= n, so these counts add up to each
-- set's counts without reading its pairs:
--   n_pairs        = the user's pairs whose smallest set has this size
--   n_relevant     = the relevant ones among them
--   popularity_sum = exact_partial_sum of their videos' popularity_percentile
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

final as (
    select
        strategy,
        user_id,
        first_set_size,
        count(*) as n_pairs,
        count(*) filter (where is_relevant) as n_relevant,
        exact_partial_sum(popularity_percentile) as popularity_sum
    from pairs
    group by strategy, user_id, first_set_size
)

select * from final

-- exposure_sample_sets: one row per sparse test set of the study: every exposure strategy at
-- every target density (variables exposure_strategies, exposure_densities), plus the
-- reference 'fully_observed' at density 1.
--   n_pairs   = N, the fully observed (user, video) pairs of the study (exposure_pairs)
--   n_sampled = round(density * N), the pairs the set holds
with

pairs as (
    select * from exposure_pairs
),

pair_count as (
    select count(*) as n_pairs from pairs
),

strategies as (
    select unnest(getvariable('exposure_strategies'))::varchar as strategy
),

densities as (
    select unnest(getvariable('exposure_densities'))::double as density
),

sparse_sets as (
    select
        strategies.strategy,
        densities.density,
        pair_count.n_pairs,
        round(densities.density * pair_count.n_pairs)::bigint as n_sampled
    from strategies
    cross join densities
    cross join pair_count
),

final as (
    select * from sparse_sets
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        n_pairs,
        n_pairs as n_sampled
    from pair_count
)

select * from final

-- eval_exposure_samples: one row per sparse test set of the exposure study (strategy, density):
-- what the sample holds. N = the fully observed pairs of the study's users.
--   n_sampled                  = pairs in the set (round(density * N))
--   density_achieved           = n_sampled / N
--   relevant_share             = relevant pairs among the sampled / n_sampled
--   mean_popularity_percentile = mean over the sampled pairs of the video's training
--                                popularity percentile (feat_video_popularity, 1 = most viewed)
--   n_users                    = users with at least one sampled pair
--   n_users_with_relevant      = users with at least one relevant sampled pair (the users the
--                                metrics are averaged over)
-- Counted from exposure_set_users (each set's counts per user); the mean adds its
-- exact_partial_sum decimals (sql/macros/), so it is the same bits in any row order (the same
-- seed gives an identical table).
with

sample_sets as (
    select * from exposure_sample_sets
),

set_users as (
    select * from exposure_set_users
),

pairs as (
    select * from exposure_pairs
),

-- one row per sample set and user with a sampled pair ('fully_observed': every pair)
all_set_users as (
    select
        set_users.strategy,
        set_users.density,
        sample_sets.n_pairs,
        set_users.user_id,
        set_users.n_sampled,
        set_users.n_relevant,
        set_users.popularity_sum
    from set_users
    inner join sample_sets
        on
            set_users.strategy = sample_sets.strategy
            and set_users.density = sample_sets.density
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        sum(count(*)) over () as n_pairs,
        user_id,
        count(*) as n_sampled,
        count(*) filter (where is_relevant) as n_relevant,
        exact_partial_sum(popularity_percentile) as popularity_sum
    from pairs
    group by user_id
),

final as (
    select
        strategy,
        density,
        any_value(n_pairs)::bigint as n_pairs,
        sum(n_sampled)::bigint as n_sampled,
        sum(n_sampled) / any_value(n_pairs) as density_achieved,
        sum(n_relevant) / sum(n_sampled) as relevant_share,
        sum(popularity_sum)::double / sum(n_sampled) as mean_popularity_percentile,
        count(*) as n_users,
        count(*) filter (where n_relevant > 0) as n_users_with_relevant
    from all_set_users
    group by strategy, density
)

select * from final
order by strategy, density

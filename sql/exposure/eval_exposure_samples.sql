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
-- Means by exact_avg (sql/macros/): the same bits in any row order (the same seed gives an
-- identical table).
with

sample_sets as (
    select * from exposure_sample_sets
),

sample_order as (
    select * from exposure_sample_order
),

pairs as (
    select * from exposure_pairs
),

-- one row per sample set and sampled pair ('fully_observed': every pair)
sampled as (
    select
        sample_sets.strategy,
        sample_sets.density,
        sample_sets.n_pairs,
        sample_order.user_id,
        sample_order.is_relevant,
        pairs.popularity_percentile
    from sample_sets
    inner join sample_order
        on
            sample_sets.strategy = sample_order.strategy
            and sample_sets.n_sampled >= sample_order.sample_position
    inner join pairs
        on
            sample_order.user_id = pairs.user_id
            and sample_order.video_id = pairs.video_id
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        count(*) over () as n_pairs,
        user_id,
        is_relevant,
        popularity_percentile
    from pairs
),

per_user as (
    select
        strategy,
        density,
        user_id,
        bool_or(is_relevant) as has_relevant
    from sampled
    group by all
),

user_counts as (
    select
        strategy,
        density,
        count(*) as n_users,
        count(*) filter (where has_relevant) as n_users_with_relevant
    from per_user
    group by all
),

pair_counts as (
    select
        strategy,
        density,
        any_value(n_pairs) as n_pairs,
        count(*) as n_sampled,
        count(*) / any_value(n_pairs) as density_achieved,
        avg(is_relevant::integer) as relevant_share,
        exact_avg(popularity_percentile) as mean_popularity_percentile
    from sampled
    group by all
),

final as (
    select
        pair_counts.strategy,
        pair_counts.density,
        pair_counts.n_pairs,
        pair_counts.n_sampled,
        pair_counts.density_achieved,
        pair_counts.relevant_share,
        pair_counts.mean_popularity_percentile,
        user_counts.n_users,
        user_counts.n_users_with_relevant
    from pair_counts
    inner join user_counts
        on
            pair_counts.strategy = user_counts.strategy
            and pair_counts.density = user_counts.density
)

select * from final
order by strategy, density

-- exposure_sample_thresholds: one row per exposure strategy and sparse set size n
-- (exposure_set_sizes, the distinct n_sampled of exposure_sample_sets): where the set's n
-- pairs end. The pairs of a strategy in sample order: sample_key (exposure_sample_keys)
-- largest first, ties by (user_id, candidate), which is (user_id, video_id) order; the set is
-- the first n of them, found without sorting:
--   threshold     = the n-th largest sample_key: quantile_disc(sample_key, (N - n + 0.5) / N)
--                   (ascending index ceil(N * q) - 1 = N - n), N = exposure_n_pairs
--   n_above       = pairs with sample_key > threshold (n - 1 when one pair has the threshold;
--                   counted only when several share it)
--   cut_user_id,
--   cut_candidate = the (n - n_above)-th of the pairs at the threshold in (user_id, candidate)
--                   order: the last one the set takes
--   takes_every_tie = the set takes every pair at the threshold (always so when one pair has it)
-- A pair is in the set when sample_key > threshold, or sample_key = threshold and
-- (user_id, candidate) <= (cut_user_id, cut_candidate).
with

keys as (
    select
        strategy,
        user_id,
        unnest(sample_keys) as sample_key,
        unnest(range(1, len(sample_keys) + 1)) as candidate
    from exposure_sample_keys
),

quantiles as (
    select
        strategy,
        quantile_disc(
            sample_key,
            list_transform(
                getvariable('exposure_set_sizes'),
                lambda n: (getvariable('exposure_n_pairs') - n + 0.5)
                / getvariable('exposure_n_pairs')
            )
        ) as thresholds
    from keys
    group by strategy
),

thresholds as (
    select
        strategy,
        unnest(getvariable('exposure_set_sizes')) as n_sampled,
        unnest(thresholds) as threshold
    from quantiles
),

at_threshold as (
    select
        thresholds.strategy,
        thresholds.n_sampled,
        keys.user_id,
        keys.candidate,
        row_number() over (
            partition by thresholds.strategy, thresholds.n_sampled
            order by keys.user_id, keys.candidate
        ) as tie_rank,
        count(*) over (partition by thresholds.strategy, thresholds.n_sampled) as n_at
    from thresholds
    inner join keys
        on
            thresholds.strategy = keys.strategy
            and thresholds.threshold = keys.sample_key
),

shared_thresholds as (
    select distinct
        strategy,
        n_sampled
    from at_threshold
    where n_at > 1
),

shared_above as (
    select
        thresholds.strategy,
        thresholds.n_sampled,
        count(keys.sample_key) as n_above
    from thresholds
    inner join shared_thresholds
        on
            thresholds.strategy = shared_thresholds.strategy
            and thresholds.n_sampled = shared_thresholds.n_sampled
    left join keys
        on
            thresholds.strategy = keys.strategy
            and thresholds.threshold < keys.sample_key
    group by thresholds.strategy, thresholds.n_sampled
),

final as (
    select
        thresholds.strategy,
        thresholds.n_sampled,
        thresholds.threshold,
        coalesce(shared_above.n_above, thresholds.n_sampled - 1) as n_above,
        at_threshold.user_id as cut_user_id,
        at_threshold.candidate as cut_candidate,
        at_threshold.tie_rank = at_threshold.n_at as takes_every_tie
    from thresholds
    left join shared_above
        on
            thresholds.strategy = shared_above.strategy
            and thresholds.n_sampled = shared_above.n_sampled
    inner join at_threshold
        on
            thresholds.strategy = at_threshold.strategy
            and thresholds.n_sampled = at_threshold.n_sampled
            and at_threshold.tie_rank
            = thresholds.n_sampled - coalesce(shared_above.n_above, thresholds.n_sampled - 1)
)

select * from final

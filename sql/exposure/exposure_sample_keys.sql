-- exposure_sample_keys: one row per exposure strategy and study user: every candidate's sample
-- key, in candidate order (exposure_user_candidates). Weighted random sampling without
-- replacement (Efraimidis and Spirakis 2006): each pair draws
--   u          = (first 13 hex digits of md5(seed:user_id:video_id) + 0.5) / 2^52, in (0, 1)
--   sample_key = ln(u) / w, with the strategy's exposure weight w > 0
-- The n pairs of largest sample_key are a weighted sample of exactly n pairs
-- (exposure_sample_thresholds), so a sparser sample lies inside every denser one of the same
-- strategy. Weights:
--   uniform    : w = 1 (every pair equally likely)
--   positivity : w = exposure_positivity_weight for a relevant pair, 1 otherwise
--   popularity : w = (training users who viewed the video + 1) ^ exposure_popularity_exponent
-- The reference set 'fully_observed' takes every pair and is not sampled: it has no rows here.
-- Every strategy uses the same draws u (common random numbers); md5, not hash(), keeps the
-- samples identical across DuckDB versions.
with

users as (
    select * from exposure_user_candidates
),

strategies as (
    select distinct strategy from exposure_sample_sets
    where strategy <> 'fully_observed'
),

prefixed as (
    select
        user_id,
        video_ids,
        labels,
        n_video_users,
        getvariable('exposure_seed')::varchar || ':' || user_id::varchar || ':' as draw_prefix
    from users
),

draws as (
    select
        user_id,
        labels,
        n_video_users,
        list_transform(
            video_ids,
            lambda video_id: (
                ('0x' || substr(md5(draw_prefix || video_id::varchar), 1, 13))::bigint::double
                + 0.5
            ) / 4503599627370496
        ) as draws
    from prefixed
),

strategy_draws as (
    select
        strategies.strategy,
        draws.user_id,
        draws.labels,
        draws.n_video_users,
        draws.draws
    from strategies
    cross join draws
),

final as (
    select
        strategy,
        user_id,
        case strategy
            when 'uniform' then list_transform(draws, lambda u: ln(u))
            when 'positivity'
                then list_transform(
                    range(1, len(draws) + 1),
                    lambda candidate: ln(draws[candidate]) / if(
                        labels[candidate], getvariable('exposure_positivity_weight'), 1.0
                    )
                )
            when 'popularity'
                then list_transform(
                    range(1, len(draws) + 1),
                    lambda candidate: ln(draws[candidate]) / pow(
                        n_video_users[candidate] + 1,
                        getvariable('exposure_popularity_exponent')
                    )
                )
        end as sample_keys
    from strategy_draws
)

select * from final

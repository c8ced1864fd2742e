-- exposure_sample_order: one row per exposure strategy and (user, video) pair of the study
-- (exposure_pairs: the fully observed pairs of the study's users). Weighted random sampling
-- without replacement (Efraimidis and Spirakis 2006): each pair draws
--   u          = (first 13 hex digits of md5(seed:user_id:video_id) + 0.5) / 2^52, in (0, 1)
--   sample_key = ln(u) / w, with the strategy's exposure weight w > 0
-- and sample_position numbers the pairs by sample_key, largest first (ties: user_id, video_id);
-- the table keeps the position only.
-- The first n positions are a weighted sample of exactly n pairs, so the sample of density d is
-- sample_position <= round(d * N): it hits its density exactly, and a sparser sample lies inside
-- every denser one of the same strategy. Weights:
--   uniform    : w = 1 (every pair equally likely)
--   positivity : w = exposure_positivity_weight for a relevant pair, 1 otherwise
--   popularity : w = (training users who viewed the video + 1) ^ exposure_popularity_exponent
-- The reference set 'fully_observed' takes every pair and is not sampled: it has no rows here.
-- Every strategy uses the same draws u (common random numbers); md5, not hash(), keeps the
-- samples identical across DuckDB versions.
with

pairs as (
    select * from exposure_pairs
),

sample_sets as (
    select * from exposure_sample_sets
),

strategies as (
    select distinct strategy from sample_sets
    where strategy <> 'fully_observed'
),

draws as (
    select
        user_id,
        video_id,
        is_relevant,
        n_video_users,
        (
            (
                '0x' || substr(
                    md5(
                        getvariable('exposure_seed')::varchar
                        || ':' || user_id::varchar || ':' || video_id::varchar
                    ),
                    1,
                    13
                )
            )::bigint::double + 0.5
        ) / 4503599627370496 as draw
    from pairs
),

weighted as (
    select
        strategies.strategy,
        draws.user_id,
        draws.video_id,
        draws.is_relevant,
        draws.draw,
        case strategies.strategy
            when 'uniform' then 1.0
            when 'positivity'
                then
                    case
                        when draws.is_relevant then getvariable('exposure_positivity_weight')
                        else 1.0
                    end
            when 'popularity'
                then pow(draws.n_video_users + 1, getvariable('exposure_popularity_exponent'))
        end::double as exposure_weight
    from strategies
    cross join draws
),

final as (
    select
        strategy,
        user_id,
        video_id,
        is_relevant,
        row_number() over (
            partition by strategy
            order by ln(draw) / exposure_weight desc, user_id asc, video_id asc
        ) as sample_position
    from weighted
)

select * from final

-- int_resampling_weights: one row per resample (replicate 1 .. 1,000) and user (every
-- big-matrix user of int_user_index and every small-matrix user): the user's bootstrap weight
-- and sign-flip sign in that resample. Seeded, so every build of the same data gives the same
-- rows; a user's draws depend on its id only, so every per-user aggregate (small-matrix
-- metrics, big-matrix lists, the temporal split) resamples a user with the same weights.
--   digest = md5('<seed>:<replicate>:<user_id>')  (md5, not hash(): stable across versions)
--   u      = (first 13 hex digits of digest as an integer + 0.5) / 16^13, uniform in (0, 1)
--   weight = the smallest n with F(n) >= u, F(n) = e^-1 * sum over i = 0 .. n of 1 / i!:
--            the inverse CDF of Poisson(1), so weights are 0, 1, 2, ... with P(n) = e^-1 / n!
--            (the Poisson bootstrap: each user is drawn weight times into the replicate)
--   sign   = +1 when the last hex digit of digest is even, else -1 (the sign-flip test)
-- The integer is cast to double before adding 0.5 (exact: it is below 2^52): bigint + 0.5 would
-- be decimal arithmetic, several times slower, for the same bits.
-- seed = 42 and 1,000 replicates are constants of this file (no build parameter yet); set
-- variables bootstrap_seed / bootstrap_replicates to override them.
with

ground_truth as (
    select * from int_ground_truth
),

user_index as (
    select * from int_user_index
),

settings as (
    select
        coalesce(getvariable('bootstrap_seed'), 42)::bigint as seed,
        coalesce(getvariable('bootstrap_replicates'), 1000)::integer as n_replicates
),

users as (
    select user_id from ground_truth
    union
    select user_id from user_index
),

replicates as (
    select replicates.range::integer as replicate
    from settings
    cross join range(1, settings.n_replicates + 1) as replicates
),

-- F(n) for n = 0 .. 20; F(20) rounds to 1.0, above every u.
poisson_cdf as (
    select
        counts.range::integer as n,
        sum(exp(-1) / gamma(counts.range + 1)) over (
            order by counts.range rows between unbounded preceding and current row
        ) as cdf
    from range(0, 21) as counts
),

-- the 21 values as one list, so that each draw counts them without a join
cdf_list as (
    select list(cdf order by n) as cdfs from poisson_cdf
),

draws as (
    select
        replicates.replicate,
        users.user_id,
        md5(
            settings.seed::varchar || ':' || replicates.replicate::varchar || ':'
            || users.user_id::varchar
        ) as digest,
        (('0x' || left(digest, 13))::bigint::double + 0.5) / 16 ^ 13 as uniform,
        case when ('0x' || right(digest, 1))::integer % 2 = 0 then 1 else -1 end as sign
    from replicates
    cross join users
    cross join settings
),

draws_and_cdfs as (
    select
        draws.*,
        cdf_list.cdfs
    from draws
    cross join cdf_list
),

final as (
    select
        replicate,
        user_id,
        len(list_filter(cdfs, lambda cdf: cdf < uniform))::integer as weight,
        sign::integer as sign
    from draws_and_cdfs
)

select * from final

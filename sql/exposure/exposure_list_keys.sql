-- exposure_list_keys: one row per sample set (strategy, density), model and user with at least
-- one relevant sampled video: the first pass of exposure_user_metrics. A model's ranking of a
-- user's sampled candidates is its full ranking (exposure_full_ranks) restricted to the sampled
-- ones; this pass reads only the model's ranks 1 .. exposure_rank_depth
-- (exposure_shallow_ranks, a table of its own, so that the join knows which side is small).
--   n_relevant      = R, the user's relevant sampled videos; n_sampled = the user's sampled videos
--   labels_in_order = is_relevant of the first max(k) sampled videos found in that prefix, in
--                     rank order
--   is_complete     = the prefix holds the list's first max(k) sampled videos: it found max(k)
--                     of them, or every one the user has (least(max(k), n_sampled))
-- exposure_user_metrics takes the incomplete lists again from every rank, so the result does
-- not depend on the depth; the depth only decides how much work the second pass has.
-- The tables are read "not materialized": DuckDB would otherwise copy a CTE that is read twice
-- into memory (11M rows of sample_order), which at full scale did not fit in 1 GB.
with

pairs as not materialized (
    select * from exposure_pairs
),

sample_sets as not materialized (
    select * from exposure_sample_sets
),

sample_order as not materialized (
    select * from exposure_sample_order
),

shallow_ranks as not materialized (
    select * from exposure_shallow_ranks
),

-- one row per sample set and sampled pair ('fully_observed': every pair)
set_pairs as (
    select
        sample_sets.strategy,
        sample_sets.density,
        sample_order.user_id,
        sample_order.video_id,
        sample_order.is_relevant
    from sample_sets
    inner join sample_order
        on
            sample_sets.strategy = sample_order.strategy
            and sample_sets.n_sampled >= sample_order.sample_position
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        user_id,
        video_id,
        is_relevant
    from pairs
),

-- counted from the sets directly, not from set_pairs, so that set_pairs is read once and
-- streams
user_relevance as (
    select
        sample_sets.strategy,
        sample_sets.density,
        sample_order.user_id,
        count(*) as n_sampled,
        count(*) filter (where sample_order.is_relevant) as n_relevant
    from sample_sets
    inner join sample_order
        on
            sample_sets.strategy = sample_order.strategy
            and sample_sets.n_sampled >= sample_order.sample_position
    group by all
    having count(*) filter (where sample_order.is_relevant) > 0
    union all
    select
        'fully_observed' as strategy,
        1.0::double as density,
        user_id,
        count(*) as n_sampled,
        count(*) filter (where is_relevant) as n_relevant
    from pairs
    group by all
    having count(*) filter (where is_relevant) > 0
),

models as (
    select distinct model from shallow_ranks
),

shallow_lists as (
    select
        set_pairs.strategy,
        set_pairs.density,
        shallow_ranks.model,
        set_pairs.user_id,
        min_by(
            set_pairs.is_relevant,
            shallow_ranks.full_rank,
            list_max(getvariable('exposure_k'))
        ) as labels_in_order,
        count(*) as n_found
    from set_pairs
    inner join shallow_ranks
        on
            set_pairs.user_id = shallow_ranks.user_id
            and set_pairs.video_id = shallow_ranks.video_id
    group by all
),

final as (
    select
        user_relevance.strategy,
        user_relevance.density,
        models.model,
        user_relevance.user_id,
        user_relevance.n_relevant,
        user_relevance.n_sampled,
        shallow_lists.labels_in_order,
        coalesce(shallow_lists.n_found, 0)
        >= least(list_max(getvariable('exposure_k')), user_relevance.n_sampled) as is_complete
    from user_relevance
    cross join models
    left join shallow_lists
        on
            user_relevance.strategy = shallow_lists.strategy
            and user_relevance.density = shallow_lists.density
            and models.model = shallow_lists.model
            and user_relevance.user_id = shallow_lists.user_id
)

select * from final

-- eval_metrics_ci: one row per model, split (tune, test or all), k and metric: eval_metrics'
-- mean with a 95% bootstrap percentile interval over users.
--   value            = mean over the split's users of eval_user_metrics.value v_u
--                      (= eval_metrics.value)
--   replicate mean   = sum over users of w_ru * v_u / sum over users of w_ru, with w_ru the
--                      Poisson(1) weight of user u in replicate r (int_resampling_weights)
--   ci_low, ci_high  = the 2.5th and 97.5th percentiles of the replicate means (quantile_cont:
--                      linear interpolation between order statistics); a replicate whose
--                      weights are all 0 has no mean and is skipped
--   n_users          = users in the mean; n_replicates = replicates with a mean
-- The weighted sums are taken per split and added up for 'all', so 'all' resamples the same
-- users with the same weights as tune and test. A series that lacks some user of its split
-- (eval_user_metrics never does) gets no interval rather than a misaligned one.
with

user_metrics as materialized (
    select * from eval_user_metrics
),

user_relevance as (
    select * from eval_user_relevance
),

resamples as (
    select * from int_resampling_weights
),

full_data as (
    select
        model,
        coalesce(split, 'all') as split,
        k,
        metric,
        avg(value) as value,
        count(*) as n_users
    from user_metrics
    group by grouping sets ((model, split, k, metric), (model, k, metric))
),

-- The users eval_user_metrics scores: those with a relevant video.
split_users as (
    select
        split,
        user_id
    from user_relevance
    where n_relevant > 0
),

-- The replicate sums as a matrix product: for each series (model, split, k, metric) the
-- values v_u, and for each replicate the weights w_ru, as vectors over the split's users in
-- user_id order, multiplied with list_dot_product (no row per user and replicate).
weight_vectors as (
    select
        split_users.split,
        resamples.replicate,
        list(resamples.weight::double order by resamples.user_id) as weights,
        sum(resamples.weight) as weight_sum,
        count(*) as n_users
    from split_users
    inner join resamples on split_users.user_id = resamples.user_id
    group by split_users.split, resamples.replicate
),

value_vectors as (
    select
        model,
        split,
        k,
        metric,
        list(value order by user_id) as metric_values,
        count(*) as n_users
    from user_metrics
    group by model, split, k, metric
),

-- equal counts: the series has every user of its split, so the two vectors line up
split_sums as (
    select
        value_vectors.model,
        value_vectors.split,
        value_vectors.k,
        value_vectors.metric,
        weight_vectors.replicate,
        list_dot_product(value_vectors.metric_values, weight_vectors.weights) as weighted_sum,
        weight_vectors.weight_sum
    from value_vectors
    inner join weight_vectors
        on
            value_vectors.split = weight_vectors.split
            and value_vectors.n_users = weight_vectors.n_users
),

replicate_means as (
    select
        model,
        coalesce(split, 'all') as split,
        k,
        metric,
        replicate,
        sum(weighted_sum) / nullif(sum(weight_sum), 0) as mean_value
    from split_sums
    group by grouping sets ((model, split, k, metric, replicate), (model, k, metric, replicate))
),

intervals as (
    select
        model,
        split,
        k,
        metric,
        quantile_cont(mean_value, [0.025, 0.975]) as ci,
        count(mean_value) as n_replicates
    from replicate_means
    group by model, split, k, metric
),

final as (
    select
        full_data.model,
        full_data.split,
        full_data.k,
        full_data.metric,
        full_data.value,
        intervals.ci[1] as ci_low,
        intervals.ci[2] as ci_high,
        full_data.n_users,
        intervals.n_replicates
    from full_data
    left join intervals
        on
            full_data.model = intervals.model
            and full_data.split = intervals.split
            and full_data.k = intervals.k
            and full_data.metric = intervals.metric
)

select * from final

-- eval_resampled_sums: one row per model, split (tune, test or all), k, metric and replicate:
-- the sums behind eval_metrics_ci and eval_paired, over the split's users u of the values v_u of
-- eval_user_metrics and the replicate's weight w_ru and sign s_ru (int_resampling_weights):
--   weighted_sum = sum of w_ru * v_u     weight_sum = sum of w_ru
--   signed_sum   = sum of s_ru * v_u     value_sum  = sum of v_u
-- Taken as a matrix product: per series the values, per replicate the weights and signs, as
-- vectors over the split's users in user_id order, multiplied with list_dot_product (no row
-- per user and replicate). A series is joined only when it has every user of its split (equal
-- counts), so the vectors line up; 'all' adds the two splits.
with

user_metrics as (
    select * from eval_user_metrics
),

user_relevance as (
    select * from eval_user_relevance
),

resamples as (
    select * from int_resampling_weights
),

-- The users eval_user_metrics scores: those with a relevant video.
split_users as (
    select
        split,
        user_id
    from user_relevance
    where n_relevant > 0
),

resample_vectors as (
    select
        split_users.split,
        resamples.replicate,
        list(resamples.weight::double order by resamples.user_id) as weights,
        list(resamples.sign::double order by resamples.user_id) as signs,
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
        sum(value) as value_sum,
        count(*) as n_users
    from user_metrics
    group by model, split, k, metric
),

split_sums as (
    select
        value_vectors.model,
        value_vectors.split,
        value_vectors.k,
        value_vectors.metric,
        resample_vectors.replicate,
        list_dot_product(value_vectors.metric_values, resample_vectors.weights) as weighted_sum,
        resample_vectors.weight_sum,
        list_dot_product(value_vectors.metric_values, resample_vectors.signs) as signed_sum,
        value_vectors.value_sum
    from value_vectors
    inner join resample_vectors
        on
            value_vectors.split = resample_vectors.split
            and value_vectors.n_users = resample_vectors.n_users
),

final as (
    select
        model,
        coalesce(split, 'all') as split,
        k,
        metric,
        replicate,
        sum(weighted_sum) as weighted_sum,
        sum(weight_sum) as weight_sum,
        sum(signed_sum) as signed_sum,
        sum(value_sum) as value_sum
    from split_sums
    group by grouping sets ((model, split, k, metric, replicate), (model, k, metric, replicate))
)

select * from final

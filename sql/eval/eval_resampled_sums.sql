-- eval_resampled_sums: one row per series of eval_user_values (relation, model, split,
-- segment_kind, segment, k, metric) and replicate: the sums behind every bootstrap interval
-- (eval_intervals) and the paired test (eval_paired), over the series' users u of their
-- values v_u and the replicate's weight w_ru and sign s_ru (int_resampling_weights):
--   weighted_sum = sum of w_ru * v_u     weight_sum = sum of w_ru
--   signed_sum   = sum of s_ru * v_u     value_sum  = sum of v_u      n_users = users
-- This is the project's one definition of the bootstrap; a command that resamples other
-- per-user values (exposure-study's temporal split) runs this file over a temp table of the
-- same name and shape as eval_user_values.
-- Taken as a matrix product: a cell is (relation, split, segment_kind, segment), the users any
-- of its series has; per series the values, per cell and replicate the weights and signs, as
-- vectors over the cell's users in user_id order, multiplied with list_dot_product (no row per
-- user and replicate). A series is joined only when it has every user of its cell (equal
-- counts), so the vectors line up. Splits tune and test are strata: a split 'all' series is
-- their users together, in one vector (the sum of the two strata's sums, without a group-by
-- of every replicate's rows; eval_intervals checks that its n_users is the whole count).
-- Every sum runs in user_id order (a list), so it is the same bits on any number of threads.
with

-- not materialized: a view that wants one relation's series (eval_metrics_ci, eval_paired)
-- then reads only those; a tune or test row is also a row of split 'all'
user_values as not materialized (
    select
        * replace (
            unnest(
                case when split in ('tune', 'test') then [split, 'all'] else [split] end
            ) as split
        )
    from eval_user_values
),

resamples as (
    select * from int_resampling_weights
),

cell_users as (
    select distinct
        relation,
        split,
        segment_kind,
        segment,
        user_id
    from user_values
),

resample_vectors as (
    select
        cell_users.relation,
        cell_users.split,
        cell_users.segment_kind,
        cell_users.segment,
        resamples.replicate,
        list(resamples.weight::double order by resamples.user_id) as weights,
        list(resamples.sign::double order by resamples.user_id) as signs,
        sum(resamples.weight) as weight_sum,
        count(*) as n_users
    from cell_users
    inner join resamples on cell_users.user_id = resamples.user_id
    group by all
),

value_vectors as (
    select
        relation,
        model,
        split,
        segment_kind,
        segment,
        k,
        metric,
        list(value::double order by user_id) as metric_values,
        count(*) as n_users
    from user_values
    group by all
),

value_series as (
    select
        *,
        list_sum(metric_values) as value_sum
    from value_vectors
),

split_sums as (
    select
        value_series.relation,
        value_series.model,
        value_series.split,
        value_series.segment_kind,
        value_series.segment,
        value_series.k,
        value_series.metric,
        resample_vectors.replicate,
        list_dot_product(value_series.metric_values, resample_vectors.weights) as weighted_sum,
        resample_vectors.weight_sum,
        list_dot_product(value_series.metric_values, resample_vectors.signs) as signed_sum,
        value_series.value_sum,
        value_series.n_users
    from value_series
    inner join resample_vectors
        on
            value_series.relation = resample_vectors.relation
            and value_series.split = resample_vectors.split
            and value_series.segment_kind = resample_vectors.segment_kind
            and value_series.segment = resample_vectors.segment
            and value_series.n_users = resample_vectors.n_users
),

final as (
    select * from split_sums
)

select * from final

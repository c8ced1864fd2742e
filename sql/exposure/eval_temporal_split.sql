-- eval_temporal_split: one row per model, k and metric: the usual sparse protocol beside the
-- fully observed one, each value with its 95% bootstrap interval over users (sql/eval's
-- eval_intervals, the project's one bootstrap, run by exposure-study over
-- temporal_user_metrics into temporal_intervals). Per-user values and their formulas:
-- temporal_user_metrics.
--   value           = mean over the users with a relevant test view; n_users = how many
--   ci_low, ci_high = its 95% bootstrap percentile interval
--   full_value      = the model's eval_metrics value on the fully observed test users
--                     (trained on the whole big matrix; temporal_reference), with
--   full_ci_low/high  its eval_metrics_ci interval; full_n_users = the users of that mean
--   model_rank      = rank by value among the retrained models (1 = best; ties share)
--   full_model_rank = rank by full_value among the same models
--   kendall_tau     = Kendall's tau-b between the two orders of these models (the macro
--                     kendall_tau_b, sql/macros/: differences within 1e-9 are ties)
-- Means by exact_avg (sql/macros/): the same bits in any row order (the same seed gives an
-- identical table).
with

user_metrics as (
    select * from temporal_user_metrics
),

reference as (
    select * from temporal_reference
),

intervals as (
    select * from temporal_intervals
),

compared as (
    select
        user_metrics.model,
        user_metrics.k,
        user_metrics.metric,
        exact_avg(user_metrics.value) as value,
        count(*) as n_users,
        any_value(reference.value) as full_value,
        any_value(reference.ci_low) as full_ci_low,
        any_value(reference.ci_high) as full_ci_high,
        any_value(reference.n_users) as full_n_users
    from user_metrics
    left join reference
        on
            user_metrics.model = reference.model
            and user_metrics.k = reference.k
            and user_metrics.metric = reference.metric
    group by user_metrics.model, user_metrics.k, user_metrics.metric
),

taus as (
    select
        model_a.k,
        model_a.metric,
        kendall_tau_b(
            model_a.value - model_b.value, model_a.full_value - model_b.full_value
        ) as kendall_tau
    from compared as model_a
    inner join compared as model_b
        on
            model_a.k = model_b.k
            and model_a.metric = model_b.metric
            and model_a.model < model_b.model
    group by model_a.k, model_a.metric
),

final as (
    select
        compared.model,
        compared.k,
        compared.metric,
        compared.value,
        intervals.ci_low,
        intervals.ci_high,
        compared.n_users,
        rank() over (
            partition by compared.k, compared.metric order by compared.value desc
        ) as model_rank,
        compared.full_value,
        compared.full_ci_low,
        compared.full_ci_high,
        compared.full_n_users,
        rank() over (
            partition by compared.k, compared.metric order by compared.full_value desc
        ) as full_model_rank,
        taus.kendall_tau
    from compared
    left join taus on compared.k = taus.k and compared.metric = taus.metric
    left join intervals
        on
            compared.model = intervals.model
            and compared.k = intervals.k
            and compared.metric = intervals.metric
)

select * from final
order by k, metric, model_rank, model

-- eval_exposure_study: one row per sample set (strategy, density), model, k and metric: the
-- study over its R repeats (eval_exposure_repeats: one sampling seed each), beside the fully
-- observed values. Over the repeats r = 1 .. R of a row, x_r = the repeat's value:
--   value            = mean of x_r; value_sd = their sample standard deviation
--   ci_low, ci_high  = 95% t-interval of that mean: value -+ t * value_sd / sqrt(R), with
--                      t = the 97.5th percentile of Student's t with R - 1 degrees of freedom
--                      (variable exposure_t_quantile); null when R = 1. The reference set
--                      'fully_observed' is not sampled: its interval is full_ci_low/high
--   n_users          = mean over repeats of the users with a relevant sampled video
--   model_rank       = rank of the model by value (1 = best; rank(): ties share)
--   top_share        = share of repeats in which the model ranks first (model_rank 1 there)
--   full_value       = the model's value on the fully observed matrix, with its 95% bootstrap
--   full_ci_low/high   interval over users (exposure_full_intervals, from sql/eval's
--                      eval_intervals: the project's one bootstrap)
--   full_model_rank  = rank of the model by full_value
--   kendall_tau      = mean over repeats of the repeat's Kendall's tau-b between the models'
--                      order on the sparse set and on the full matrix; tau_ci_low/high its
--                      t-interval as above, clipped to [-1, 1]
--   top_model_changed = share of repeats in which the fully observed best model
--                      (full_model_rank 1) is not first on the sparse set: how often sparse
--                      exposure changes which model looks best
--   n_repeats        = R
with

repeats as (
    select * from eval_exposure_repeats
),

full_intervals as (
    select * from exposure_full_intervals
),

per_repeat_sets as (
    select
        strategy,
        density,
        repeat,
        k,
        metric,
        any_value(kendall_tau) as kendall_tau,
        coalesce(bool_or(full_model_rank = 1 and model_rank = 1), false) = false
            as is_top_changed
    from repeats
    group by all
),

set_summaries as (
    select
        strategy,
        density,
        k,
        metric,
        -- over the sorted values: the same bits whatever order the threads add them in
        list_avg(list_sort(list(kendall_tau))) as kendall_tau,
        list_stddev_samp(list_sort(list(kendall_tau))) as tau_sd,
        count(kendall_tau) as n_taus,
        avg(is_top_changed::integer) as top_model_changed
    from per_repeat_sets
    group by all
),

model_summaries as (
    select
        strategy,
        density,
        model,
        k,
        metric,
        list_avg(list_sort(list(value))) as value,
        list_stddev_samp(list_sort(list(value))) as value_sd,
        count(*) as n_repeats,
        avg(n_users) as n_users,
        avg((model_rank = 1)::integer) as top_share,
        any_value(full_value) as full_value,
        any_value(full_model_rank) as full_model_rank
    from repeats
    group by all
),

final as (
    select
        model_summaries.strategy,
        model_summaries.density,
        model_summaries.model,
        model_summaries.k,
        model_summaries.metric,
        model_summaries.value,
        case
            when model_summaries.strategy = 'fully_observed' then full_intervals.ci_low
            else
                model_summaries.value
                - getvariable('exposure_t_quantile') * model_summaries.value_sd
                / sqrt(model_summaries.n_repeats)
        end as ci_low,
        case
            when model_summaries.strategy = 'fully_observed' then full_intervals.ci_high
            else
                model_summaries.value
                + getvariable('exposure_t_quantile') * model_summaries.value_sd
                / sqrt(model_summaries.n_repeats)
        end as ci_high,
        model_summaries.value_sd,
        model_summaries.n_users,
        rank() over (
            partition by
                model_summaries.strategy,
                model_summaries.density,
                model_summaries.k,
                model_summaries.metric
            order by model_summaries.value desc
        ) as model_rank,
        model_summaries.top_share,
        model_summaries.full_value,
        full_intervals.ci_low as full_ci_low,
        full_intervals.ci_high as full_ci_high,
        model_summaries.full_model_rank,
        set_summaries.kendall_tau,
        greatest(
            -1.0,
            set_summaries.kendall_tau
            - getvariable('exposure_t_quantile') * set_summaries.tau_sd
            / sqrt(set_summaries.n_taus)
        ) as tau_ci_low,
        least(
            1.0,
            set_summaries.kendall_tau
            + getvariable('exposure_t_quantile') * set_summaries.tau_sd
            / sqrt(set_summaries.n_taus)
        ) as tau_ci_high,
        set_summaries.top_model_changed,
        model_summaries.n_repeats
    from model_summaries
    left join set_summaries
        on
            model_summaries.strategy = set_summaries.strategy
            and model_summaries.density = set_summaries.density
            and model_summaries.k = set_summaries.k
            and model_summaries.metric = set_summaries.metric
    left join full_intervals
        on
            model_summaries.model = full_intervals.model
            and model_summaries.k = full_intervals.k
            and model_summaries.metric = full_intervals.metric
)

select * from final
order by strategy, density, k, metric, model_rank, model

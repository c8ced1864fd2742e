-- exposure_repeat_study: one row per sample set (strategy, density), model, k and metric of one
-- repeat of the study (one sampling seed, exposure_seed): the model's accuracy measured on a
-- sparse test set, beside its accuracy on the fully observed matrix and how well the sparse
-- set ranks the models. exposure-study stores every repeat in eval_exposure_repeats.
--   value           = mean of exposure_user_metrics.value over the set's users with a
--                     relevant sampled video; n_users = how many
--   full_value      = the same on the fully observed matrix (strategy 'fully_observed')
--   model_rank      = rank of the model by value in its set, 1 = best (rank(): ties share)
--   full_model_rank = rank of the model by full_value
--   kendall_tau     = Kendall's tau-b between the models' order by value and by full_value,
--                     over all pairs of models (a, b) of the set (the macro kendall_tau_b,
--                     sql/macros/):
--                       s = sign(value_a - value_b), f = sign(full_value_a - full_value_b)
--                       (a difference within 1e-9 is a tie, sign 0)
--                       tau_b = sum of s * f / sqrt(sum of |s| * sum of |f|)
--                     1: the sparse set orders the models as the full matrix does; -1:
--                     reversed; null when one side ties every pair (or with one model)
-- Means by exact_avg (sql/macros/): the same bits in any row order (the same seed gives an
-- identical table).
with

user_metrics as (
    select * from exposure_user_metrics
),

set_means as (
    select
        strategy,
        density,
        model,
        k,
        metric,
        exact_avg(value) as value,
        count(*) as n_users
    from user_metrics
    group by all
),

reference as (
    select
        model,
        k,
        metric,
        value as full_value
    from set_means
    where strategy = 'fully_observed'
),

compared as (
    select
        set_means.strategy,
        set_means.density,
        set_means.model,
        set_means.k,
        set_means.metric,
        set_means.value,
        set_means.n_users,
        reference.full_value
    from set_means
    inner join reference
        on
            set_means.model = reference.model
            and set_means.k = reference.k
            and set_means.metric = reference.metric
),

taus as (
    select
        model_a.strategy,
        model_a.density,
        model_a.k,
        model_a.metric,
        kendall_tau_b(
            model_a.value - model_b.value, model_a.full_value - model_b.full_value
        ) as kendall_tau
    from compared as model_a
    inner join compared as model_b
        on
            model_a.strategy = model_b.strategy
            and model_a.density = model_b.density
            and model_a.k = model_b.k
            and model_a.metric = model_b.metric
            and model_a.model < model_b.model
    group by model_a.strategy, model_a.density, model_a.k, model_a.metric
),

final as (
    select
        compared.strategy,
        compared.density,
        compared.model,
        compared.k,
        compared.metric,
        compared.value,
        compared.n_users,
        rank() over (
            partition by compared.strategy, compared.density, compared.k, compared.metric
            order by compared.value desc
        ) as model_rank,
        compared.full_value,
        rank() over (
            partition by compared.strategy, compared.density, compared.k, compared.metric
            order by compared.full_value desc
        ) as full_model_rank,
        taus.kendall_tau
    from compared
    left join taus
        on
            compared.strategy = taus.strategy
            and compared.density = taus.density
            and compared.k = taus.k
            and compared.metric = taus.metric
)

select * from final
order by strategy, density, k, metric, model_rank, model

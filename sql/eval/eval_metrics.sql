-- eval_metrics: one row per model, split (tune, test or all), k and metric.
-- value = mean of eval_user_metrics.value over the split's users with at least one relevant
-- video; n_users = how many users that mean is over. Formulas: see eval_user_metrics.
with

user_metrics as (
    select * from eval_user_metrics
),

final as (
    select
        model,
        coalesce(split, 'all') as split,
        k,
        metric,
        -- over the sorted values: the same bits whatever order the threads add them in
        list_avg(list_sort(list(value))) as value,
        count(*) as n_users
    from user_metrics
    group by grouping sets ((model, split, k, metric), (model, k, metric))
)

select * from final

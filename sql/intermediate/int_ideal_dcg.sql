-- int_ideal_dcg: one row per number of hits n (1 .. the largest k): the ideal DCG of n hits,
-- ideal_dcg = sum over ranks i = 1 .. n of 1 / log2(i + 1).
with

ranks as (
    select range::integer as n_hits
    from range(1, list_max(getvariable('eval_k'))::bigint + 1)
),

final as (
    select
        n_hits,
        sum(1 / log2(n_hits + 1)) over (order by n_hits) as ideal_dcg
    from ranks
)

select * from final

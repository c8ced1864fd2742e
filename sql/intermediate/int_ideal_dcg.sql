-- int_ideal_dcg: one row per number of hits n (1 .. the largest k): the ideal DCG of n hits,
-- ideal_dcg = sum over ranks i = 1 .. n of 1 / log2(i + 1) (the macro ideal_dcgs, the one
-- definition, sql/macros/ideal_dcgs.sql).
with

final as (
    select
        n_hits,
        ideal_dcg
    from ideal_dcgs(list_max(getvariable('eval_k')))
)

select * from final

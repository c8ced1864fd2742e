-- int_eval_cutoffs: one row per cutoff k at which the metrics are computed (the --k option).
with

final as (
    select unnest(getvariable('eval_k'))::integer as k
)

select * from final

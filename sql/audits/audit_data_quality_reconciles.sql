-- audit_data_quality_reconciles: input files whose read count is not kept + drops.
-- Must return no rows.
with

quality as (
    select * from data_quality
),

final as (
    select
        source,
        sum(n_rows) filter (where role = 'read') as n_read,
        sum(n_rows) filter (where role = 'kept') as n_kept,
        coalesce(sum(n_rows) filter (where role = 'drop'), 0) as n_dropped
    from quality
    group by source
    having n_read is distinct from n_kept + n_dropped
)

select * from final

-- ideal_dcgs(max_hits): a table macro, one row per number of hits n = 1 .. max_hits: the ideal
-- DCG of n hits, the DCG of a list whose first n videos are all relevant,
--   ideal_dcg(n) = sum over ranks i = 1 .. n of 1 / log2(i + 1)
-- The running sum is a window over n (not a sum per n), the same bits in every caller:
-- int_ideal_dcg (the build's cutoffs) and the exposure study's per-user metrics.
create or replace macro ideal_dcgs(max_hits) as table
    with

    ranks as (
        select range::integer as n_hits
        from range(1, max_hits::bigint + 1)
    ),

    final as (
        select
            n_hits,
            sum(1 / log2(n_hits + 1)) over (order by n_hits) as ideal_dcg
        from ranks
    )

    select * from final

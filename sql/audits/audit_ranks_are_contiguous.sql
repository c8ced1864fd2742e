-- audit_ranks_are_contiguous: lists whose ranks are not exactly 1 .. n with distinct videos.
-- Must return no rows.
with

recs as (
    select * from recommendations
),

rankings as (
    select * from eval_rankings
),

lists as (
    select
        'recommendations' as relation,
        model,
        user_id,
        rank,
        video_id
    from recs
    union all
    select
        'eval_rankings' as relation,
        model,
        user_id,
        rank,
        video_id
    from rankings
),

final as (
    select
        relation,
        model,
        user_id
    from lists
    group by relation, model, user_id
    having
        min(rank) <> 1
        or max(rank) <> count(*)
        or count(distinct rank) <> count(*)
        or count(distinct video_id) <> count(*)
)

select * from final

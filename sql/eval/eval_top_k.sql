-- eval_top_k: one row per source, model, k, user and video in that user's top k (fewer rows
-- when the list is shorter). Source 'recommendations': every big-matrix user's list over the
-- whole catalogue; 'eval_rankings': every small-matrix user's ranked candidates. The lists
-- that eval_user_lists and eval_beyond_accuracy describe.
with

recommendation_lists as (
    select * from recommendations
),

ranking_lists as (
    select * from eval_rankings
),

cutoffs as (
    select * from int_eval_cutoffs
),

lists as (
    select
        'recommendations' as source,
        model,
        user_id,
        rank,
        video_id
    from recommendation_lists
    union all
    select
        'eval_rankings' as source,
        model,
        user_id,
        rank,
        video_id
    from ranking_lists
),

final as (
    select
        lists.source,
        lists.model,
        cutoffs.k,
        lists.user_id,
        lists.video_id
    from lists
    inner join cutoffs on lists.rank <= cutoffs.k
)

select * from final

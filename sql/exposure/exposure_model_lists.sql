-- exposure_model_lists: one row per model and study user: the model's first
-- exposure_rank_depth candidates (exposure_full_ranks) in rank order, as candidate numbers
-- (exposure_user_candidates), and their labels in the same order. The first pass of the top
-- lists (exposure_list_keys) reads these; the lists they cannot fill are taken from every rank
-- (exposure_user_metrics).
with

candidates as (
    select
        user_id,
        unnest(video_ids) as video_id,
        unnest(labels) as is_relevant,
        unnest(range(1, n_candidates + 1)) as candidate
    from exposure_user_candidates
),

first_ranks as (
    select * from exposure_full_ranks
    where full_rank <= getvariable('exposure_rank_depth')
),

final as (
    select
        first_ranks.model,
        first_ranks.user_id,
        list(candidates.candidate order by first_ranks.full_rank) as candidates,
        list(candidates.is_relevant order by first_ranks.full_rank) as labels
    from first_ranks
    inner join candidates
        on
            first_ranks.user_id = candidates.user_id
            and first_ranks.video_id = candidates.video_id
    group by first_ranks.model, first_ranks.user_id
)

select * from final

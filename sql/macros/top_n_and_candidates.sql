-- top_n_and_candidates(video_id, score, is_ranked, is_candidate): an aggregate macro over one
-- user's scored videos, the rows a SQL model that scores (user, video) pairs gives for that
-- user: the top_n (build variable) rows with is_ranked by score (ties: the smaller video_id
-- first), followed by every row with is_candidate (the user's int_ground_truth pairs), each
-- (video_id, score) once. Callers group by user_id and unnest the list. is_ranked marks the
-- unseen videos the model may recommend; the aggregate keeps only top_n of them per user, so a
-- stream of every (user, video) pair is never stored.
create or replace macro top_n_and_candidates(video_id, score, is_ranked, is_candidate) as
list_distinct(
    coalesce(
        max_by(
            struct_pack(video_id := video_id, score := score),
            struct_pack(score := score, video_order := -video_id),
            getvariable('top_n')
        ) filter (where is_ranked),
        []
    )
    || coalesce(
        list(struct_pack(video_id := video_id, score := score)) filter (where is_candidate),
        []
    )
)

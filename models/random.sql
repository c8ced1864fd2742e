-- random: one row per (user, video) pair the model ranks: a seeded pseudo-random score, the floor
-- every model must clear.
-- Keys from md5 (the same in every DuckDB version, unlike hash()), seed = the build's --seed
-- (default 42; the SQL variable model_seed): user_a, user_c = hex digits 1-8
-- and 9-16 of md5('user:' || user_id || ':' || seed) mod p; video_b, video_d likewise from
-- md5('video:' || video_id || ':' || seed); p = 2^31 - 1 (a prime).
-- score = ((user_a * video_b + user_c * video_d) mod p) / p, in [0, 1).
-- For one user the scores of different videos are as independent and uniform as the video keys,
-- and for two users the map from (video_b, video_d) to their two scores is invertible mod p
-- (unless user_a * user_c' = user_a' * user_c mod p, a 1 in p chance), so the two users' orders
-- are independent too. The products stay below 2^62 (exact bigint arithmetic), and two keys per
-- row cost far less than an md5 per (user, video) pair.
-- Pairs: every small-matrix user's candidates (int_ground_truth), and every big-matrix user's
-- top_n unseen videos by score (ties: smaller video_id), found by streaming all (user, video)
-- pairs through the macro top_n_and_candidates (sql/macros/, a top-n aggregate): the 77M pairs
-- of the full data are never stored.
-- At full scale this needs more DuckDB memory than the build's default 1 GB:
-- memory_limit: 3GB
with

users as (
    select * from int_user_index
),

videos as (
    select * from int_item_index
),

train_pairs as (
    select * from int_train_interactions
),

candidates as (
    select * from int_ground_truth
),

user_digests as (
    select
        user_id,
        md5('user:' || user_id || ':' || getvariable('model_seed')) as digest
    from users
),

user_keys as (
    select
        user_id,
        ('0x' || substr(digest, 1, 8))::bigint % 2147483647 as user_a,
        ('0x' || substr(digest, 9, 8))::bigint % 2147483647 as user_c
    from user_digests
),

video_digests as (
    select
        video_id,
        md5('video:' || video_id || ':' || getvariable('model_seed')) as digest
    from videos
),

video_keys as (
    select
        video_id,
        ('0x' || substr(digest, 1, 8))::bigint % 2147483647 as video_b,
        ('0x' || substr(digest, 9, 8))::bigint % 2147483647 as video_d
    from video_digests
),

unseen_scores as (
    select
        user_keys.user_id,
        video_keys.video_id,
        (
            user_keys.user_a * video_keys.video_b + user_keys.user_c * video_keys.video_d
        ) % 2147483647 / 2147483647 as score,
        true as is_ranked,
        false as is_candidate
    from user_keys
    cross join video_keys
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = user_keys.user_id
            and train_pairs.video_id = video_keys.video_id
    )
),

candidate_scores as (
    select
        candidates.user_id,
        candidates.video_id,
        (
            user_keys.user_a * video_keys.video_b + user_keys.user_c * video_keys.video_d
        ) % 2147483647 / 2147483647 as score,
        false as is_ranked,
        true as is_candidate
    from candidates
    inner join user_keys on candidates.user_id = user_keys.user_id
    inner join video_keys on candidates.video_id = video_keys.video_id
),

scored as (
    select * from unseen_scores
    union all
    select * from candidate_scores
),

final as (
    select
        user_id,
        -- one row per (video_id, score) the macro gathered
        unnest(  -- noqa: AL03
            top_n_and_candidates(video_id, score, is_ranked, is_candidate), recursive := true
        )
    from scored
    group by user_id
)

select * from final

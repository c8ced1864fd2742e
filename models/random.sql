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
-- top_n unseen videos by score (ties: smaller video_id). A top-n aggregate over all (user,
-- video) pairs, streamed as one ordering key each (77M at full scale, never stored), keeps each
-- user's 2 top_n best videos, seen or not; the user's top_n unseen are the first top_n unseen
-- among them unless fewer than top_n of them are unseen, and such users (heavy viewers: 33 at
-- full scale) are scored again over every video. No hash table of the training pairs meets
-- all the pairs, so this runs in well under the build's default DuckDB memory (it asked for
-- 3 GB before, and took 4 to 5 s at full scale where it now takes 1.2 s); the relations read
-- twice are not materialized, or the stream of pairs would be stored.
with

users as (
    select * from int_user_index
),

videos as (
    select * from int_item_index
),

train_pairs as not materialized (
    select * from int_train_interactions
),

candidates as not materialized (
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

-- every (user, video) pair (77M at full scale, streamed) as one bigint that orders as the
-- ranking does: residue * 2^32 + (2^31 - 1 - video_id), with score = residue / p; so larger
-- keys are higher scores, then smaller video ids (any 32-bit video_id fits)
pair_keys as not materialized (
    select
        user_keys.user_id,
        (
            (user_keys.user_a * video_keys.video_b + user_keys.user_c * video_keys.video_d)
            % 2147483647
        ) * 4294967296 + (2147483647 - video_keys.video_id) as pair_key
    from user_keys
    cross join video_keys
),

-- each user's 2 top_n best videos, seen or not, by a top-n aggregate over the streamed keys
leading_lists as (
    select
        user_id,
        max(pair_key, 2 * getvariable('top_n')) as leading_keys
    from pair_keys
    group by user_id
),

leading_pairs as (
    select
        user_id,
        unnest(leading_keys) as pair_key
    from leading_lists
),

leading_unseen as (
    select
        leading_pairs.user_id,
        leading_pairs.pair_key
    from leading_pairs
    anti join train_pairs
        on
            leading_pairs.user_id = train_pairs.user_id
            and 2147483647 - leading_pairs.pair_key % 4294967296 = train_pairs.video_id
),

-- users with fewer than top_n unseen videos among their leading ones (heavy viewers): every
-- unseen video of theirs is scored
short_users as (
    select users.user_id
    from users
    left join leading_unseen on users.user_id = leading_unseen.user_id
    group by users.user_id
    having count(leading_unseen.pair_key) < getvariable('top_n')
),

short_seen as (
    select
        train_pairs.user_id,
        train_pairs.video_id
    from train_pairs
    semi join short_users on train_pairs.user_id = short_users.user_id
),

short_unseen as (
    select
        pair_keys.user_id,
        pair_keys.pair_key
    from pair_keys
    semi join short_users on pair_keys.user_id = short_users.user_id
    anti join short_seen
        on
            pair_keys.user_id = short_seen.user_id
            and 2147483647 - pair_keys.pair_key % 4294967296 = short_seen.video_id
),

ranked_pool as (
    select leading_unseen.*
    from leading_unseen
    anti join short_users on leading_unseen.user_id = short_users.user_id
    union all
    select * from short_unseen
),

top_unseen as (
    select
        user_id,
        (2147483647 - pair_key % 4294967296)::integer as video_id,
        pair_key // 4294967296 / 2147483647 as score
    from ranked_pool
    qualify
        row_number() over (partition by user_id order by pair_key desc)
        <= getvariable('top_n')
),

candidate_scores as (
    select
        candidates.user_id,
        candidates.video_id,
        (
            user_keys.user_a * video_keys.video_b + user_keys.user_c * video_keys.video_d
        ) % 2147483647 / 2147483647 as score
    from candidates
    inner join user_keys on candidates.user_id = user_keys.user_id
    inner join video_keys on candidates.video_id = video_keys.video_id
),

-- a top_n pair that is also a candidate is given once
final as (
    select top_unseen.*
    from top_unseen
    anti join candidates
        on
            top_unseen.user_id = candidates.user_id
            and top_unseen.video_id = candidates.video_id
    union all
    select * from candidate_scores
)

select * from final

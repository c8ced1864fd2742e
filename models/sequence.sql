-- sequence: one row per (user, video) pair the model ranks: which video the user will watch, and
-- engage with, next after the videos it watched last (a first-order Markov chain over training
-- views, feat_video_transitions).
-- Recent views: the user's K = 20 most recently watched distinct training videos f_1 .. f_K (by
-- the pair's last view, int_train_interactions.last_view_at; ties: larger video_id), f_1 the
-- latest, with recency weight w_r = 0.8^(r - 1).
-- score(u, v) = sum over r of w_r * (e(f_r -> v) + mu * q(v)) / (n(f_r) + mu), where
--   e(f -> v) = engaged transitions f -> v (n_engaged_transitions; 0 beyond f's top 50),
--   n(f) = all transitions leaving f (n_from_transitions; 0 for a video never followed),
--   q(v) = the video's share of all engaged training views (feat_video_engagement),
--   mu = 20 transitions: each recent video's next-engaged-video distribution under a Dirichlet
--   prior centred on q (a video followed by few transitions leans on q).
-- So score = next_score + backoff_weight * q(v), with next_score = sum of
-- w_r * e(f_r -> v) / (n(f_r) + mu) and backoff_weight = sum of w_r * mu / (n(f_r) + mu); a user
-- without timed training views gets backoff_weight 1 (q alone).
-- Pairs: every small-matrix user's candidates (int_ground_truth), and every big-matrix user's
-- top_n unseen videos by score (ties: smaller video_id). Those lie among the successors of the
-- user's recent videos and the user's first top_n unseen videos in q order (any other video
-- scores only backoff_weight * q(v), below all of those), so only these are scored. The first
-- top_n unseen in q order end at q rank top_n + the seen videos met before: the j-th seen video
-- at q rank g is met when g - j < top_n. A window keeps each user's candidates and top_n
-- scored pairs (about 8.5M scored pairs at full scale; the list aggregate of the macro
-- top_n_and_candidates held them beyond the build's default 1 GB of DuckDB memory).
-- next_score and backoff_weight are summed over decimal(18, 15) so that parallel aggregation
-- gives the same bits every build. K, the decay and mu are constants here (not build
-- parameters yet).
with

train_pairs as (
    select * from int_train_interactions
),

transitions as (
    select * from feat_video_transitions
),

engagement as (
    select * from feat_video_engagement
),

users as (
    select * from int_user_index
),

candidates as (
    select * from int_ground_truth
),

recent_views as (
    select
        user_id,
        video_id,
        row_number() over (
            partition by user_id order by last_view_at desc, video_id desc
        ) as recency_rank
    from train_pairs
    where last_view_at is not null
    qualify recency_rank <= 20
),

from_totals as (
    select distinct
        from_video_id,
        n_from_transitions
    from transitions
),

recent_weights as (
    select
        recent_views.user_id,
        recent_views.video_id,
        0.8 ^ (recent_views.recency_rank - 1)
        / (coalesce(from_totals.n_from_transitions, 0) + 20) as next_weight,
        0.8 ^ (recent_views.recency_rank - 1) * 20
        / (coalesce(from_totals.n_from_transitions, 0) + 20) as backoff_weight
    from recent_views
    left join from_totals on recent_views.video_id = from_totals.from_video_id
),

user_backoff as (
    select
        users.user_id,
        coalesce(sum(recent_weights.backoff_weight::decimal(18, 15))::double, 1) as backoff_weight
    from users
    left join recent_weights on users.user_id = recent_weights.user_id
    group by all
),

engaged_shares as (
    select
        video_id,
        n_engaged_views / sum(n_engaged_views) over () as engaged_share,
        row_number() over (order by n_engaged_views desc, video_id asc) as engaged_rank
    from engagement
),

seen_by_rank as (
    select
        train_pairs.user_id,
        engaged_shares.engaged_rank,
        row_number() over (
            partition by train_pairs.user_id order by engaged_shares.engaged_rank
        ) as seen_rank
    from train_pairs
    inner join engaged_shares on train_pairs.video_id = engaged_shares.video_id
),

backoff_depths as (
    select
        users.user_id,
        getvariable('top_n')
        + count(seen_by_rank.engaged_rank) filter (
            where seen_by_rank.engaged_rank - seen_by_rank.seen_rank < getvariable('top_n')
        ) as depth
    from users
    left join seen_by_rank on users.user_id = seen_by_rank.user_id
    group by users.user_id
),

backoff_pairs as (
    select
        backoff_depths.user_id,
        engaged_shares.video_id
    from backoff_depths
    inner join engaged_shares on backoff_depths.depth >= engaged_shares.engaged_rank
),

next_contributions as (
    select
        recent_weights.user_id,
        transitions.to_video_id as video_id,
        recent_weights.next_weight * transitions.n_engaged_transitions as next_part,
        false as is_candidate
    from recent_weights
    inner join transitions on recent_weights.video_id = transitions.from_video_id
    where transitions.n_engaged_transitions > 0
),

pool as (
    select * from next_contributions
    union all
    select
        user_id,
        video_id,
        0 as next_part,
        false as is_candidate
    from backoff_pairs
    union all
    select
        user_id,
        video_id,
        0 as next_part,
        true as is_candidate
    from candidates
),

pool_pairs as (
    select
        user_id,
        video_id,
        sum(next_part::decimal(18, 15))::double as next_score,
        bool_or(is_candidate) as is_candidate
    from pool
    group by user_id, video_id
),

scored as (
    select
        pool_pairs.user_id,
        pool_pairs.video_id,
        pool_pairs.is_candidate,
        pool_pairs.next_score
        + user_backoff.backoff_weight * engaged_shares.engaged_share as score
    from pool_pairs
    inner join user_backoff on pool_pairs.user_id = user_backoff.user_id
    inner join engaged_shares on pool_pairs.video_id = engaged_shares.video_id
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = pool_pairs.user_id
            and train_pairs.video_id = pool_pairs.video_id
    )
),

final as (
    select
        user_id,
        video_id,
        score
    from scored
    qualify
        is_candidate
        or row_number() over (partition by user_id order by score desc, video_id asc)
        <= getvariable('top_n')
)

select * from final

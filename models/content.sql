-- content: one row per (user, video) pair the model ranks: how well the video's content matches
-- the content of what the user watched in training (a tf-idf profile, cosine similarity).
-- Video vector x_v: unit tf-idf weights over tags, the three caption category levels and topic
-- tags (feat_video_features). View weight: a training view counts
-- min(watch_ratio / relevance_threshold, 2), its watch ratio relative to the engagement
-- threshold of its duration (int_train_duration_thresholds), so engaged views (above 1) weigh
-- most; the cap 2 keeps a few long re-plays from dominating.
-- User profile p_u = sum over the user's training videos v of (sum of v's view weights) * x_v.
-- score = cosine(p_u, x_v) = p_u . x_v / |p_u| (x_v has unit length), in [0, 1]; a video that
-- nobody watched is scored like any other, from its features alone; 0 without shared features.
-- Pairs: every small-matrix user's candidates (int_ground_truth), and for every big-matrix user
-- the top_n unseen videos by score (ties: smaller video_id), found by streaming every (user,
-- video) pair through the macro top_n_and_candidates (sql/macros/, a top-n aggregate) that
-- keeps only top_n per user: all pairs are never stored. Profiles are dense lists over the
-- feature_index positions, so a pair's score reads only the video's few features
-- (list_select), whatever the vocabulary size.
-- Profile sums run over decimals (9 decimal places) so that parallel aggregation gives the same
-- bits every build.
-- At full scale this needs more DuckDB memory than the build's default 1 GB:
-- memory_limit: 3GB
-- Opt-in (--models content): on the calibrated demo it ranks below random, since watch time
-- carries no taste by category there (README, "The synthetic demo").
-- runs_by_default: false
with

train_events as (
    select * from int_train_events
),

thresholds as (
    select * from int_train_duration_thresholds
),

train_pairs as (
    select * from int_train_interactions
),

video_features as (
    select * from feat_video_features
),

users as (
    select * from int_user_index
),

videos as (
    select * from int_item_index
),

candidates as (
    select * from int_ground_truth
),

pair_weights as (
    select
        train_events.user_id,
        train_events.video_id,
        sum(
            least(
                greatest(
                    coalesce(
                        train_events.watch_ratio / nullif(thresholds.relevance_threshold, 0), 0
                    ),
                    0
                ),
                2
            )::decimal(18, 9)
        ) as view_weight
    from train_events
    left join thresholds on train_events.video_duration_ms = thresholds.video_duration_ms
    group by all
),

profile_weights as (
    select
        pair_weights.user_id,
        video_features.feature_index,
        sum((pair_weights.view_weight * video_features.weight)::decimal(18, 9))::double
            as weight
    from pair_weights
    inner join video_features on pair_weights.video_id = video_features.video_id
    group by all
),

profile_norms as (
    select
        user_id,
        sqrt(sum((weight ^ 2)::decimal(38, 9))::double) as norm
    from profile_weights
    group by all
),

vocabulary as (
    select distinct feature_index from video_features
),

user_vectors as (
    select
        users.user_id,
        list(
            coalesce(profile_weights.weight / nullif(profile_norms.norm, 0), 0)
            order by vocabulary.feature_index
        ) as weights
    from users
    cross join vocabulary
    left join profile_weights
        on
            users.user_id = profile_weights.user_id
            and vocabulary.feature_index = profile_weights.feature_index
    left join profile_norms on users.user_id = profile_norms.user_id
    group by all
),

video_vectors as (
    select
        videos.video_id,
        coalesce(
            list(video_features.feature_index order by video_features.feature_index)
            filter (where video_features.feature_index is not null),
            []
        ) as feature_indexes,
        coalesce(
            list(video_features.weight order by video_features.feature_index)
            filter (where video_features.feature_index is not null),
            []
        ) as weights
    from videos
    left join video_features on videos.video_id = video_features.video_id
    group by all
),

unseen_scores as (
    select
        user_vectors.user_id,
        video_vectors.video_id,
        coalesce(
            list_dot_product(
                list_select(user_vectors.weights, video_vectors.feature_indexes),
                video_vectors.weights
            ),
            0
        ) as score,
        true as is_ranked,
        false as is_candidate
    from user_vectors
    cross join video_vectors
    where not exists (
        select 1
        from train_pairs
        where
            train_pairs.user_id = user_vectors.user_id
            and train_pairs.video_id = video_vectors.video_id
    )
),

candidate_scores as (
    select
        candidates.user_id,
        candidates.video_id,
        coalesce(
            list_dot_product(
                list_select(user_vectors.weights, video_vectors.feature_indexes),
                video_vectors.weights
            ),
            0
        ) as score,
        false as is_ranked,
        true as is_candidate
    from candidates
    inner join user_vectors on candidates.user_id = user_vectors.user_id
    inner join video_vectors on candidates.video_id = video_vectors.video_id
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

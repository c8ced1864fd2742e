-- eval_user_lists: one row per source, model, k and user: what the user's top k list L looks
-- like (fewer than k videos when the list is shorter). Source 'recommendations': every
-- big-matrix user's list over the whole catalogue; 'eval_rankings': every small-matrix user's
-- ranked candidates. Means over these rows are eval_beyond_accuracy's per-user measures:
--   popularity_percentile = mean over L of feat_video_popularity.popularity_percentile
--                           (1 = most viewed)
--   novelty_bits          = mean over L of -log2(p_i), p_i = (training users who viewed i + 1)
--                           / (training users + 2) (add-one smoothing: finite for a video
--                           nobody viewed)
--   n_categories          = distinct first-level categories in L (a video without one adds
--                           none)
--   mean_duration_ms      = mean video_duration_ms over L (feat_video_content; videos without
--                           a duration are skipped)
with

top_k as (
    select * from eval_top_k
),

users as (
    select * from int_user_index
),

popularity as (
    select * from feat_video_popularity
),

content as (
    select * from feat_video_content
),

training_users as (
    select count(*) as n_users from users
    where n_train_videos > 0
),

video_facts as (
    select
        popularity.video_id,
        popularity.popularity_percentile,
        -log2((popularity.n_users + 1) / (training_users.n_users + 2)) as self_information_bits,
        content.first_level_category_id,
        content.video_duration_ms
    from popularity
    cross join training_users
    left join content on popularity.video_id = content.video_id
),

final as (
    select
        top_k.source,
        top_k.model,
        top_k.k,
        top_k.user_id,
        exact_avg(video_facts.popularity_percentile) as popularity_percentile,
        exact_avg(video_facts.self_information_bits) as novelty_bits,
        count(distinct video_facts.first_level_category_id)::double as n_categories,
        avg(video_facts.video_duration_ms) as mean_duration_ms
    from top_k
    left join video_facts on top_k.video_id = video_facts.video_id
    group by top_k.source, top_k.model, top_k.k, top_k.user_id
)

select * from final

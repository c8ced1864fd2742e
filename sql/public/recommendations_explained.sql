-- recommendations_explained: one row per recommendation (model, user, rank), joined to the
-- video's caption, categories, tags and training popularity for reading a list.
with

recs as (
    select * from recommendations
),

content as (
    select * from feat_video_content
),

popularity as (
    select * from feat_video_popularity
),

final as (
    select
        recs.model,
        recs.user_id,
        recs.rank,
        recs.video_id,
        recs.score,
        content.caption,
        content.first_level_category_name,
        content.second_level_category_name,
        content.third_level_category_name,
        content.tag_ids,
        content.topic_tags,
        round(content.video_duration_ms / 1000.0, 1) as video_duration_s,
        popularity.n_views as train_n_views,
        popularity.n_users as train_n_users,
        popularity.mean_watch_ratio as train_mean_watch_ratio,
        popularity.popularity_percentile
    from recs
    left join content on recs.video_id = content.video_id
    left join popularity on recs.video_id = popularity.video_id
)

select * from final

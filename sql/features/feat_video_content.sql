-- feat_video_content: one row per catalogue video: tags, caption, topic tags and the three
-- levels of caption category and the duration (largest seen in any file), for display and
-- content models. Missing text stays null.
with

videos as (
    select * from int_item_index
),

categories as (
    select * from stg_item_categories
),

captions as (
    select * from stg_caption_category
),

big_events as (
    select * from int_big_matrix_events
),

small_events as (
    select * from int_small_matrix_events
),

daily as (
    select * from stg_item_daily_features
),

durations as (
    select
        video_id,
        max(video_duration_ms) as video_duration_ms
    from (
        select
            video_id,
            video_duration_ms
        from big_events
        union all
        select
            video_id,
            video_duration_ms
        from small_events
        union all
        select
            video_id,
            video_duration_ms
        from daily
    ) as all_durations
    group by all
),

tags as (
    select
        video_id,
        arg_max(tag_ids, len(tag_ids)) as tag_ids
    from categories
    group by all
),

texts as (
    select
        video_id,
        any_value(caption) as caption,
        any_value(manual_cover_text) as manual_cover_text,
        any_value(topic_tag_text) as topic_tag_text,
        any_value(first_level_category_id) as first_level_category_id,
        any_value(first_level_category_name) as first_level_category_name,
        any_value(second_level_category_id) as second_level_category_id,
        any_value(second_level_category_name) as second_level_category_name,
        any_value(third_level_category_id) as third_level_category_id,
        any_value(third_level_category_name) as third_level_category_name
    from captions
    group by all
),

final as (
    select
        videos.video_id,
        tags.tag_ids,
        texts.caption,
        texts.manual_cover_text,
        regexp_extract_all(coalesce(texts.topic_tag_text, ''), '[^\[\],\s]+') as topic_tags,
        texts.first_level_category_id,
        texts.first_level_category_name,
        texts.second_level_category_id,
        texts.second_level_category_name,
        texts.third_level_category_id,
        texts.third_level_category_name,
        durations.video_duration_ms
    from videos
    left join tags on videos.video_id = tags.video_id
    left join texts on videos.video_id = texts.video_id
    left join durations on videos.video_id = durations.video_id
)

select * from final

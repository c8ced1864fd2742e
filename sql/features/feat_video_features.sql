-- feat_video_features: one row per catalogue video and content feature: the sparse tf-idf
-- vectors of content models. Features: 'tag:ID' (item_categories feat), 'category1:ID',
-- 'category2:ID', 'category3:ID' (the caption categories, unknown left out) and 'topic:TEXT'
-- (the caption file's topic tags). A feature is kept when at least two videos carry it (one
-- video's feature links it to no other video).
-- idf = ln(n_catalogue_videos / n_videos), n_videos = videos carrying the feature;
-- weight = idf / sqrt(sum of idf^2 over the video's kept features): each video's vector has unit
-- length (tf = 1), and 0 when all its features are on every video.
-- feature_index numbers the kept features 1 .. n in name order (positions in dense vectors).
-- The squares are summed over decimal(18, 9): videos with the same features get the same bits,
-- so their scores tie exactly in every build.
with

content as (
    select * from feat_video_content
),

videos as (
    select * from int_item_index
),

tag_features as (
    select distinct
        video_id,
        'tag:' || unnest(tag_ids) as feature
    from content
),

category_features as (
    select
        video_id,
        'category1:' || first_level_category_id as feature
    from content
    where first_level_category_id is not null
    union
    select
        video_id,
        'category2:' || second_level_category_id as feature
    from content
    where second_level_category_id is not null
    union
    select
        video_id,
        'category3:' || third_level_category_id as feature
    from content
    where third_level_category_id is not null
),

topic_features as (
    select distinct
        video_id,
        'topic:' || unnest(topic_tags) as feature
    from content
),

all_features as (
    select * from tag_features
    where feature is not null
    union
    select * from category_features
    union
    select * from topic_features
    where feature is not null
),

feature_counts as (
    select
        feature,
        count(*) as n_videos
    from all_features
    group by all
    having count(*) >= 2
),

catalogue as (
    select count(*) as n_catalogue_videos from videos
),

vocabulary as (
    select
        feature_counts.feature,
        split_part(feature_counts.feature, ':', 1) as feature_kind,
        row_number() over (order by feature_counts.feature)::integer as feature_index,
        feature_counts.n_videos,
        ln(catalogue.n_catalogue_videos / feature_counts.n_videos) as idf
    from feature_counts
    cross join catalogue
),

weighted as (
    select
        all_features.video_id,
        vocabulary.feature,
        vocabulary.feature_kind,
        vocabulary.feature_index,
        vocabulary.n_videos,
        vocabulary.idf,
        coalesce(
            vocabulary.idf
            / nullif(
                sqrt(
                    (
                        sum((vocabulary.idf ^ 2)::decimal(18, 9))
                            over (partition by all_features.video_id)
                    )::double
                ),
                0
            ),
            0
        ) as weight
    from all_features
    inner join vocabulary on all_features.feature = vocabulary.feature
),

final as (
    select * from weighted
    order by video_id, feature_index
)

select * from final

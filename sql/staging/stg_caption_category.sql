-- stg_caption_category: one row per record of kuairec_caption_category.csv.
-- Bare carriage returns were swapped for U+E00D (chr(57357)) while parsing; restored here.
-- Unknown texts and categories are 'UNKNOWN' / -124 in the file and null here.
with

source as (
    select * from src_caption_category
),

final as (
    select
        video_id,
        nullif(replace(manual_cover_text, chr(57357), chr(13)), 'UNKNOWN') as manual_cover_text,
        nullif(replace(caption, chr(57357), chr(13)), 'UNKNOWN') as caption,
        topic_tag as topic_tag_text,
        nullif(first_level_category_id::bigint, -124) as first_level_category_id,
        nullif(first_level_category_name, 'UNKNOWN') as first_level_category_name,
        nullif(second_level_category_id::bigint, -124) as second_level_category_id,
        nullif(second_level_category_name, 'UNKNOWN') as second_level_category_name,
        nullif(third_level_category_id::bigint, -124) as third_level_category_id,
        nullif(third_level_category_name, 'UNKNOWN') as third_level_category_name
    from source
)

select * from final

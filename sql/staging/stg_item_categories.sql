-- stg_item_categories: one row per line of item_categories.csv, tag ids parsed to a list.
with

source as (
    select * from src_item_categories
),

final as (
    select
        video_id,
        feat::integer[] as tag_ids
    from source
)

select * from final

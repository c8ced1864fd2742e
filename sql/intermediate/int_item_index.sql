-- int_item_index: one row per catalogue video (every video id of any input file); item_index is
-- the dense 0-based column position that Python models use for their matrices.
with

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

videos as (
    select video_id from categories
    union
    select video_id from captions
    union
    select video_id from big_events
    union
    select video_id from small_events
),

final as (
    select
        video_id,
        (row_number() over (order by video_id) - 1)::integer as item_index
    from videos
)

select * from final

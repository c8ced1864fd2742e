-- stg_social_network: one row per user of social_network.csv, friends parsed to a list.
with

source as (
    select * from src_social_network
),

final as (
    select
        user_id,
        friend_list::integer[] as friend_user_ids
    from source
)

select * from final

-- stg_user_features: one row per line of user_features.csv, typed.
with

source as (
    select * from src_user_features
),

final as (
    select
        user_id,
        user_active_degree,
        is_lowactive_period::integer = 1 as is_lowactive_period,
        is_live_streamer::integer = 1 as is_live_streamer,
        is_video_author::integer = 1 as is_video_author,
        follow_user_num::bigint as n_follows,
        follow_user_num_range as n_follows_range,
        fans_user_num::bigint as n_fans,
        fans_user_num_range as n_fans_range,
        friend_user_num::bigint as n_friends,
        friend_user_num_range as n_friends_range,
        register_days::bigint as n_register_days,
        register_days_range as n_register_days_range,
        [
            onehot_feat0, onehot_feat1, onehot_feat2, onehot_feat3, onehot_feat4,
            onehot_feat5, onehot_feat6, onehot_feat7, onehot_feat8, onehot_feat9,
            onehot_feat10, onehot_feat11, onehot_feat12, onehot_feat13, onehot_feat14,
            onehot_feat15, onehot_feat16, onehot_feat17
        ]::bigint[] as onehot_feats
    from source
)

select * from final

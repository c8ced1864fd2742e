-- stg_item_daily_features: one row per line of item_daily_features.csv (video and day), typed.
-- Counters are per video and day; play_progress is a mean share and stays a double.
with

source as (
    select * from src_item_daily_features
),

final as (
    select
        video_id,
        try_strptime(date::bigint::varchar, '%Y%m%d')::date as stat_date,
        author_id::bigint as author_id,
        video_type,
        try_cast(upload_dt as date) as upload_date,
        upload_type,
        visible_status,
        video_duration::bigint as video_duration_ms,
        video_width::integer as video_width_px,
        video_height::integer as video_height_px,
        music_id::bigint as music_id,
        video_tag_id::bigint as video_tag_id,
        video_tag_name,
        show_cnt::bigint as show_cnt,
        show_user_num::bigint as show_user_num,
        play_cnt::bigint as play_cnt,
        play_user_num::bigint as play_user_num,
        play_duration::bigint as play_duration,
        complete_play_cnt::bigint as complete_play_cnt,
        complete_play_user_num::bigint as complete_play_user_num,
        valid_play_cnt::bigint as valid_play_cnt,
        valid_play_user_num::bigint as valid_play_user_num,
        long_time_play_cnt::bigint as long_time_play_cnt,
        long_time_play_user_num::bigint as long_time_play_user_num,
        short_time_play_cnt::bigint as short_time_play_cnt,
        short_time_play_user_num::bigint as short_time_play_user_num,
        play_progress,
        comment_stay_duration::bigint as comment_stay_duration,
        like_cnt::bigint as like_cnt,
        like_user_num::bigint as like_user_num,
        click_like_cnt::bigint as click_like_cnt,
        double_click_cnt::bigint as double_click_cnt,
        cancel_like_cnt::bigint as cancel_like_cnt,
        cancel_like_user_num::bigint as cancel_like_user_num,
        comment_cnt::bigint as comment_cnt,
        comment_user_num::bigint as comment_user_num,
        direct_comment_cnt::bigint as direct_comment_cnt,
        reply_comment_cnt::bigint as reply_comment_cnt,
        delete_comment_cnt::bigint as delete_comment_cnt,
        delete_comment_user_num::bigint as delete_comment_user_num,
        comment_like_cnt::bigint as comment_like_cnt,
        comment_like_user_num::bigint as comment_like_user_num,
        follow_cnt::bigint as follow_cnt,
        follow_user_num::bigint as follow_user_num,
        cancel_follow_cnt::bigint as cancel_follow_cnt,
        cancel_follow_user_num::bigint as cancel_follow_user_num,
        share_cnt::bigint as share_cnt,
        share_user_num::bigint as share_user_num,
        download_cnt::bigint as download_cnt,
        download_user_num::bigint as download_user_num,
        report_cnt::bigint as report_cnt,
        report_user_num::bigint as report_user_num,
        reduce_similar_cnt::bigint as reduce_similar_cnt,
        reduce_similar_user_num::bigint as reduce_similar_user_num,
        collect_cnt::bigint as collect_cnt,
        collect_user_num::bigint as collect_user_num,
        cancel_collect_cnt::bigint as cancel_collect_cnt,
        cancel_collect_user_num::bigint as cancel_collect_user_num
    from source
)

select * from final

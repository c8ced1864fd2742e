-- feat_video_daily: one row per video of item_daily_features.csv: its daily statistics rolled up.
-- Counters are sums over the video's days; like_rate = like_cnt / play_cnt (null without plays).
with

daily as (
    select * from stg_item_daily_features
),

final as (
    select
        video_id,
        arg_max(author_id, stat_date) as author_id,
        arg_max(video_type, stat_date) as video_type,
        min(upload_date) as upload_date,
        arg_max(video_tag_name, stat_date) as video_tag_name,
        count(*) as n_days,
        min(stat_date) as first_stat_date,
        max(stat_date) as last_stat_date,
        sum(show_cnt) as show_cnt,
        sum(play_cnt) as play_cnt,
        sum(complete_play_cnt) as complete_play_cnt,
        sum(like_cnt) as like_cnt,
        sum(comment_cnt) as comment_cnt,
        sum(share_cnt) as share_cnt,
        sum(follow_cnt) as follow_cnt,
        sum(collect_cnt) as collect_cnt,
        sum(like_cnt) / nullif(sum(play_cnt), 0) as like_rate
    from daily
    group by all
)

select * from final

-- popularity: one score per video for every user: the seed notebook's popularity, the mean
-- watch_ratio of the video's training views, smoothed towards the global mean
-- (feat_video_popularity.smoothed_watch_ratio, prior weight popularity_prior_views).
with

popularity as (
    select * from feat_video_popularity
),

final as (
    select
        video_id,
        smoothed_watch_ratio as score
    from popularity
)

select * from final

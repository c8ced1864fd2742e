-- feat_video_engagement: one row per catalogue video: how often its training views were engaged.
-- A training view is engaged when its watch_ratio is above the relevance threshold of its
-- duration (int_train_duration_thresholds: the test label's rule applied to training views).
-- engagement_rate = n_engaged_views / n_views (null without views).
-- smoothed_engagement_rate = (n_engaged_views + m * p0) / (n_views + m): the posterior mean of
-- the rate under a Beta(m * p0, m * (1 - p0)) prior, with p0 = the share of engaged views among
-- all training views and m = popularity_prior_views (prior weight in views). A rarely seen video
-- is pulled towards p0; a video without training views gets p0.
with

videos as (
    select * from int_item_index
),

train_events as (
    select * from int_train_events
),

thresholds as (
    select * from int_train_duration_thresholds
),

flagged_views as (
    select
        train_events.video_id,
        coalesce(train_events.watch_ratio > thresholds.relevance_threshold, false) as is_engaged
    from train_events
    left join thresholds on train_events.video_duration_ms = thresholds.video_duration_ms
),

per_video as (
    select
        video_id,
        count(*) as n_views,
        count(*) filter (where is_engaged) as n_engaged_views
    from flagged_views
    group by all
),

global_rate as (
    select sum(n_engaged_views) / sum(n_views) as engaged_share
    from per_video
),

final as (
    select
        videos.video_id,
        coalesce(per_video.n_views, 0) as n_views,
        coalesce(per_video.n_engaged_views, 0) as n_engaged_views,
        per_video.n_engaged_views / per_video.n_views as engagement_rate,
        (
            coalesce(per_video.n_engaged_views, 0)
            + getvariable('popularity_prior_views') * global_rate.engaged_share
        )
        / (coalesce(per_video.n_views, 0) + getvariable('popularity_prior_views'))
            as smoothed_engagement_rate
    from videos
    cross join global_rate
    left join per_video on videos.video_id = per_video.video_id
)

select * from final

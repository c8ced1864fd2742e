-- popularity_engagement: one score per video for every user: how engaging the video was in
-- training rather than how often it was shown. score = (e + m * p0) / (n + m), the posterior
-- mean engaged share of the video's training views under a Beta(m * p0, m * (1 - p0)) prior:
-- e = engaged views (watch_ratio above the relevance threshold of the view's duration, the test
-- label's rule), n = views, p0 = the global engaged share, m = popularity_prior_views
-- (feat_video_engagement.smoothed_engagement_rate). Unseen videos score p0.
with

engagement as (
    select * from feat_video_engagement
),

final as (
    select
        video_id,
        smoothed_engagement_rate as score
    from engagement
)

select * from final

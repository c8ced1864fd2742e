-- feat_video_popularity: one row per catalogue video, from training views.
-- smoothed_watch_ratio = (sum of watch_ratio + m * global mean) / (n_views + m), with
-- m = popularity_prior_views: a Bayesian mean that pulls rarely seen videos to the global mean.
-- completion_rate = share of views with watch_ratio >= 1.
-- Videos never seen in training get 0 views.
-- Sums run over decimal(18, 9) so that parallel aggregation gives the same bits every build.
with

videos as (
    select * from int_item_index
),

train_events as (
    select * from int_train_events
),

train_pairs as (
    select * from int_train_interactions
),

users_per_video as (
    select
        video_id,
        count(*) as n_users
    from train_pairs
    group by all
),

global_mean as (
    select avg(watch_ratio::decimal(18, 9))::double as mean_watch_ratio from train_events
),

per_video as (
    select
        video_id,
        count(*) as n_views,
        sum(watch_ratio::decimal(18, 9))::double as watch_ratio_sum,
        avg(watch_ratio::decimal(18, 9))::double as mean_watch_ratio,
        avg((watch_ratio >= 1)::integer) as completion_rate,
        median(video_duration_ms) as video_duration_ms
    from train_events
    group by all
),

final as (
    select
        videos.video_id,
        coalesce(per_video.n_views, 0) as n_views,
        coalesce(users_per_video.n_users, 0) as n_users,
        per_video.mean_watch_ratio,
        per_video.completion_rate,
        (
            coalesce(per_video.watch_ratio_sum, 0)
            + getvariable('popularity_prior_views') * global_mean.mean_watch_ratio
        )
        / (coalesce(per_video.n_views, 0) + getvariable('popularity_prior_views'))
            as smoothed_watch_ratio,
        per_video.video_duration_ms,
        percent_rank() over (order by coalesce(users_per_video.n_users, 0)) as popularity_percentile
    from videos
    cross join global_mean
    left join per_video on videos.video_id = per_video.video_id
    left join users_per_video on videos.video_id = users_per_video.video_id
)

select * from final

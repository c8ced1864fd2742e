-- feat_video_popularity: one row per catalogue video, from training views.
-- smoothed_watch_ratio = (sum of watch_ratio + m * global mean) / (n_views + m), with
-- m = popularity_prior_views: a Bayesian mean that pulls rarely seen videos to the global mean.
-- completion_rate = share of views with watch_ratio >= 1.
-- video_duration_ms = the median duration of its training views (quantile_cont(0.5)), from the
-- counts of each duration: a median over every view holds them all in memory (at four times
-- KuaiRec, 46M views, more than the build's 1 GB), a count per (video, duration) can spill.
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
        avg((watch_ratio >= 1)::integer) as completion_rate
    from train_events
    group by all
),

duration_counts as (
    select
        video_id,
        video_duration_ms,
        count(*) as n_views
    from train_events
    where video_duration_ms is not null
    group by all
),

-- each duration's views occupy the 0-based positions views_up_to - n_views .. views_up_to - 1
-- of the video's views in duration order
duration_positions as (
    select
        video_id,
        video_duration_ms,
        n_views,
        sum(n_views) over (
            partition by video_id
            order by video_duration_ms
            rows between unbounded preceding and current row
        ) as views_up_to,
        sum(n_views) over (partition by video_id) as n_video_views
    from duration_counts
),

-- the median: the mean of the views at positions (n - 1) // 2 and n // 2 (one view when n is odd)
duration_medians as (
    select
        video_id,
        (
            any_value(video_duration_ms) filter (
                where
                (n_video_views - 1) // 2 < views_up_to
                and (n_video_views - 1) // 2 >= views_up_to - n_views
            )::double
            + any_value(video_duration_ms) filter (
                where
                n_video_views // 2 < views_up_to
                and n_video_views // 2 >= views_up_to - n_views
            )::double
        ) / 2 as video_duration_ms
    from duration_positions
    group by video_id
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
        duration_medians.video_duration_ms,
        percent_rank() over (order by coalesce(users_per_video.n_users, 0)) as popularity_percentile
    from videos
    cross join global_mean
    left join per_video on videos.video_id = per_video.video_id
    left join users_per_video on videos.video_id = users_per_video.video_id
    left join duration_medians on videos.video_id = duration_medians.video_id
)

select * from final

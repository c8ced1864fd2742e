-- int_label_buckets: one row per video-duration bucket of the duration-debiased label, fitted on
-- training views only. The cut points are the 1/B .. (B-1)/B quantiles (quantile_disc, here from
-- counts) of the training views' video duration, B = label_duration_buckets; bucket i holds
-- durations from from_duration_ms (inclusive) to the next bucket's from_duration_ms
-- (exclusive), so all views of one duration share a bucket. ratio_threshold is the
-- label_quantile quantile of the bucket's training watch ratios; a view is relevant when its
-- watch_ratio is above it.
with

train_events as (
    select * from int_train_events
),

-- quantile_disc(video_duration_ms, i / B), i = 1 .. B - 1, from the count of each distinct
-- duration (a few thousand rows; quantile_disc itself holds every view's duration in memory):
-- the duration at 0-based position ceil(N * i / B) - 1 of the N sorted training durations
duration_counts as (
    select
        video_duration_ms,
        count(*) as n_views
    from train_events
    where video_duration_ms is not null
    group by all
),

duration_total as (
    select sum(n_views)::bigint as n_durations from duration_counts
),

cumulative_counts as (
    select
        video_duration_ms,
        sum(n_views) over (order by video_duration_ms) as n_up_to
    from duration_counts
),

cut_positions as (
    select
        greatest(
            ceil(
                duration_total.n_durations * (steps.step / getvariable('label_duration_buckets'))
            ) - 1,
            0
        ) as cut_position
    from duration_total
    cross join range(1, getvariable('label_duration_buckets')::bigint) as steps (step)
),

-- the duration at each position: the first whose running count passes it
cut_durations as (
    select
        cut_positions.cut_position,
        min(cumulative_counts.video_duration_ms) as from_duration_ms
    from cut_positions
    inner join cumulative_counts on cut_positions.cut_position < cumulative_counts.n_up_to
    group by cut_positions.cut_position
),

cut_points as (
    select distinct from_duration_ms from cut_durations
),

bounds as (
    select
        from_duration_ms,
        row_number() over (order by from_duration_ms) as duration_bucket,
        lead(from_duration_ms) over (order by from_duration_ms) as to_duration_ms
    from (
        select min(video_duration_ms) as from_duration_ms from train_events
        union
        select from_duration_ms from cut_points
    ) as lower_bounds
    where from_duration_ms is not null
),

-- the bucket of each distinct duration (a few thousand), then of each view by equality
duration_buckets as (
    select
        durations.video_duration_ms,
        bounds.duration_bucket
    from (select distinct video_duration_ms from train_events) as durations
    inner join bounds
        on
            durations.video_duration_ms >= bounds.from_duration_ms
            and (
                bounds.to_duration_ms is null
                or durations.video_duration_ms < bounds.to_duration_ms
            )
),

final as (
    select
        bounds.duration_bucket,
        bounds.from_duration_ms,
        bounds.to_duration_ms,
        count(*) as n_train_views,
        quantile_cont(train_events.watch_ratio, getvariable('label_quantile'))
            as ratio_threshold
    from train_events
    inner join duration_buckets
        on train_events.video_duration_ms = duration_buckets.video_duration_ms
    inner join bounds on duration_buckets.duration_bucket = bounds.duration_bucket
    group by all
    order by bounds.duration_bucket
)

select * from final

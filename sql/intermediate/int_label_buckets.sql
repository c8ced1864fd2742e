-- int_label_buckets: one row per video-duration bucket of the duration-debiased label, fitted on
-- training views only. The cut points are the 1/B .. (B-1)/B quantiles (quantile_disc, here from
-- counts) of the training views' video duration, B = label_duration_buckets; bucket i holds
-- durations from from_duration_ms (inclusive) to the next bucket's from_duration_ms
-- (exclusive), so all views of one duration share a bucket. ratio_threshold is the
-- label_quantile quantile of the bucket's training watch ratios; a view is relevant when its
-- watch_ratio is above it. That quantile is quantile_cont's, computed without holding every
-- view's ratio (quantile_cont cannot spill, and ran out of the build's 1 GB at 4x KuaiRec):
-- with n ratios in the bucket, h = (n - 1) * label_quantile and x_r its r-th smallest ratio
-- (0-based) and d = h - floor(h), ratio_threshold = x_floor(h) * (1 - d) + x_ceil(h) * d, DuckDB's
-- formula; its own quantile_cont may differ in the last bit, where its build fuses the
-- multiply-add.
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

-- each training view with its bucket and ratio bin (floor(watch_ratio * 1024); a null ratio
-- has a null bin); read twice, never stored
bucketed_views as not materialized (
    select
        duration_buckets.duration_bucket,
        train_events.watch_ratio,
        floor(train_events.watch_ratio * 1024) as ratio_bin
    from train_events
    inner join duration_buckets
        on train_events.video_duration_ms = duration_buckets.video_duration_ms
),

-- x_r in two passes: views counted per ratio bin locate the bin of rank r and the rank inside
-- it; only those bins' ratios are then sorted (a bin that holds most of a bucket, one ratio
-- repeated, is held whole)
ratio_bins as (
    select
        duration_bucket,
        ratio_bin,
        count(*) as n_views
    from bucketed_views
    group by all
),

bin_ranks as (
    select
        duration_bucket,
        ratio_bin,
        n_views,
        (sum(n_views) over (partition by duration_bucket order by ratio_bin))::bigint
        - n_views as n_before
    from ratio_bins
    where ratio_bin is not null
),

bucket_positions as (
    select
        duration_bucket,
        sum(n_views) filter (where ratio_bin is not null) as n_ratios,
        (n_ratios - 1)::double * getvariable('label_quantile') as position,
        floor(position)::bigint as lower_rank,
        ceil(position)::bigint as upper_rank,
        position - floor(position) as fraction,
        sum(n_views)::bigint as n_train_views
    from ratio_bins
    group by all
),

wanted_ranks as (
    select
        duration_bucket,
        lower_rank as ratio_rank
    from bucket_positions
    where n_ratios > 0
    union
    select
        duration_bucket,
        upper_rank as ratio_rank
    from bucket_positions
    where n_ratios > 0
),

wanted_bins as (
    select
        wanted_ranks.duration_bucket,
        wanted_ranks.ratio_rank,
        bin_ranks.ratio_bin,
        wanted_ranks.ratio_rank - bin_ranks.n_before as rank_in_bin
    from wanted_ranks
    inner join bin_ranks
        on
            wanted_ranks.duration_bucket = bin_ranks.duration_bucket
            and wanted_ranks.ratio_rank >= bin_ranks.n_before
            and wanted_ranks.ratio_rank < bin_ranks.n_before + bin_ranks.n_views
),

sorted_bins as (
    select
        bucketed_views.duration_bucket,
        bucketed_views.ratio_bin,
        list_sort(list(bucketed_views.watch_ratio)) as sorted_ratios
    from bucketed_views
    semi join wanted_bins
        on
            bucketed_views.duration_bucket = wanted_bins.duration_bucket
            and bucketed_views.ratio_bin = wanted_bins.ratio_bin
    group by all
),

ranked_ratios as (
    select
        wanted_bins.duration_bucket,
        wanted_bins.ratio_rank,
        sorted_bins.sorted_ratios[wanted_bins.rank_in_bin + 1] as watch_ratio
    from wanted_bins
    inner join sorted_bins
        on
            wanted_bins.duration_bucket = sorted_bins.duration_bucket
            and wanted_bins.ratio_bin = sorted_bins.ratio_bin
),

final as (
    select
        bounds.duration_bucket,
        bounds.from_duration_ms,
        bounds.to_duration_ms,
        bucket_positions.n_train_views,
        lower_ratios.watch_ratio * (1 - bucket_positions.fraction)
        + upper_ratios.watch_ratio * bucket_positions.fraction as ratio_threshold
    from bounds
    inner join bucket_positions on bounds.duration_bucket = bucket_positions.duration_bucket
    left join ranked_ratios as lower_ratios
        on
            bucket_positions.duration_bucket = lower_ratios.duration_bucket
            and bucket_positions.lower_rank = lower_ratios.ratio_rank
    left join ranked_ratios as upper_ratios
        on
            bucket_positions.duration_bucket = upper_ratios.duration_bucket
            and bucket_positions.upper_rank = upper_ratios.ratio_rank
    order by bounds.duration_bucket
)

select * from final

-- eval_beyond_accuracy: one row per source, model, k and metric: what the top k lists look
-- like, whatever the labels say. source 'recommendations' measures the top k of every
-- big-matrix user's list over the whole catalogue (int_item_index); source 'eval_rankings'
-- measures the top k of every small-matrix user's ranked candidates, against the catalogue of
-- small-matrix videos (eval_ground_truth). n_users = lists measured. For a user's top k L
-- (fewer than k videos when the list is shorter):
--   coverage              = distinct videos in any user's L / videos in the catalogue
--   gini                  = Gini of exposure over the n catalogue videos, c_i = number of
--                           lists L holding video i, sorted ascending:
--                           sum over i = 1 .. n of (2i - n - 1) * c_i / (n * sum of c_i)
--                           (0: every video shown equally often; near 1: a few videos shown)
--   popularity_percentile = mean over users of the mean over L of
--                           feat_video_popularity.popularity_percentile (1 = most viewed)
--   novelty_bits          = mean over users of the mean over L of -log2(p_i),
--                           p_i = (training users who viewed i + 1) / (training users + 2)
--                           (add-one smoothing: a video nobody viewed is finite, not infinite)
--   n_categories          = mean over users of the distinct first-level categories in L
--                           (intra-list diversity; a video without a category adds none)
--   mean_duration_ms      = mean over users of the mean video_duration_ms over L
--                           (feat_video_content; videos without a duration are skipped)
--   catalogue_duration_ms = mean video_duration_ms of the catalogue's videos
--   duration_ratio        = mean_duration_ms / catalogue_duration_ms (below 1: the lists
--                           favour short videos)
-- The per-list values are eval_user_lists. ci_low, ci_high = the 95% bootstrap interval over
-- users (eval_intervals, the project's one bootstrap) of the four means over users, and of
-- duration_ratio (the interval of mean_duration_ms over the fixed catalogue mean). coverage,
-- gini and catalogue_duration_ms are not means over users: no interval (null).
with

top_k as materialized (
    select * from eval_top_k
),

ground_truth as (
    select * from eval_ground_truth
),

videos as (
    select * from int_item_index
),

content as (
    select * from feat_video_content
),

user_lists as (
    select * from eval_user_lists
),

intervals as (
    select * from eval_intervals
    where relation = 'eval_beyond_accuracy' and split = 'all'
),

catalogue as (
    select
        'recommendations' as source,
        video_id
    from videos
    union all
    select distinct
        'eval_rankings' as source,
        video_id
    from ground_truth
),

catalogue_size as (
    select
        catalogue.source,
        count(*) as n_videos,
        avg(content.video_duration_ms) as catalogue_duration_ms
    from catalogue
    left join content on catalogue.video_id = content.video_id
    group by catalogue.source
),

list_means as (
    select
        source,
        model,
        k,
        exact_avg(popularity_percentile) as popularity_percentile,
        exact_avg(novelty_bits) as novelty_bits,
        exact_avg(n_categories) as n_categories,
        exact_avg(mean_duration_ms) as mean_duration_ms,
        count(*) as n_users
    from user_lists
    group by source, model, k
),

exposure as (
    select
        list_means.source,
        list_means.model,
        list_means.k,
        catalogue.video_id,
        count(top_k.video_id) as n_lists
    from list_means
    inner join catalogue on list_means.source = catalogue.source
    left join top_k
        on
            list_means.source = top_k.source
            and list_means.model = top_k.model
            and list_means.k = top_k.k
            and catalogue.video_id = top_k.video_id
    group by list_means.source, list_means.model, list_means.k, catalogue.video_id
),

ordered_exposure as (
    select
        source,
        model,
        k,
        n_lists,
        row_number() over (partition by source, model, k order by n_lists) as exposure_rank,
        count(*) over (partition by source, model, k) as n_videos
    from exposure
),

concentration as (
    select
        source,
        model,
        k,
        count(*) filter (where n_lists > 0) as n_videos_shown,
        sum((2 * exposure_rank - n_videos - 1) * n_lists)
        / nullif(any_value(n_videos) * sum(n_lists), 0) as gini
    from ordered_exposure
    group by source, model, k
),

wide as (
    select
        list_means.source,
        list_means.model,
        list_means.k,
        list_means.n_users,
        concentration.n_videos_shown / catalogue_size.n_videos as coverage,
        concentration.gini,
        list_means.popularity_percentile,
        list_means.novelty_bits,
        list_means.n_categories::double as n_categories,
        list_means.mean_duration_ms,
        catalogue_size.catalogue_duration_ms,
        list_means.mean_duration_ms / catalogue_size.catalogue_duration_ms as duration_ratio
    from list_means
    inner join concentration
        on
            list_means.source = concentration.source
            and list_means.model = concentration.model
            and list_means.k = concentration.k
    inner join catalogue_size on list_means.source = catalogue_size.source
),

long_values as (
    select
        source,
        model,
        k,
        metric,
        value,
        n_users
    from wide
    unpivot (
        value for metric in (
            coverage,
            gini,
            popularity_percentile,
            novelty_bits,
            n_categories,
            mean_duration_ms,
            catalogue_duration_ms,
            duration_ratio
        )
    )
),

final as (
    select
        long_values.source,
        long_values.model,
        long_values.k,
        long_values.metric,
        long_values.value,
        case
            when long_values.metric = 'duration_ratio'
                then intervals.ci_low / catalogue_size.catalogue_duration_ms
            else intervals.ci_low
        end as ci_low,
        case
            when long_values.metric = 'duration_ratio'
                then intervals.ci_high / catalogue_size.catalogue_duration_ms
            else intervals.ci_high
        end as ci_high,
        long_values.n_users
    from long_values
    inner join catalogue_size on long_values.source = catalogue_size.source
    left join intervals
        on
            long_values.source = intervals.segment
            and long_values.model = intervals.model
            and long_values.k = intervals.k
            and (
                long_values.metric = intervals.metric
                or (
                    long_values.metric = 'duration_ratio'
                    and intervals.metric = 'mean_duration_ms'
                )
            )
)

select * from final

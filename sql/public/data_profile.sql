-- data_profile: one row per statistic of the dataset (section, statistic, scope), so that any two
-- datasets compare row by row (python -m kuairec_db profile A B).
-- section 'shape', scope big_matrix and small_matrix (the paper's table): over the deduplicated
-- view events of int_big_matrix_events / int_small_matrix_events (n_rows counts data lines).
--   density = distinct (user, video) pairs / (users * videos)
--   duplicate_share = (data lines - events) / data lines
--   rewatch_share = (events - pairs) / events (views of a pair already viewed)
--   views_per_user_* / views_per_video_*: quantile_cont of the events per user / per video
--   watch_ratio_* = quantile_cont(watch_ratio, q) over events; share_watch_ratio_gt_X = share > X
-- section 'structure', scope small_matrix_sample: over int_profile_sample (83 md5-chosen pairs a
-- user, watch_ratio the pair's mean), with y = ln(1 + least(watch_ratio, 50)):
--   r2_user_means = 1 - sum (y - mean_u y)^2 / sum (y - mean y)^2
--   r2_additive = 1 - sum e^2 / sum (y - mean y)^2, e = residual of the least-squares fit
--     y ~ mu + a_user + b_video (int_profile_fit, backfitting to 1e-6 by kuairec_db.profile)
--   user_category_component = [sum over cells (user, first-level category) with n >= 2 of
--     ((sum e)^2 - sum e^2)] / [sum over those cells of n (n - 1)] / var_pop(y)
--   factor_gain = max over rank r of (SS_additive - SS_factor) / SS_total on the held-out pairs
--     (int_profile_factor_gain: rank-r ALS, lambda 5, of the additive fit's residuals on the
--     rest); factor_gain_lambda_1: the same with lambda 1, a diagnostic
--   ndcg10_*: label watch_ratio > 2; each user's sample videos ranked by score desc, ties by
--     video_id asc; ndcg@10 = sum over hit ranks i <= 10 of 1 / log2(i + 1) divided by the sum
--     over i = 1 .. min(R, 10); mean over users with R >= 1. Scores:
--     video_mean: the other sample users' mean y of the video, (S_v - y_uv) / (n_v - 1), the
--       global mean y when n_v = 1;
--     video_mean_category_affinity: video_mean plus the mean over the user's other sample videos
--       w of the same first-level category of (y_uw - video_mean of w), 0 when there is none.
with

big_events as (
    select * from int_big_matrix_events
),

small_events as (
    select * from int_small_matrix_events
),

sample as (
    select * from int_profile_sample
),

fit as (
    select * from int_profile_fit
),

factor_gain as (
    select * from int_profile_factor_gain
),

events as (
    select
        'big_matrix' as scope,
        big_events.user_id,
        big_events.video_id,
        big_events.watch_ratio,
        big_events.n_log_rows
    from big_events
    union all
    select
        'small_matrix' as scope,
        small_events.user_id,
        small_events.video_id,
        small_events.watch_ratio,
        small_events.n_log_rows
    from small_events
),

event_stats as (
    select
        scope,
        count(distinct user_id)::double as n_users,
        count(distinct video_id)::double as n_videos,
        sum(n_log_rows)::double as n_rows,
        count(*)::double as n_events,
        quantile_cont(watch_ratio, 0.5) as watch_ratio_p50,
        quantile_cont(watch_ratio, 0.9) as watch_ratio_p90,
        quantile_cont(watch_ratio, 0.99) as watch_ratio_p99,
        max(watch_ratio) as watch_ratio_max,
        avg((watch_ratio > 1)::integer) as share_watch_ratio_gt_1,
        avg((watch_ratio > 2)::integer) as share_watch_ratio_gt_2
    from events
    group by scope
),

pair_events as (
    select
        scope,
        user_id,
        video_id,
        count(*) as n_events
    from events
    group by scope, user_id, video_id
),

pair_stats as (
    select
        scope,
        count(*)::double as n_pairs
    from pair_events
    group by scope
),

user_views as (
    select
        scope,
        user_id,
        sum(n_events) as n_views
    from pair_events
    group by scope, user_id
),

user_stats as (
    select
        scope,
        min(n_views)::double as views_per_user_min,
        quantile_cont(n_views, 0.1) as views_per_user_p10,
        quantile_cont(n_views, 0.5) as views_per_user_p50,
        quantile_cont(n_views, 0.9) as views_per_user_p90,
        max(n_views)::double as views_per_user_max
    from user_views
    group by scope
),

video_views as (
    select
        scope,
        video_id,
        sum(n_events) as n_views
    from pair_events
    group by scope, video_id
),

video_stats as (
    select
        scope,
        min(n_views)::double as views_per_video_min,
        quantile_cont(n_views, 0.1) as views_per_video_p10,
        quantile_cont(n_views, 0.5) as views_per_video_p50,
        quantile_cont(n_views, 0.9) as views_per_video_p90,
        max(n_views)::double as views_per_video_max
    from video_views
    group by scope
),

shape as (
    select
        event_stats.scope,
        event_stats.n_users,
        event_stats.n_videos,
        event_stats.n_rows,
        event_stats.n_events,
        pair_stats.n_pairs,
        pair_stats.n_pairs / (event_stats.n_users * event_stats.n_videos) as density,
        event_stats.n_rows - event_stats.n_events as n_duplicate_rows,
        (event_stats.n_rows - event_stats.n_events) / event_stats.n_rows as duplicate_share,
        event_stats.n_events - pair_stats.n_pairs as n_rewatch_events,
        (event_stats.n_events - pair_stats.n_pairs) / event_stats.n_events as rewatch_share,
        user_stats.views_per_user_min,
        user_stats.views_per_user_p10,
        user_stats.views_per_user_p50,
        user_stats.views_per_user_p90,
        user_stats.views_per_user_max,
        video_stats.views_per_video_min,
        video_stats.views_per_video_p10,
        video_stats.views_per_video_p50,
        video_stats.views_per_video_p90,
        video_stats.views_per_video_max,
        event_stats.watch_ratio_p50,
        event_stats.watch_ratio_p90,
        event_stats.watch_ratio_p99,
        event_stats.watch_ratio_max,
        event_stats.share_watch_ratio_gt_1,
        event_stats.share_watch_ratio_gt_2
    from event_stats
    inner join pair_stats on event_stats.scope = pair_stats.scope
    inner join user_stats on event_stats.scope = user_stats.scope
    inner join video_stats on event_stats.scope = video_stats.scope
),

shape_long as (
    select
        'shape' as section,
        statistic,
        scope,
        value
    from (unpivot shape on columns(* exclude (scope)) into name statistic value value)
),

sample_mean as (
    select exact_avg(y) as mean_y
    from sample
),

sample_user_means as (
    select
        user_id,
        exact_avg(y) as user_mean_y
    from sample
    group by user_id
),

sample_centered as (
    select
        sample.user_id,
        sample.video_id,
        sample.watch_ratio,
        sample.y,
        sample.first_level_category_id,
        sample.y - sample_mean.mean_y as y_minus_mean,
        sample.y - sample_user_means.user_mean_y as y_minus_user_mean,
        fit.additive_residual
    from sample
    cross join sample_mean
    inner join sample_user_means on sample.user_id = sample_user_means.user_id
    left join fit
        on sample.user_id = fit.user_id and sample.video_id = fit.video_id
),

sample_stats as (
    select
        count(distinct user_id)::double as n_users,
        count(distinct video_id)::double as n_videos,
        count(*)::double as n_pairs,
        exact_avg(y) as mean_y,
        exact_avg(y_minus_mean ^ 2) as var_y,
        quantile_cont(watch_ratio, 0.5) as watch_ratio_p50,
        quantile_cont(watch_ratio, 0.9) as watch_ratio_p90,
        quantile_cont(watch_ratio, 0.99) as watch_ratio_p99,
        avg((watch_ratio > 1)::integer) as share_watch_ratio_gt_1,
        avg((watch_ratio > 2)::integer) as share_watch_ratio_gt_2,
        1 - exact_sum(y_minus_user_mean ^ 2) / exact_sum(y_minus_mean ^ 2) as r2_user_means,
        1 - exact_sum(additive_residual ^ 2) / exact_sum(y_minus_mean ^ 2) as r2_additive
    from sample_centered
),

category_cells as (
    select
        user_id,
        first_level_category_id,
        count(*) as n_pairs,
        exact_sum(additive_residual) as sum_residual,
        exact_sum(additive_residual ^ 2) as sum_squared_residual
    from sample_centered
    group by user_id, first_level_category_id
    having count(*) >= 2
),

category_component as (
    select
        exact_sum(category_cells.sum_residual ^ 2 - category_cells.sum_squared_residual)
        / sum(category_cells.n_pairs * (category_cells.n_pairs - 1))
        / any_value(sample_stats.var_y) as user_category_component
    from category_cells
    cross join sample_stats
),

video_sums as (
    select
        video_id,
        exact_sum(y) as sum_y,
        count(*) as n_users
    from sample
    group by video_id
),

video_mean_scores as (
    select
        sample.user_id,
        sample.video_id,
        sample.first_level_category_id,
        sample.y,
        sample.watch_ratio > 2 as is_liked,
        case
            when video_sums.n_users > 1
                then (video_sums.sum_y - sample.y) / (video_sums.n_users - 1)
            else sample_stats.mean_y
        end as video_mean
    from sample
    inner join video_sums on sample.video_id = video_sums.video_id
    cross join sample_stats
),

affinity_cells as (
    select
        user_id,
        first_level_category_id,
        exact_sum(y - video_mean) as sum_deviation,
        count(*) as n_videos
    from video_mean_scores
    group by user_id, first_level_category_id
),

scores as (
    select
        'ndcg10_video_mean' as statistic,
        user_id,
        video_id,
        is_liked,
        video_mean as score
    from video_mean_scores
    union all
    select
        'ndcg10_video_mean_category_affinity' as statistic,
        video_mean_scores.user_id,
        video_mean_scores.video_id,
        video_mean_scores.is_liked,
        video_mean_scores.video_mean + case
            when affinity_cells.n_videos > 1
                then
                    (
                        affinity_cells.sum_deviation
                        - (video_mean_scores.y - video_mean_scores.video_mean)
                    )
                    / (affinity_cells.n_videos - 1)
            else 0
        end as score
    from video_mean_scores
    inner join affinity_cells
        on
            video_mean_scores.user_id = affinity_cells.user_id
            and video_mean_scores.first_level_category_id
            = affinity_cells.first_level_category_id
),

ranked as (
    select
        statistic,
        user_id,
        is_liked,
        row_number() over (partition by statistic, user_id order by score desc, video_id asc)
            as rank
    from scores
),

user_ndcg as (
    select
        statistic,
        user_id,
        coalesce(
            list_sum(list(1 / log2(rank + 1) order by rank) filter (where is_liked and rank <= 10)),
            0
        ) as dcg,
        count(*) filter (where is_liked) as n_liked
    from ranked
    group by statistic, user_id
),

ndcg as (
    select
        statistic,
        exact_avg(dcg / list_sum([1 / log2(i + 1) for i in range(1, least(n_liked, 10) + 1)]))
            as value
    from user_ndcg
    where n_liked >= 1
    group by statistic
),

gains as (
    select
        'factor_gain_rank_' || rank as statistic,
        (ss_additive_holdout - ss_factor_holdout) / ss_total_holdout as value
    from factor_gain
    where als_lambda = 5
),

diagnostic_gains as (
    select
        'factor_gain_lambda_' || als_lambda::integer as statistic,
        max((ss_additive_holdout - ss_factor_holdout) / ss_total_holdout) as value
    from factor_gain
    where als_lambda != 5
    group by als_lambda
),

structure_wide as (
    select
        sample_stats.n_users,
        sample_stats.n_videos,
        sample_stats.n_pairs,
        sample_stats.watch_ratio_p50,
        sample_stats.watch_ratio_p90,
        sample_stats.watch_ratio_p99,
        sample_stats.share_watch_ratio_gt_1,
        sample_stats.share_watch_ratio_gt_2,
        sample_stats.r2_user_means,
        sample_stats.r2_additive,
        category_component.user_category_component
    from sample_stats
    cross join category_component
    where sample_stats.n_pairs > 0
),

structure_long as (
    select
        statistic,
        value
    from (unpivot structure_wide on columns(*) into name statistic value value)
    union all
    select
        'factor_gain' as statistic,
        max(value) as value
    from gains
    having count(*) > 0
    union all
    select * from gains
    union all
    select * from diagnostic_gains
    union all
    select * from ndcg
),

all_values as (
    select * from shape_long
    union all
    select
        'structure' as section,
        statistic,
        'small_matrix_sample' as scope,
        value
    from structure_long
),

definitions as (
    select
        definition_list.section,
        definition_list.statistic_order,
        definition_list.statistic,
        definition_list.comment
    from (
        values
        ('shape', 1, 'n_users', 'distinct users'),
        ('shape', 2, 'n_videos', 'distinct videos'),
        ('shape', 3, 'n_rows', 'data lines of the file'),
        ('shape', 4, 'n_events', 'view events after dropping duplicate log rows'),
        ('shape', 5, 'n_pairs', 'distinct (user, video) pairs'),
        ('shape', 6, 'density', 'pairs / (users * videos)'),
        ('shape', 7, 'n_duplicate_rows', 'data lines - events (rows repeating another)'),
        ('shape', 8, 'duplicate_share', '(data lines - events) / data lines'),
        ('shape', 9, 'n_rewatch_events', 'events - pairs (views of a pair already viewed)'),
        ('shape', 10, 'rewatch_share', '(events - pairs) / events'),
        ('shape', 11, 'views_per_user_min', 'fewest events of a user'),
        ('shape', 12, 'views_per_user_p10', 'quantile_cont(events per user, 0.1)'),
        ('shape', 13, 'views_per_user_p50', 'quantile_cont(events per user, 0.5)'),
        ('shape', 14, 'views_per_user_p90', 'quantile_cont(events per user, 0.9)'),
        ('shape', 15, 'views_per_user_max', 'most events of a user'),
        ('shape', 16, 'views_per_video_min', 'fewest events of a video'),
        ('shape', 17, 'views_per_video_p10', 'quantile_cont(events per video, 0.1)'),
        ('shape', 18, 'views_per_video_p50', 'quantile_cont(events per video, 0.5)'),
        ('shape', 19, 'views_per_video_p90', 'quantile_cont(events per video, 0.9)'),
        ('shape', 20, 'views_per_video_max', 'most events of a video'),
        ('shape', 21, 'watch_ratio_p50', 'quantile_cont(watch_ratio, 0.5) over events'),
        ('shape', 22, 'watch_ratio_p90', 'quantile_cont(watch_ratio, 0.9) over events'),
        ('shape', 23, 'watch_ratio_p99', 'quantile_cont(watch_ratio, 0.99) over events'),
        ('shape', 24, 'watch_ratio_max', 'largest watch_ratio'),
        ('shape', 25, 'share_watch_ratio_gt_1', 'share of events with watch_ratio > 1'),
        (
            'shape', 26, 'share_watch_ratio_gt_2',
            'share of events with watch_ratio > 2 (the ratio label''s default)'
        ),
        ('structure', 1, 'n_users', 'users in the sample'),
        ('structure', 2, 'n_videos', 'distinct videos in the sample'),
        ('structure', 3, 'n_pairs', 'sampled pairs: the 83 smallest md5(user-video) a user'),
        ('structure', 4, 'watch_ratio_p50', 'quantile_cont(watch_ratio, 0.5) over the sample'),
        ('structure', 5, 'watch_ratio_p90', 'quantile_cont(watch_ratio, 0.9) over the sample'),
        ('structure', 6, 'watch_ratio_p99', 'quantile_cont(watch_ratio, 0.99) over the sample'),
        ('structure', 7, 'share_watch_ratio_gt_1', 'share of sample pairs with watch_ratio > 1'),
        ('structure', 8, 'share_watch_ratio_gt_2', 'share of sample pairs with watch_ratio > 2'),
        (
            'structure', 9, 'r2_user_means',
            'y = ln(1 + least(watch_ratio, 50)): 1 - sum (y - user mean)^2 / sum (y - mean)^2'
        ),
        (
            'structure', 10, 'r2_additive',
            '1 - SS_res / SS_tot of the least-squares fit y ~ mu + a_user + b_video'
        ),
        (
            'structure', 11, 'user_category_component',
            'mean product of two distinct additive residuals in a (user, first-level category) '
            || 'cell, / var_pop(y); can be below zero'
        ),
        (
            'structure', 12, 'factor_gain',
            'max over ranks 4, 8, 16 of the held-out R^2 a factor model of the residuals adds '
            || 'to the additive fit; can be below zero'
        ),
        (
            'structure', 13, 'factor_gain_rank_4',
            '(SS_additive - SS_factor) / SS_total on the 20% held-out pairs, rank 4 ALS '
            || '(lambda 5, 15 iterations, seed 0)'
        ),
        ('structure', 14, 'factor_gain_rank_8', 'the same, rank 8'),
        ('structure', 15, 'factor_gain_rank_16', 'the same, rank 16'),
        (
            'structure', 16, 'factor_gain_lambda_1',
            'diagnostic: factor_gain with lambda 1 (lambda 5 can shrink a true low-rank signal '
            || 'of a sample this size away; lambda 1 overfits where there is none)'
        ),
        (
            'structure', 17, 'ndcg10_video_mean',
            'NDCG@10 (label watch_ratio > 2) ranking each user''s sample videos by the other '
            || 'users'' mean y of the video'
        ),
        (
            'structure', 18, 'ndcg10_video_mean_category_affinity',
            'the same plus the user''s mean deviation on its other videos of the category'
        )
    ) as definition_list (section, statistic_order, statistic, comment)
),

final as (
    select
        all_values.section,
        all_values.statistic,
        all_values.scope,
        all_values.value,
        definitions.comment
    from all_values
    inner join definitions
        on
            all_values.section = definitions.section
            and all_values.statistic = definitions.statistic
    order by
        all_values.section, all_values.scope, definitions.statistic_order
)

select * from final

-- eval_user_values: one row per series and user: every per-user value that a view of this
-- folder averages over users, in one shape, so that one bootstrap (eval_resampled_sums,
-- eval_intervals) serves them all. A series is (relation, model, split, segment_kind, segment,
-- k, metric); the relation is the view whose mean it is:
--   eval_metrics         : eval_user_metrics per split; segment_kind = segment = 'all'
--   eval_segment_metrics : the same within eval_user_segments (segment_kind, segment)
--   eval_beyond_accuracy : eval_user_lists' per-list measures (popularity_percentile,
--                          novelty_bits, n_categories, mean_duration_ms); segment_kind
--                          'source', segment = the source; split 'all' for recommendations
--                          (big-matrix users), the user's tune / test split for
--                          eval_rankings (small-matrix users)
-- value = the user's value. Splits tune and test are strata: eval_resampled_sums adds them
-- up into 'all'.
with

user_metrics as materialized (
    select * from eval_user_metrics
),

user_segments as (
    select * from eval_user_segments
),

user_lists as (
    select * from eval_user_lists
),

user_relevance as (
    select * from eval_user_relevance
),

-- eval_rankings' lists are split into the tune and test strata, recommendations' are not
list_values as (
    select
        user_lists.*,
        case
            when user_lists.source = 'eval_rankings' then user_relevance.split
            else 'all'
        end as split
    from user_lists
    left join user_relevance on user_lists.user_id = user_relevance.user_id
),

final as (
    select
        'eval_metrics' as relation,
        model,
        split,
        'all' as segment_kind,
        'all' as segment,
        k,
        metric,
        user_id,
        value
    from user_metrics
    union all
    select
        'eval_segment_metrics' as relation,
        user_metrics.model,
        user_metrics.split,
        user_segments.segment_kind,
        user_segments.segment,
        user_metrics.k,
        user_metrics.metric,
        user_metrics.user_id,
        user_metrics.value
    from user_metrics
    inner join user_segments on user_metrics.user_id = user_segments.user_id
    union all
    select
        'eval_beyond_accuracy' as relation,
        model,
        split,
        'source' as segment_kind,
        source as segment,
        k,
        metric,
        user_id,
        value
    from list_values
    unpivot (
        value for metric in (
            popularity_percentile,
            novelty_bits,
            n_categories,
            mean_duration_ms
        )
    )
    where value is not null
)

select * from final

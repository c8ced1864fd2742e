-- user_metric_values(rank, is_relevant, n_hits_so_far, n_relevant, k, ideal_dcg): an aggregate
-- macro, the one definition of the per-user ranking metrics. Called once per user and cutoff k
-- over that user's ranked videos at ranks 1 .. k (a left join may give none: every metric 0);
-- n_relevant, k and ideal_dcg (= ideal_dcg(min(R, k)), see ideal_dcgs) are the group's own.
-- Gives a list of (metric, value), one per metric; callers unnest it into rows.
-- Binary relevance; hits = relevant videos at ranks 1 .. k; R = n_relevant (> 0).
--   precision@k = hits / k
--   recall@k    = hits / R
--   map@k       = (sum over hit ranks i <= k of hits_at_i / i) / min(R, k),
--                 hits_at_i = n_hits_so_far, the relevant videos at ranks 1 .. i
--   ndcg@k      = (sum over hit ranks i <= k of 1 / log2(i + 1)) / ideal_dcg(min(R, k))
--   hit_rate@k  = 1 if hits > 0 else 0
--   mrr@k       = 1 / (rank of the first hit) if it is <= k else 0
-- Arithmetic: double, each sum taken in rank order (list_sum over the list ordered by rank).
-- A plain sum() adds in whatever order the threads deliver the rows, so its last bit changed
-- from query to query; a decimal sum is order-free but rounds every term to its scale. In rank
-- order the sum is exact double arithmetic, the same bits every run and on any number of
-- threads (those of a one-thread sum()).
create or replace macro user_metric_values(
    rank, is_relevant, n_hits_so_far, n_relevant, k, ideal_dcg
) as [
    {
        'metric': 'precision',
        'value': count(rank) filter (where is_relevant) / k
    },
    {
        'metric': 'recall',
        'value': count(rank) filter (where is_relevant) / n_relevant
    },
    {
        'metric': 'map',
        'value': coalesce(
            list_sum(list(n_hits_so_far / rank order by rank) filter (where is_relevant)), 0
        ) / least(n_relevant, k)
    },
    {
        'metric': 'ndcg',
        'value': coalesce(
            list_sum(list(1 / log2(rank + 1) order by rank) filter (where is_relevant)), 0
        ) / ideal_dcg
    },
    {
        'metric': 'hit_rate',
        'value': (count(rank) filter (where is_relevant) > 0)::integer::double
    },
    {
        'metric': 'mrr',
        'value': coalesce(1 / min(rank) filter (where is_relevant), 0)
    }
]

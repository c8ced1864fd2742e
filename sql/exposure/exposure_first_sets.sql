-- exposure_first_sets: one row per exposure strategy and study user: for every candidate, in
-- candidate order (exposure_user_candidates), the size n_sampled of the smallest sparse set
-- that holds it (null: in none). The sets of a strategy are nested, so the pair is in every
-- set of that size or more. Membership (exposure_sample_thresholds): sample_key > threshold,
-- or sample_key = threshold and (user_id, candidate) <= (cut_user_id, cut_candidate).
with

keys as (
    select * from exposure_sample_keys
),

cuts as (
    select
        strategy,
        bool_and(takes_every_tie) as takes_every_tie,
        list(threshold order by n_sampled) as thresholds,
        list(n_sampled order by n_sampled) as set_sizes,
        list(
            {
                'n_sampled': n_sampled,
                'threshold': threshold,
                'cut_user_id': cut_user_id,
                'cut_candidate': cut_candidate
            }
            order by n_sampled
        ) as cuts
    from exposure_sample_thresholds
    group by strategy
),

keyed as (
    select
        keys.strategy,
        keys.user_id,
        keys.sample_keys,
        cuts.takes_every_tie,
        cuts.thresholds,
        cuts.set_sizes,
        cuts.cuts
    from keys
    inner join cuts on keys.strategy = cuts.strategy
),

-- when every set of the strategy takes all the pairs at its threshold, membership is
-- sample_key >= threshold, and the sets holding a pair are the last ones (thresholds fall as
-- the sets grow): its first set is set_sizes[1 + number of sets - number holding it]
final as (
    select
        strategy,
        user_id,
        case
            when takes_every_tie
                then list_transform(
                    sample_keys,
                    lambda sample_key: set_sizes[
                        len(set_sizes) + 1
                        - len(list_filter(thresholds, lambda threshold: threshold <= sample_key))
                    ]
                )
            else list_transform(
                range(1, len(sample_keys) + 1),
                lambda candidate: list_filter(
                    cuts,
                    lambda cut: sample_keys[candidate] > cut['threshold']
                    or (
                        sample_keys[candidate] = cut['threshold']
                        and (
                            user_id < cut['cut_user_id']
                            or (
                                user_id = cut['cut_user_id']
                                and candidate <= cut['cut_candidate']
                            )
                        )
                    )
                )[1]['n_sampled']
            )
        end as first_set_sizes
    from keyed
)

select * from final

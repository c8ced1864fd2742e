-- feat_video_transitions: one row per (from video, to video) pair of the "what do users watch
-- next" table, learned from each user's time-ordered training views (int_train_events, ordered
-- by event_unix_s, ties by video_id).
-- A transition is two consecutive views of one user of two different videos at most 30 minutes
-- (1,800 s) apart. A re-watch of the same video is not a transition to itself (A, A, B gives one
-- A -> B, timed from the second A), and no transition crosses a gap of more than 30 minutes (a
-- new session). Views without a timestamp are left out.
-- n_transitions = transitions from_video_id -> to_video_id; n_engaged_transitions = those whose
-- next view is engaged (watch_ratio above the relevance threshold of its duration,
-- int_train_duration_thresholds); n_from_transitions = all transitions leaving from_video_id;
-- p_next = n_transitions / n_from_transitions, the maximum-likelihood P(next = to | from), and
-- p_engaged_next = n_engaged_transitions / n_from_transitions, P(next = to and engaged | from).
-- successor_rank orders a video's successors by n_engaged_transitions, then n_transitions (then
-- the successor with more incoming transitions overall, then the smaller video_id); only ranks
-- 1 .. 50 are kept, and the shares are computed before that cut. 30 minutes and 50 are
-- constants here (not build parameters yet).
with

train_events as (
    select * from int_train_events
),

thresholds as (
    select * from int_train_duration_thresholds
),

ordered_views as (
    select
        train_events.user_id,
        train_events.video_id,
        train_events.event_unix_s,
        coalesce(train_events.watch_ratio > thresholds.relevance_threshold, false) as is_engaged,
        lag(train_events.video_id) over user_timeline as previous_video_id,
        lag(train_events.event_unix_s) over user_timeline as previous_unix_s
    from train_events
    left join thresholds on train_events.video_duration_ms = thresholds.video_duration_ms
    where train_events.event_unix_s is not null
    window user_timeline as (
        partition by train_events.user_id
        order by train_events.event_unix_s, train_events.video_id
    )
),

transitions as (
    select
        previous_video_id as from_video_id,
        video_id as to_video_id,
        is_engaged
    from ordered_views
    where
        previous_video_id <> video_id
        and event_unix_s - previous_unix_s <= 1800
),

pair_counts as (
    select
        from_video_id,
        to_video_id,
        count(*) as n_transitions,
        count(*) filter (where is_engaged) as n_engaged_transitions
    from transitions
    group by all
),

successor_counts as (
    select
        to_video_id,
        count(*) as n_to_transitions
    from transitions
    group by all
),

ranked as (
    select
        pair_counts.from_video_id,
        pair_counts.to_video_id,
        pair_counts.n_transitions,
        pair_counts.n_engaged_transitions,
        sum(pair_counts.n_transitions) over from_video as n_from_transitions,
        pair_counts.n_transitions / n_from_transitions as p_next,
        pair_counts.n_engaged_transitions / n_from_transitions as p_engaged_next,
        row_number() over (
            from_video
            order by
                pair_counts.n_engaged_transitions desc,
                pair_counts.n_transitions desc,
                successor_counts.n_to_transitions desc,
                pair_counts.to_video_id asc
        ) as successor_rank
    from pair_counts
    inner join successor_counts on pair_counts.to_video_id = successor_counts.to_video_id
    window from_video as (partition by pair_counts.from_video_id)
),

final as (
    select
        from_video_id,
        to_video_id,
        n_transitions,
        n_engaged_transitions,
        n_from_transitions,
        p_next,
        p_engaged_next,
        successor_rank
    from ranked
    where successor_rank <= 50
    order by from_video_id, successor_rank
)

select * from final

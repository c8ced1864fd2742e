-- int_leak_pairs: one row per (user, video) pair present in both matrices.
-- Such a pair would leak the test label into training: it is removed from training and reported.
with

big_events as (
    select * from int_big_matrix_events
),

small_events as (
    select * from int_small_matrix_events
),

small_pairs as (
    select distinct
        user_id,
        video_id
    from small_events
),

final as (
    select
        big_events.user_id,
        big_events.video_id,
        count(*) as n_big_events
    from big_events
    inner join small_pairs
        on
            big_events.user_id = small_pairs.user_id
            and big_events.video_id = small_pairs.video_id
    group by all
)

select * from final

-- data_quality: one row per input file and step. For each file:
-- n_rows of the 'read' row = n_rows of the 'kept' row + the sum of its 'drop' rows;
-- 'note' rows are counts worth knowing that take no part in that sum.
with

big_views as (select * from stg_big_matrix),
big_events as (select * from int_big_matrix_events),
train_events as (select * from int_train_events),
train_pairs as (select * from int_train_interactions),
leak_pairs as (select * from int_leak_pairs),
small_views as (select * from stg_small_matrix),
small_events as (select * from int_small_matrix_events),
ground_truth as (select * from int_ground_truth),
social as (select * from stg_social_network),
categories as (select * from stg_item_categories),
profiles as (select * from stg_user_features),
daily as (select * from stg_item_daily_features),
captions as (select * from stg_caption_category),

counts as (
    select
        (select count(*) from big_views) as big_read,
        (select count(*) from big_events) as big_events,
        (select count(*) from train_events) as big_kept,
        (select count(*) from small_views) as small_read,
        (select count(*) from small_events) as small_kept
),

big_matrix as (
    select
        'big_matrix.csv' as source,
        'read' as step,
        'read' as role,
        counts.big_read as n_rows,
        'data lines read' as detail
    from counts
    union all
    select
        'big_matrix.csv',
        'duplicate_rows_dropped',
        'drop',
        counts.big_read - counts.big_events,
        'rows equal to another on every event field (date not compared)'
    from counts
    union all
    select
        'big_matrix.csv',
        'leak_pairs_removed',
        'drop',
        counts.big_events - counts.big_kept,
        'view events of (user, video) pairs that are also in the small matrix'
    from counts
    union all
    select
        'big_matrix.csv',
        'kept',
        'kept',
        counts.big_kept,
        'training view events (int_train_events)'
    from counts
    union all
    select
        'big_matrix.csv',
        'leak_pairs',
        'note',
        (select count(*) from leak_pairs),
        '(user, video) pairs found in both matrices (int_leak_pairs)'
    union all
    select
        'big_matrix.csv',
        'training_pairs',
        'note',
        (select count(*) from train_pairs),
        'distinct (user, video) pairs in training'
    union all
    select
        'big_matrix.csv',
        'rewatched_pairs',
        'note',
        (select count(*) from train_pairs where n_views > 1),
        'training pairs viewed more than once (re-watches kept as events)'
    union all
    select
        'big_matrix.csv',
        'rows_without_timestamp',
        'note',
        (select count(*) from big_views where event_unix_s is null),
        'data lines with an empty timestamp'
    union all
    select
        'big_matrix.csv',
        'duplicates_filed_under_two_dates',
        'note',
        (select count(*) from big_events where n_log_dates > 1),
        'events whose duplicate rows carry different log dates'
),

small_matrix as (
    select
        'small_matrix.csv' as source,
        'read' as step,
        'read' as role,
        counts.small_read as n_rows,
        'data lines read' as detail
    from counts
    union all
    select
        'small_matrix.csv',
        'duplicate_rows_dropped',
        'drop',
        counts.small_read - counts.small_kept,
        'rows equal to another on every event field (date not compared)'
    from counts
    union all
    select
        'small_matrix.csv',
        'kept',
        'kept',
        counts.small_kept,
        'test view events (int_small_matrix_events)'
    from counts
    union all
    select
        'small_matrix.csv',
        'ground_truth_pairs',
        'note',
        (select count(*) from ground_truth),
        '(user, video) pairs in eval_ground_truth'
    union all
    select
        'small_matrix.csv',
        'blocked_pairs',
        'note',
        (select count(distinct user_id) * count(distinct video_id) - count(*) from ground_truth),
        'small-matrix user x video pairs with no row (blocked by the user)'
    union all
    select
        'small_matrix.csv',
        'rows_without_timestamp',
        'note',
        (select count(*) from small_views where event_unix_s is null),
        'data lines with empty time, date and timestamp'
    union all
    select
        'small_matrix.csv',
        'relevant_pairs',
        'note',
        (select count(*) from ground_truth where is_relevant),
        'ground-truth pairs labelled relevant'
    union all
    select
        'small_matrix.csv',
        'users_without_relevant',
        'note',
        (
            select count(*) from (
                select user_id
                from ground_truth
                group by user_id
                having not bool_or(is_relevant)
            )
        ),
        'users with no relevant video: left out of the metric means'
),

other_files as (
    select
        'social_network.csv' as source,
        'read' as step,
        'read' as role,
        (select count(*) from social) as n_rows,
        'data lines read' as detail
    union all
    select
        'item_categories.csv', 'read', 'read', (select count(*) from categories),
        'data lines read'
    union all
    select
        'user_features.csv', 'read', 'read', (select count(*) from profiles),
        'data lines read'
    union all
    select
        'item_daily_features.csv', 'read', 'read', (select count(*) from daily),
        'data lines read'
    union all
    select
        'kuairec_caption_category.csv', 'read', 'read', (select count(*) from captions),
        'records read (a record may span lines)'
    union all
    select
        'kuairec_caption_category.csv',
        'captions_with_carriage_return',
        'note',
        (select count(*) from captions where contains(caption, chr(13))),
        'captions holding a bare carriage return, kept as text'
),

other_kept as (
    select
        source,
        'kept' as step,
        'kept' as role,
        n_rows,
        'all rows kept' as detail
    from other_files
    where role = 'read'
),

final as (
    select * from big_matrix
    union all
    select * from small_matrix
    union all
    select * from other_files
    union all
    select * from other_kept
)

select * from final

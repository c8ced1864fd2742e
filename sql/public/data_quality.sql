-- data_quality: one row per input file and step. For each file:
-- n_rows of the 'read' row = n_rows of the 'kept' row + the sum of its 'drop' rows;
-- 'note' rows are counts worth knowing that take no part in that sum.
with

big_events as (select * from int_big_matrix_events),

train_events as (select * from int_train_events),

train_pairs as (select * from int_train_interactions),

leak_pairs as (select * from int_leak_pairs),

small_events as (select * from int_small_matrix_events),

ground_truth as (select * from int_ground_truth),

social as (select * from stg_social_network),

categories as (select * from stg_item_categories),

profiles as (select * from stg_user_features),

daily as (select * from stg_item_daily_features),

captions as (select * from stg_caption_category),

user_relevance as (
    select
        user_id,
        bool_or(is_relevant) as has_relevant
    from ground_truth
    group by user_id
),

counts as (
    select
        (select sum(n_log_rows)::bigint from big_events) as big_read,
        (select count(*) from big_events) as big_events,
        (select count(*) from train_events) as big_kept,
        (select count(*) from leak_pairs) as big_leak_pairs,
        (select count(*) from train_pairs) as big_train_pairs,
        (
            select count(*) from train_pairs
            where n_views > 1
        ) as big_rewatched,
        (
            select coalesce(sum(n_log_rows), 0)::bigint from big_events
            where event_unix_s is null
        ) as big_no_timestamp,
        (
            select count(*) from big_events
            where last_log_date > log_date
        ) as big_two_dates,
        (select sum(n_log_rows)::bigint from small_events) as small_read,
        (select count(*) from small_events) as small_kept,
        (select count(*) from ground_truth) as small_pairs,
        (
            select count(distinct user_id) * count(distinct video_id) - count(*)
            from ground_truth
        ) as small_blocked,
        (
            select coalesce(sum(n_log_rows), 0)::bigint from small_events
            where event_unix_s is null
        ) as small_no_timestamp,
        (
            select count(*) from ground_truth
            where is_relevant
        ) as small_relevant,
        (
            select count(*) from user_relevance
            where not has_relevant
        ) as small_users_no_relevant,
        (select count(*) from social) as social_read,
        (select count(*) from categories) as categories_read,
        (select count(*) from profiles) as profiles_read,
        (select count(*) from daily) as daily_read,
        (select count(*) from captions) as captions_read,
        (
            select count(*) from captions
            where contains(caption, chr(13))
        ) as captions_with_cr
),

counts_long as (
    unpivot counts on columns(*) into name count_name value n_rows
),

steps as (
    select
        step_list.source,
        step_list.step_order,
        step_list.step,
        step_list.role,
        step_list.formula,
        step_list.detail
    from (
        values
        ('big_matrix.csv', 1, 'read', 'read', 'big_read', 'data lines read'),
        (
            'big_matrix.csv', 2, 'duplicate_rows_dropped', 'drop', 'big_read - big_events',
            'rows equal to another on every event field (date not compared)'
        ),
        (
            'big_matrix.csv', 3, 'leak_pairs_removed', 'drop', 'big_events - big_kept',
            'view events of (user, video) pairs that are also in the small matrix'
        ),
        (
            'big_matrix.csv', 4, 'kept', 'kept', 'big_kept',
            'training view events (int_train_events)'
        ),
        (
            'big_matrix.csv', 5, 'leak_pairs', 'note', 'big_leak_pairs',
            '(user, video) pairs found in both matrices (int_leak_pairs)'
        ),
        (
            'big_matrix.csv', 6, 'training_pairs', 'note', 'big_train_pairs',
            'distinct (user, video) pairs in training'
        ),
        (
            'big_matrix.csv', 7, 'rewatched_pairs', 'note', 'big_rewatched',
            'training pairs viewed more than once (re-watches kept as events)'
        ),
        (
            'big_matrix.csv', 8, 'rows_without_timestamp', 'note', 'big_no_timestamp',
            'data lines with an empty timestamp'
        ),
        (
            'big_matrix.csv', 9, 'duplicates_filed_under_two_dates', 'note', 'big_two_dates',
            'events whose duplicate rows carry different log dates'
        ),
        ('small_matrix.csv', 1, 'read', 'read', 'small_read', 'data lines read'),
        (
            'small_matrix.csv', 2, 'duplicate_rows_dropped', 'drop', 'small_read - small_kept',
            'rows equal to another on every event field (date not compared)'
        ),
        (
            'small_matrix.csv', 3, 'kept', 'kept', 'small_kept',
            'test view events (int_small_matrix_events)'
        ),
        (
            'small_matrix.csv', 4, 'ground_truth_pairs', 'note', 'small_pairs',
            '(user, video) pairs in eval_ground_truth'
        ),
        (
            'small_matrix.csv', 5, 'blocked_pairs', 'note', 'small_blocked',
            'small-matrix user x video pairs with no row (blocked by the user)'
        ),
        (
            'small_matrix.csv', 6, 'rows_without_timestamp', 'note', 'small_no_timestamp',
            'data lines with empty time, date and timestamp'
        ),
        (
            'small_matrix.csv', 7, 'relevant_pairs', 'note', 'small_relevant',
            'ground-truth pairs labelled relevant'
        ),
        (
            'small_matrix.csv', 8, 'users_without_relevant', 'note', 'small_users_no_relevant',
            'users with no relevant video: left out of the metric means'
        ),
        ('social_network.csv', 1, 'read', 'read', 'social_read', 'data lines read'),
        ('social_network.csv', 2, 'kept', 'kept', 'social_read', 'all rows kept'),
        ('item_categories.csv', 1, 'read', 'read', 'categories_read', 'data lines read'),
        ('item_categories.csv', 2, 'kept', 'kept', 'categories_read', 'all rows kept'),
        ('user_features.csv', 1, 'read', 'read', 'profiles_read', 'data lines read'),
        ('user_features.csv', 2, 'kept', 'kept', 'profiles_read', 'all rows kept'),
        ('item_daily_features.csv', 1, 'read', 'read', 'daily_read', 'data lines read'),
        ('item_daily_features.csv', 2, 'kept', 'kept', 'daily_read', 'all rows kept'),
        (
            'kuairec_caption_category.csv', 1, 'read', 'read', 'captions_read',
            'records read (a record may span lines)'
        ),
        (
            'kuairec_caption_category.csv', 2, 'kept', 'kept', 'captions_read',
            'all rows kept'
        ),
        (
            'kuairec_caption_category.csv', 3, 'captions_with_carriage_return', 'note',
            'captions_with_cr', 'captions holding a bare carriage return, kept as text'
        )
    ) as step_list (source, step_order, step, role, formula, detail)
),

-- A formula is one count name or the difference of two.
final as (
    select
        steps.source,
        steps.step,
        steps.role,
        minuend.n_rows - coalesce(subtrahend.n_rows, 0) as n_rows,
        steps.detail
    from steps
    inner join counts_long as minuend
        on split_part(steps.formula, ' - ', 1) = minuend.count_name
    left join counts_long as subtrahend
        on split_part(steps.formula, ' - ', 2) = subtrahend.count_name
    order by steps.source, steps.step_order
)

select * from final

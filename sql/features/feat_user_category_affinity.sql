-- feat_user_category_affinity: one row per big-matrix user and first-level caption category
-- (every combination): how much more than an average user the user watched the category in
-- training.
--   g_c      = the category's share of all training views of videos with a category
--   share_uc = (n_uc + m * g_c) / (n_u + m), n_uc = the user's training views of category c,
--              n_u = the user's training views of videos with a category, m = 20 views: a
--              prior that pulls users with few views towards the average share
--   lift     = share_uc / g_c: 1 for an average user, above 1 when the user favours c
--   log_lift = ln(lift)
-- Videos without a first-level category count in no category. Counts are integers, so the
-- shares are the same bits in every build.
with

train_events as (
    select * from int_train_events
),

videos as (
    select * from feat_video_content
),

users as (
    select * from int_user_index
),

categorised_views as (
    select
        train_events.user_id,
        videos.first_level_category_id
    from train_events
    inner join videos on train_events.video_id = videos.video_id
    where videos.first_level_category_id is not null
),

category_views as (
    select
        first_level_category_id,
        count(*) as n_views
    from categorised_views
    group by all
),

category_shares as (
    select
        first_level_category_id,
        n_views / sum(n_views) over () as global_share
    from category_views
),

user_category_views as (
    select
        user_id,
        first_level_category_id,
        count(*) as n_views
    from categorised_views
    group by all
),

user_views as (
    select
        user_id,
        count(*) as n_views
    from categorised_views
    group by all
),

shares as (
    select
        users.user_id,
        category_shares.first_level_category_id,
        coalesce(user_category_views.n_views, 0) as n_views,
        coalesce(user_views.n_views, 0) as n_user_views,
        category_shares.global_share,
        (
            coalesce(user_category_views.n_views, 0) + 20 * category_shares.global_share
        ) / (coalesce(user_views.n_views, 0) + 20) as category_share
    from users
    cross join category_shares
    left join user_views on users.user_id = user_views.user_id
    left join user_category_views
        on
            users.user_id = user_category_views.user_id
            and category_shares.first_level_category_id
            = user_category_views.first_level_category_id
),

final as (
    select
        user_id,
        first_level_category_id,
        n_views,
        n_user_views,
        global_share,
        category_share,
        ln(category_share / global_share) as log_lift
    from shares
)

select * from final

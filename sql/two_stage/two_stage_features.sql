-- two_stage_features: one row per candidate (user, video) of the two_stage re-ranker, with the
-- features that do not come from the candidate models (models/two_stage.py adds each model's
-- rank and score). Reads the temp tables the model writes first: two_stage_lists (model,
-- user_id, video_id, rank, score: the candidate models' lists) and two_stage_video_effects
-- (video_id, effect, effect_se: video_quality's logit effect and its standard error).
--   video_effect, video_effect_se  video_quality's estimate of the video and its uncertainty
--   video_log_users                ln(1 + training users of the video)
--   video_log_duration_s           ln(1 + video length in seconds)
--   category_affinity              the user's log lift for the video's first-level category
--   user_activity                  percentile of the user's training views among all users
--   user_segment                   user_active_degree as a code: 3 high, 2 full, 1 middle, 0 other
--   related_recency_hours          hours from the user's last training view of a video of the
--                                  same first-level category to the user's last training view
--                                  (null when the user never watched the category)
--   related_share                  share of the user's training views in that category
with

lists as (
    select * from two_stage_lists
),

video_effects as (
    select * from two_stage_video_effects
),

train_events as (
    select * from int_train_events
),

content as (
    select * from feat_video_content
),

popularity as (
    select * from feat_video_popularity
),

affinity as (
    select * from feat_user_category_affinity
),

activity as (
    select * from feat_user_activity
),

pairs as (
    select distinct
        user_id,
        video_id
    from lists
),

user_activity as (
    select
        user_id,
        percent_rank() over (order by n_views) as user_activity,
        case user_active_degree
            when 'high_active' then 3
            when 'full_active' then 2
            when 'middle_active' then 1
            else 0
        end as user_segment,
        last_view_at
    from activity
),

category_views as (
    select
        train_events.user_id,
        content.first_level_category_id,
        count(*) as n_views,
        max(train_events.event_at) as last_view_at
    from train_events
    inner join content on train_events.video_id = content.video_id
    where content.first_level_category_id is not null
    group by all
),

user_views as (
    select
        user_id,
        sum(n_views) as n_views
    from category_views
    group by all
),

final as (
    select
        pairs.user_id,
        pairs.video_id,
        video_effects.effect as video_effect,
        video_effects.effect_se as video_effect_se,
        ln(1 + coalesce(popularity.n_users, 0)) as video_log_users,
        ln(1 + content.video_duration_ms / 1000) as video_log_duration_s,
        coalesce(affinity.log_lift, 0) as category_affinity,
        user_activity.user_activity,
        user_activity.user_segment,
        epoch(user_activity.last_view_at - category_views.last_view_at) / 3600
            as related_recency_hours,
        coalesce(category_views.n_views / user_views.n_views, 0) as related_share
    from pairs
    left join video_effects on pairs.video_id = video_effects.video_id
    left join popularity on pairs.video_id = popularity.video_id
    left join content on pairs.video_id = content.video_id
    left join affinity
        on
            pairs.user_id = affinity.user_id
            and content.first_level_category_id = affinity.first_level_category_id
    left join user_activity on pairs.user_id = user_activity.user_id
    left join category_views
        on
            pairs.user_id = category_views.user_id
            and content.first_level_category_id = category_views.first_level_category_id
    left join user_views on pairs.user_id = user_views.user_id
)

select * from final

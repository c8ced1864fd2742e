-- audit_recommendations_unseen: recommended videos the user already has in training.
-- Must return no rows.
with

recs as (
    select * from recommendations
),

train_pairs as (
    select * from int_train_interactions
),

final as (
    select
        recs.model,
        recs.user_id,
        recs.video_id
    from recs
    inner join train_pairs
        on recs.user_id = train_pairs.user_id and recs.video_id = train_pairs.video_id
)

select * from final

"""The KuaiRec 2.0 input files: names, columns and the types they are read with.

Numeric columns that pandas-written files may print as floats (``20200705.0``, ``6067.0``) or
leave empty are read as DOUBLE and cast to integers in the staging SQL; identifiers that are
never empty are read as INTEGER. Nothing is sniffed.
"""

from __future__ import annotations

INTERACTION_COLUMNS: dict[str, str] = {
    "user_id": "INTEGER",
    "video_id": "INTEGER",
    "play_duration": "DOUBLE",
    "video_duration": "DOUBLE",
    "time": "TIMESTAMP",
    "date": "DOUBLE",
    "timestamp": "DOUBLE",
    "watch_ratio": "DOUBLE",
}

_USER_FEATURE_COLUMNS: dict[str, str] = {
    "user_id": "INTEGER",
    "user_active_degree": "VARCHAR",
    "is_lowactive_period": "DOUBLE",
    "is_live_streamer": "DOUBLE",
    "is_video_author": "DOUBLE",
    "follow_user_num": "DOUBLE",
    "follow_user_num_range": "VARCHAR",
    "fans_user_num": "DOUBLE",
    "fans_user_num_range": "VARCHAR",
    "friend_user_num": "DOUBLE",
    "friend_user_num_range": "VARCHAR",
    "register_days": "DOUBLE",
    "register_days_range": "VARCHAR",
    **{f"onehot_feat{i}": "DOUBLE" for i in range(18)},
}

_DAILY_COUNTERS = [
    "show_cnt",
    "show_user_num",
    "play_cnt",
    "play_user_num",
    "play_duration",
    "complete_play_cnt",
    "complete_play_user_num",
    "valid_play_cnt",
    "valid_play_user_num",
    "long_time_play_cnt",
    "long_time_play_user_num",
    "short_time_play_cnt",
    "short_time_play_user_num",
    "play_progress",
    "comment_stay_duration",
    "like_cnt",
    "like_user_num",
    "click_like_cnt",
    "double_click_cnt",
    "cancel_like_cnt",
    "cancel_like_user_num",
    "comment_cnt",
    "comment_user_num",
    "direct_comment_cnt",
    "reply_comment_cnt",
    "delete_comment_cnt",
    "delete_comment_user_num",
    "comment_like_cnt",
    "comment_like_user_num",
    "follow_cnt",
    "follow_user_num",
    "cancel_follow_cnt",
    "cancel_follow_user_num",
    "share_cnt",
    "share_user_num",
    "download_cnt",
    "download_user_num",
    "report_cnt",
    "report_user_num",
    "reduce_similar_cnt",
    "reduce_similar_user_num",
    "collect_cnt",
    "collect_user_num",
    "cancel_collect_cnt",
    "cancel_collect_user_num",
]

_ITEM_DAILY_COLUMNS: dict[str, str] = {
    "video_id": "INTEGER",
    "date": "DOUBLE",
    "author_id": "DOUBLE",
    "video_type": "VARCHAR",
    "upload_dt": "VARCHAR",
    "upload_type": "VARCHAR",
    "visible_status": "VARCHAR",
    "video_duration": "DOUBLE",
    "video_width": "DOUBLE",
    "video_height": "DOUBLE",
    "music_id": "DOUBLE",
    "video_tag_id": "DOUBLE",
    "video_tag_name": "VARCHAR",
    **{name: "DOUBLE" for name in _DAILY_COUNTERS},
}

_CAPTION_COLUMNS: dict[str, str] = {
    "video_id": "INTEGER",
    "manual_cover_text": "VARCHAR",
    "caption": "VARCHAR",
    "topic_tag": "VARCHAR",
    "first_level_category_id": "DOUBLE",
    "first_level_category_name": "VARCHAR",
    "second_level_category_id": "DOUBLE",
    "second_level_category_name": "VARCHAR",
    "third_level_category_id": "DOUBLE",
    "third_level_category_name": "VARCHAR",
}

# source name -> (file name, {column: read type}); the source name is the staging suffix.
SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "big_matrix": ("big_matrix.csv", INTERACTION_COLUMNS),
    "small_matrix": ("small_matrix.csv", INTERACTION_COLUMNS),
    "social_network": (
        "social_network.csv",
        {"user_id": "INTEGER", "friend_list": "VARCHAR"},
    ),
    "item_categories": ("item_categories.csv", {"video_id": "INTEGER", "feat": "VARCHAR"}),
    "user_features": ("user_features.csv", _USER_FEATURE_COLUMNS),
    "item_daily_features": ("item_daily_features.csv", _ITEM_DAILY_COLUMNS),
    "caption_category": ("kuairec_caption_category.csv", _CAPTION_COLUMNS),
}

# Sources whose text may hold bare carriage returns (four captions of the real caption file,
# videos 1378, 1613, 5910 and 6331, hold one inside an unquoted field, which DuckDB's reader
# refuses); they pass through kuairec_db.csvprep before DuckDB reads them.
TEXT_SOURCES = frozenset({"caption_category"})

# Stand-in for a bare "\r" inside a field while DuckDB parses the file; staging restores it.
CR_PLACEHOLDER = "\ue00d"

REQUIRED_FILES = tuple(file for file, _ in SOURCES.values())

"""Small KuaiRec-format datasets with planted structure, written by the tests that need them.

``write_kuairec`` writes the seven files (real columns, real formats) from a list of views for
each matrix; the side files hold what the models read: one category per video, a duration per
video, a user_active_degree per user.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

START = 1593878400  # 2020-07-04 16:00 UTC, the first log day in Beijing time

DAILY_COUNTERS = (
    "show_cnt,show_user_num,play_cnt,play_user_num,play_duration,complete_play_cnt,"
    "complete_play_user_num,valid_play_cnt,valid_play_user_num,long_time_play_cnt,"
    "long_time_play_user_num,short_time_play_cnt,short_time_play_user_num,play_progress,"
    "comment_stay_duration,like_cnt,like_user_num,click_like_cnt,double_click_cnt,cancel_like_cnt,"
    "cancel_like_user_num,comment_cnt,comment_user_num,direct_comment_cnt,reply_comment_cnt,"
    "delete_comment_cnt,delete_comment_user_num,comment_like_cnt,comment_like_user_num,follow_cnt,"
    "follow_user_num,cancel_follow_cnt,cancel_follow_user_num,share_cnt,share_user_num,"
    "download_cnt,download_user_num,report_cnt,report_user_num,reduce_similar_cnt,"
    "reduce_similar_user_num,collect_cnt,collect_user_num,cancel_collect_cnt,"
    "cancel_collect_user_num"
).split(",")
MATRIX_HEADER = [
    "user_id",
    "video_id",
    "play_duration",
    "video_duration",
    "time",
    "date",
    "timestamp",
    "watch_ratio",
]


def _matrix(path: Path, views, durations: dict[int, int], float_date: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(MATRIX_HEADER)
        for i, (user, video, ratio) in enumerate(views):
            duration = durations[video]
            play = round(ratio * duration)
            stamp = START + 60 * i
            moment = datetime.fromtimestamp(stamp, timezone.utc)
            date = int(moment.strftime("%Y%m%d"))
            out.writerow(
                [
                    user,
                    video,
                    play,
                    duration,
                    moment.strftime("%Y-%m-%d %H:%M:%S.000"),
                    f"{date}.0" if float_date else date,
                    f"{stamp}.0",
                    play / duration,
                ]
            )


def write_kuairec(
    folder: Path,
    big: list[tuple[int, int, float]],
    small: list[tuple[int, int, float]],
    durations: dict[int, int],
    categories: dict[int, int] | None = None,
    degrees: dict[int, str] | None = None,
) -> Path:
    """Write the seven KuaiRec files into FOLDER.

    big, small: (user_id, video_id, watch_ratio) views; durations: video -> length in ms;
    categories: video -> first-level category id (default 1); degrees: user ->
    user_active_degree (default full_active).
    """
    folder.mkdir(parents=True, exist_ok=True)
    categories = categories or {}
    degrees = degrees or {}
    videos = sorted(durations)
    users = sorted({u for u, _, _ in big} | {u for u, _, _ in small})
    _matrix(folder / "big_matrix.csv", big, durations, float_date=False)
    _matrix(folder / "small_matrix.csv", small, durations, float_date=True)
    with (folder / "item_categories.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["video_id", "feat"])
        for video in videos:
            out.writerow([video, f"[{categories.get(video, 1)}]"])
    with (folder / "kuairec_caption_category.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(
            [
                "video_id",
                "manual_cover_text",
                "caption",
                "topic_tag",
                "first_level_category_id",
                "first_level_category_name",
                "second_level_category_id",
                "second_level_category_name",
                "third_level_category_id",
                "third_level_category_name",
            ]
        )
        for video in videos:
            category = categories.get(video, 1)
            out.writerow(
                [video, "UNKNOWN", f"video {video}", "[]", category, f"category {category}"]
                + [-124, "UNKNOWN", -124, "UNKNOWN"]
            )
    with (folder / "item_daily_features.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(
            [
                "video_id",
                "date",
                "author_id",
                "video_type",
                "upload_dt",
                "upload_type",
                "visible_status",
                "video_duration",
                "video_width",
                "video_height",
                "music_id",
                "video_tag_id",
                "video_tag_name",
            ]
            + DAILY_COUNTERS
        )
        for video in videos:
            out.writerow(
                [video, 20200705, video, "NORMAL", "2020-06-01", "ShortImport", "public"]
                + [durations[video], 720, 1280, video, 1, "tag"]
                + [1] * len(DAILY_COUNTERS)
            )
    with (folder / "social_network.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["user_id", "friend_list"])
        out.writerow([users[0], f"[{users[-1]}]"])
    with (folder / "user_features.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(
            [
                "user_id",
                "user_active_degree",
                "is_lowactive_period",
                "is_live_streamer",
                "is_video_author",
                "follow_user_num",
                "follow_user_num_range",
                "fans_user_num",
                "fans_user_num_range",
                "friend_user_num",
                "friend_user_num_range",
                "register_days",
                "register_days_range",
            ]
            + [f"onehot_feat{i}" for i in range(18)]
        )
        for user in users:
            out.writerow(
                [user, degrees.get(user, "full_active"), 0, 0, 0, 5, "(0,10]", 3, "[1,10)"]
                + [1, "[1,5)", 120, "61-90"]
                + [0] * 18
            )
    return folder

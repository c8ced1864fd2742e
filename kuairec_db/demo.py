"""A synthetic, KuaiRec-shaped data set for tests and benchmarks when the real files are absent.

``generate(out_dir, scale, seed)`` writes the seven KuaiRec 2.0 CSV files (names and column
order of ``schema.SOURCES``). Scale 1.0 has the real shape (7,176 users, 10,728 videos, about
12.5M big-matrix rows, a 1,411 x 3,327 small matrix). Scale shrinks users and videos alike, so
row counts grow with scale squared; with ``full_catalogue=True`` it shrinks users only (every
user keeps KuaiRec's activity and catalogue), so row counts grow in proportion to scale.

Planted structure, calibrated to a real random sample of the fully observed small matrix (83
videos a user; ``scripts/calibrate_demo.py`` prints every statistic beside the real one):

* topics: 10 topics of 3 subtopics each. Every video has a main topic and subtopic (which also
  set its first- and second-level caption categories, its first tag and its video_tag) plus a
  small random mix; every user has a taste concentrated on the subtopics of 1-3 topics;
* exposure in the big matrix is personal: it grows with a Zipf-like video popularity (correlated
  with its feed effect, below) and with taste affinity, as a feed shows users what it expects
  them to like; user activity has the real shape (100 to about 15,000 views, median 1,850);
* watch time does not depend on taste (the real matrix shows no user x category effect and no
  low-rank interaction): about 7.5 s of most videos whatever their length (so short videos get a
  high watch_ratio), a per-video quality effect (which also makes early skips rarer), a small
  user effect and a lot of noise; about 12% of views are skipped early and a few loop the video
  (feed views loop more often). On y = ln(1 + watch_ratio) the video explains about 40% of the
  variance, the user about 5%, as in the real sample;
* the small matrix is the same process, fully observed: each small user sees each small video,
  except for two feed effects (issue 14, ``scripts/real_log_bias.py``): a video's effect in the
  feed correlates only ``_LOG_TRANSFER`` (0.5) with its effect in the small matrix (the feed's
  context: where and after what it showed the video), and the feed's exposure follows the feed's
  effect; heavy users skim in the feed (``_FEED_FATIGUE``) but not in the small matrix, as the
  real sample shows no activity effect and the real log user watches less late in a session.
  So the log's engagement ranks the small matrix's videos far less well than it did.

Quirks of the real files that are reproduced: duplicate log rows (a few filed under another
date), dates that disagree with the timestamp, re-watches, small-matrix rows without time,
blocked pairs, small/big disjointness, captions with commas, quotes, emoji, newlines and bare
carriage returns, watch_ratio of 0 and above 100.

Size: over 500 lines because it generates one world: its draws must stay in this order for
the files of a seed to stay byte-identical, and each planted constant is documented beside
the code that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from kuairec_db.schema import SOURCES

# Shape of the real data (scale 1.0).
_USERS = 7176
_VIDEOS = 10728
_BIG_ROWS = 12_530_806
_SMALL_USERS = 1411
_SMALL_VIDEOS = 3327
_SOCIAL_ROWS = 472
_MIN_USERS, _MIN_VIDEOS, _MIN_SMALL_USERS, _MIN_SMALL_VIDEOS = 30, 50, 10, 20

# Rates of the real quirks.
_DUP_SHARE = 968_004 / 12_530_806  # big-matrix rows that repeat another row
_REWATCH_SHARE = 0.10  # views that come back to an already seen (user, video) pair
_TWO_DATE_SHARE = 0.0023  # duplicate rows filed under another date
_DATE_DRIFT_SHARE = 0.001  # rows whose date is not the local date of their timestamp
_SMALL_KEEP = 0.996  # small users x small videos that were not blocked
_SMALL_UNTIMED = 181_992 / 4_676_570  # small-matrix rows without time, date, timestamp
_ZERO_PLAY = 0.004  # views with play_duration 0
_HUGE_RATIO = 2e-5  # views of a very short video played very long (watch_ratio > 100)

# Calendar: local time is Asia/Shanghai (UTC+8); three collection windows.
_DAY0 = 18448  # 2020-07-05 in days since 1970-01-01
_WINDOW_DAYS = np.r_[0:8, 27:37, 53:63]  # Jul 5-12, Aug 1-10, Aug 27-Sep 5
_SPAN_DAYS = 63
_DAY_MS = 86_400_000
_LOCAL_OFFSET_MS = 8 * 3_600_000
_HOUR_WEIGHTS = np.array(
    [5, 3, 2, 1, 1, 1, 2, 4, 6, 7, 7, 8, 9, 8, 7, 7, 7, 8, 9, 10, 11, 12, 11, 8], dtype=float
)

# Latent model.
_TOPICS = 10
_SUBTOPICS = 3  # per topic; they are the second-level categories
_PREVALENCE_CONC = 20.0  # Dirichlet concentration of how common each topic is among users
_SUB_CONCENTRATION = 3.0  # Dirichlet concentration of a user's taste among subtopics
_TASTE_FLOOR = 0.03
_VIDEO_MIX = 0.3  # share of a video's topic vector spread at random
_VIDEO_TOPIC_SHARE = 0.25  # share spread evenly over the subtopics of its main topic
_TAGS = 31
_EXPOSURE_AFFINITY = 3.0  # log exposure odds per unit of taste affinity
_ZIPF = 0.5  # popularity ~ (rank share + _ZIPF_HEAD) ** -_ZIPF, the same spread at every scale
_ZIPF_HEAD = 0.02
_POP_QUALITY_CORR = 0.7  # the feed shows more of the videos that engage in the feed
# Watch time, calibrated to the real small-matrix sample (scripts/calibrate_demo.py): the video
# (length and quality) explains most of log watch time, the user a little, taste nothing.
_WATCH_BASE_S = 7.4  # typical seconds watched, whatever the video length
_LENGTH_ELASTICITY = 0.2  # watch time grows only weakly with video length
_QUALITY_SD = 0.28
_USER_SD = 0.17
_NOISE_SD = 0.24
_SKIP_SHARE = 0.12  # views abandoned early: watch_ratio about 0.1 (log-sd _SKIP_SD)
_SKIP_RATIO = 0.1
_SKIP_SD = 1.2
_QUALITY_PLAY = 0.6  # share of a video's quality that lengthens watching; the rest averts skips
_SKIP_QUALITY = 4.0  # log odds of a skip per unit of quality
_LOOP_SHARE = 0.09  # views that loop the video: log watch time + |N(0, _LOOP_SD)|
_LOOP_SD = 0.75
_FEED_EFFECT = -0.06  # log watch-time offset of big-matrix (feed) views
_FEED_LOOP_SHARE = 0.12  # feed views loop more often and longer (real p99 4.8, small 3.6)
_FEED_LOOP_SD = 0.95
_LENGTH_SD = 0.45  # log-sd of video length around the 9.6 s median
# The feed log against the fully observed matrix (issue 14; scripts/real_log_bias.py measures
# what the real pieces show). A video's effect in the feed is only partly its effect in the
# small matrix: feed effect = _LOG_TRANSFER * quality + sqrt(1 - _LOG_TRANSFER**2) * context,
# context an independent video effect of the same spread (where and after what the feed placed
# it). 1.0 is the old demo, where the log's engagement ranks videos as the test does.
_LOG_TRANSFER = 0.5
# Heavy users skim in the feed (long sessions: the real log user watches less from a session's
# 20th view on) but not in the small matrix (the real sample: activity segments explain 0.7% of
# the user effect). Log watch-time offset of feed views per unit of ln(user views / median).
_FEED_FATIGUE = 0.06
_CHUNK_USERS = 256
_GRID = 1024  # tastes and topic vectors are rounded to multiples of 1 / _GRID

# --- topics, tags and words --------------------------------------------------------------------
# (name, first-level category id, second-level (id, name), third-level (id, name), words)
_TOPIC_INFO = [
    (
        "美食",
        5,
        [(101, "家常菜谱"), (102, "探店"), (103, "美食测评")],
        [(1001, "川菜"), (1002, "烘焙")],
        ["红烧肉", "小吃", "火锅", "烧烤", "甜品", "早餐", "做饭"],
    ),
    (
        "游戏",
        8,
        [(111, "手机游戏"), (112, "游戏解说"), (113, "电竞")],
        [(1011, "王者荣耀"), (1012, "和平精英")],
        ["上分", "操作", "手游", "主播", "通关", "五杀"],
    ),
    (
        "搞笑",
        11,
        [(121, "搞笑段子"), (122, "情景剧"), (123, "搞笑配音")],
        [(1021, "沙雕日常"), (1022, "整蛊")],
        ["段子", "笑死", "沙雕", "整蛊", "反转", "名场面"],
    ),
    (
        "宠物",
        12,
        [(131, "猫"), (132, "狗"), (133, "萌宠日常")],
        [(1031, "布偶猫"), (1032, "柯基")],
        ["猫咪", "狗狗", "铲屎官", "萌宠", "喵星人", "撒娇"],
    ),
    (
        "颜值",
        14,
        [(141, "美女"), (142, "帅哥"), (143, "穿搭")],
        [(1041, "汉服"), (1042, "妆容")],
        ["小姐姐", "小哥哥", "穿搭", "自拍", "氛围感", "微笑"],
    ),
    (
        "音乐",
        17,
        [(151, "翻唱"), (152, "乐器演奏"), (153, "原创音乐")],
        [(1051, "吉他弹唱"), (1052, "古风")],
        ["翻唱", "吉他", "弹唱", "钢琴", "原创", "好声音"],
    ),
    (
        "舞蹈",
        20,
        [(161, "街舞"), (162, "广场舞"), (163, "舞蹈教学")],
        [(1061, "手势舞"), (1062, "爵士舞")],
        ["街舞", "卡点", "编舞", "跳舞", "律动", "齐舞"],
    ),
    (
        "体育",
        22,
        [(171, "篮球"), (172, "足球"), (173, "健身")],
        [(1071, "NBA"), (1072, "跑步")],
        ["篮球", "足球", "健身", "扣篮", "进球", "训练"],
    ),
    (
        "汽车",
        25,
        [(181, "汽车测评"), (182, "改装车"), (183, "用车知识")],
        [(1081, "越野"), (1082, "新能源")],
        ["试驾", "改装", "越野", "新车", "提车", "自驾游"],
    ),
    (
        "情感",
        27,
        [(191, "情感语录"), (192, "情感故事"), (193, "正能量")],
        [(1091, "恋爱"), (1092, "亲情")],
        ["恋爱", "故事", "感动", "治愈", "正能量", "回忆"],
    ),
]
_TAG_NAMES = [
    "美食",
    "游戏",
    "搞笑",
    "宠物",
    "颜值",
    "音乐",
    "舞蹈",
    "体育",
    "汽车",
    "情感",
    "家常",
    "电竞",
    "段子",
    "萌宠",
    "穿搭",
    "翻唱",
    "街舞",
    "健身",
    "用车",
    "语录",
    "生活",
    "旅行",
    "亲子",
    "三农",
    "教育",
    "科技",
    "影视",
    "动漫",
    "时尚",
    "美妆",
    "综合",
]
_GENERIC_WORDS = [
    "今天",
    "一起",
    "大家",
    "分享",
    "记录",
    "生活",
    "快乐",
    "哈哈哈",
    "真的",
    "好看",
    "喜欢",
    "关注我",
    "点赞",
    "评论区见",
    "第一次",
    "最后",
    "你们觉得呢",
    "太难了",
    "绝了",
    "每天",
]
_EMOJI = ["😂", "🤣", "❤️", "👍", "🔥", "😍", "🙏", "🎉", "🐱", "🏀", "🎵", "😭", "✨", "💪"]
_COVER_WORDS = ["看到最后", "太好吃了", "笑不活了", "教程来了", "第二弹", "名场面", "必看"]
_UPLOAD_TYPES = [
    "ShortImport",
    "LongImport",
    "Kmovie",
    "FollowShoot",
    "PictureSet",
    "Web",
    "ShareFromOtherApp",
    "LongPicture",
]
_UPLOAD_TYPE_WEIGHTS = [0.45, 0.2, 0.1, 0.07, 0.06, 0.05, 0.04, 0.03]


def _topic_tags(topic: int) -> tuple[int, int]:
    """The two tags that go with a topic: its own and a second one."""
    return topic, _TOPICS + topic


# --- sizes and the latent world ----------------------------------------------------------------
@dataclass
class _Sizes:
    users: int
    videos: int
    small_users: int
    small_videos: int
    big_rows: int  # target, duplicates included
    scale: float
    activity: float  # share of KuaiRec's views per user


def _sizes(scale: float, full_catalogue: bool = False) -> _Sizes:
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    video_scale = 1.0 if full_catalogue else scale
    users = max(_MIN_USERS, round(_USERS * scale))
    videos = max(_MIN_VIDEOS, round(_VIDEOS * video_scale))
    small_users = min(users, max(_MIN_SMALL_USERS, round(_SMALL_USERS * scale)))
    small_videos = min(videos // 2, max(_MIN_SMALL_VIDEOS, round(_SMALL_VIDEOS * video_scale)))
    density = _BIG_ROWS / (_USERS * _VIDEOS)
    big_rows = round(density * users * videos)
    return _Sizes(users, videos, small_users, small_videos, big_rows, scale, video_scale)


@dataclass
class _World:
    sizes: _Sizes
    taste: np.ndarray  # (users, subtopics), max entry 1 per user
    main_topic: np.ndarray  # (videos,)
    main_sub: np.ndarray  # (videos,) subtopic, topic * _SUBTOPICS + j
    video_topics: np.ndarray  # (videos, subtopics), rows sum to about 1
    duration_ms: np.ndarray  # (videos,) int64
    quality: np.ndarray  # (videos,) log watch-time effect in the small matrix
    feed_quality: np.ndarray  # (videos,) log watch-time effect in the feed (big matrix)
    feed_user_offset: np.ndarray  # (users,) log watch-time offset of the user's feed views
    log_pop: np.ndarray  # (videos,) log exposure weight
    user_bias: np.ndarray  # (users,) log watch-time effect
    views: np.ndarray  # (users,) big-matrix views wanted, duplicates excluded
    small_users: np.ndarray  # sorted ids
    small_videos: np.ndarray  # sorted ids
    is_small_user: np.ndarray
    is_small_video: np.ndarray


def _affinity(taste: np.ndarray, video_topics: np.ndarray) -> np.ndarray:
    """taste @ video_topics.T. Both hold multiples of 2**-10 below 1, so every product and sum
    is exact in float64: the result does not depend on the BLAS or its summation order."""
    return taste @ video_topics.T


def _on_grid(x: np.ndarray) -> np.ndarray:
    return np.rint(x * _GRID) / _GRID


def _make_world(sizes: _Sizes, rng: np.random.Generator) -> _World:
    n_u, n_v, k, n_sub = sizes.users, sizes.videos, _TOPICS, _SUBTOPICS
    dims = k * n_sub  # latent dimensions: the subtopics (second-level categories)
    prevalence = rng.dirichlet(np.full(k, _PREVALENCE_CONC))

    # Users: taste on 1-3 topics with a preference among their subtopics, scaled so the
    # favourite subtopic is 1, and a small floor on everything else.
    n_fav = rng.choice([1, 2, 3], size=n_u, p=[0.3, 0.45, 0.25])
    keys = np.log(prevalence)[None, :] + rng.gumbel(size=(n_u, k))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    topic_weight = rng.gamma(2.0, size=(n_u, k)) * (rank < n_fav[:, None])
    sub_share = rng.dirichlet(np.full(n_sub, _SUB_CONCENTRATION), size=(n_u, k))
    weights = (topic_weight[:, :, None] * sub_share).reshape(n_u, dims)
    taste = _on_grid(
        _TASTE_FLOOR + (1 - _TASTE_FLOOR) * weights / weights.max(axis=1, keepdims=True)
    )
    user_bias = rng.normal(0.0, _USER_SD, n_u)

    # Activity (real: 100 to 16,015 views, median about 1,850 above the mean of 1,611): a long
    # tail of light users, a few very heavy ones.
    kind = rng.random(n_u)
    act = np.where(
        kind < 0.3,
        rng.uniform(0.06, 0.7, n_u),
        np.where(
            kind < 0.995, np.clip(rng.normal(1.3, 0.2, n_u), 0.3, None), rng.uniform(2.5, 9.9, n_u)
        ),
    )
    target_views = sizes.big_rows * (1 - _DUP_SHARE)
    views = np.maximum(max(3, round(100 * sizes.activity)), np.rint(act / act.sum() * target_views))

    # Videos: main topic, mixed topic vector, length, quality, popularity.
    main_topic = rng.choice(k, size=n_v, p=rng.dirichlet(np.full(k, 6.0)))
    main_sub = main_topic * n_sub + rng.integers(0, n_sub, n_v)
    video_topics = _VIDEO_MIX * rng.dirichlet(np.full(dims, 0.3), size=n_v)
    rows = np.arange(n_v)
    for j in range(n_sub):
        video_topics[rows, main_topic * n_sub + j] += _VIDEO_TOPIC_SHARE / n_sub
    video_topics[rows, main_sub] += 1 - _VIDEO_MIX - _VIDEO_TOPIC_SHARE
    video_topics = _on_grid(video_topics)
    seconds = np.exp(rng.normal(math.log(9.6), _LENGTH_SD, n_v))
    long_tail = rng.random(n_v) < 0.02
    seconds[long_tail] = np.exp(rng.normal(math.log(60.0), 0.7, long_tail.sum()))
    seconds = np.clip(seconds, 1.5, 315.0)
    tiny = rng.choice(n_v, size=max(3, round(0.002 * n_v)), replace=False)
    seconds[tiny] = rng.uniform(1.0, 2.5, tiny.size)
    seconds[rng.integers(n_v)] = 315.0
    duration_ms = np.rint(seconds * 1000).astype(np.int64)
    quality = rng.normal(0.0, _QUALITY_SD, n_v)
    # The feed's own view of each video: what it shows and how its viewers watch it (from a
    # stream of its own: the draws of the rest of the world stay as they were).
    context = rng.spawn(1)[0].normal(0.0, _QUALITY_SD, n_v)
    feed_quality = _LOG_TRANSFER * quality + math.sqrt(1 - _LOG_TRANSFER**2) * context
    pop_key = _POP_QUALITY_CORR * feed_quality / _QUALITY_SD + math.sqrt(
        1 - _POP_QUALITY_CORR**2
    ) * rng.normal(size=n_v)
    pop_rank = np.argsort(np.argsort(-pop_key))
    log_pop = -_ZIPF * np.log(pop_rank / n_v + _ZIPF_HEAD)

    # Small matrix: random users; videos leaning towards the popular ones.
    small_users = np.sort(rng.choice(n_u, size=sizes.small_users, replace=False))
    p_small = np.exp(0.4 * log_pop)
    small_videos = np.sort(
        rng.choice(n_v, size=sizes.small_videos, replace=False, p=p_small / p_small.sum())
    )
    is_small_user = np.zeros(n_u, bool)
    is_small_user[small_users] = True
    is_small_video = np.zeros(n_v, bool)
    is_small_video[small_videos] = True
    feed_user_offset = -_FEED_FATIGUE * np.log(views / np.median(views))
    return _World(
        sizes,
        taste,
        main_topic,
        main_sub,
        video_topics,
        duration_ms,
        quality,
        feed_quality,
        feed_user_offset,
        log_pop,
        user_bias,
        views.astype(np.int64),
        small_users,
        small_videos,
        is_small_user,
        is_small_video,
    )


# --- interactions ------------------------------------------------------------------------------
def _watch(
    w: _World,
    users: np.ndarray,
    videos: np.ndarray,
    rng: np.random.Generator,
    quality: np.ndarray,
    offset: float | np.ndarray = 0.0,
    loop_share: float = _LOOP_SHARE,
    loop_sd: float = _LOOP_SD,
) -> tuple[np.ndarray, np.ndarray]:
    """Play duration (ms) and watch_ratio of views: video length and quality (per video), the
    user, noise; a share of views are skipped early and a share loop the video. Taste plays no
    part. offset: log watch-time offset, one for all views or one per view."""
    n = users.size
    sec = w.duration_ms[videos] / 1000.0
    log_play = (
        math.log(_WATCH_BASE_S)
        + offset
        + _LENGTH_ELASTICITY * (np.log(sec) - math.log(9.6))
        + _QUALITY_PLAY * quality[videos]
        + w.user_bias[users]
        + rng.normal(0.0, _NOISE_SD, n)
    )
    loops = rng.random(n) < loop_share
    log_play[loops] += np.abs(rng.normal(0.0, loop_sd, loops.sum()))
    skip_odds = _SKIP_SHARE / (1 - _SKIP_SHARE) * np.exp(-_SKIP_QUALITY * quality[videos])
    skips = np.flatnonzero(rng.random(n) < skip_odds / (1 + skip_odds))
    skip_ratio = np.exp(rng.normal(math.log(_SKIP_RATIO), _SKIP_SD, skips.size))
    log_play[skips] = np.minimum(log_play[skips], np.log(sec[skips] * skip_ratio))
    play = np.rint(np.exp(log_play) * 1000).astype(np.int64)
    play[rng.random(users.size) < _ZERO_PLAY] = 0
    # A few very short videos played for minutes: watch_ratio above 100.
    short = np.flatnonzero(w.duration_ms[videos] < 3000)
    n_huge = min(short.size, max(3, round(_HUGE_RATIO * users.size)))
    if n_huge:
        pick = rng.choice(short, size=n_huge, replace=False)
        play[pick] = np.rint(w.duration_ms[videos[pick]] * rng.uniform(100, 570, n_huge))
    return play, play / w.duration_ms[videos]


def _event_times(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """UTC unix milliseconds and local day numbers of n events in the collection windows."""
    day = _DAY0 + _WINDOW_DAYS[rng.integers(0, _WINDOW_DAYS.size, n)]
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    local_ms = day.astype(np.int64) * _DAY_MS + hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    return local_ms - _LOCAL_OFFSET_MS, day.astype(np.int32)


def _order_by(user: np.ndarray, ts: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """Row order by user, then time, then original before its duplicate (one int64 key)."""
    key = user.astype(np.int64) << 35 | (ts - (_DAY0 - 1) * _DAY_MS) << 1 | copy
    return np.argsort(key, kind="stable")


def _sample_pairs(w: _World, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Distinct (user, video) pairs of the big matrix, sorted by user. Exposure is personal:
    a feed shows a user videos of the topics it expects them to like."""
    n_u, n_v = w.sizes.users, w.sizes.videos
    eligible = np.where(w.is_small_user, n_v - w.sizes.small_videos, n_v)
    distinct = np.rint(w.views * (1 - _REWATCH_SHARE)).astype(np.int64)
    distinct = np.clip(distinct, 1, np.floor(0.85 * eligible).astype(np.int64))
    users, videos = [], []
    for start in range(0, n_u, _CHUNK_USERS):
        stop = min(n_u, start + _CHUNK_USERS)
        aff = _affinity(w.taste[start:stop], w.video_topics)
        keys = w.log_pop[None, :] + _EXPOSURE_AFFINITY * aff + rng.gumbel(size=aff.shape)
        keys[np.ix_(w.is_small_user[start:stop], w.is_small_video)] = -np.inf
        cut = np.sort(keys, axis=1)[np.arange(stop - start), n_v - distinct[start:stop]]
        r, c = np.nonzero(keys >= cut[:, None])
        users.append((r + start).astype(np.int32))
        videos.append(c.astype(np.int32))
    pu, pv = np.concatenate(users), np.concatenate(videos)

    # Every video is seen at least once in the big matrix, by a user outside the small matrix.
    unseen = np.flatnonzero(np.bincount(pv, minlength=n_v) == 0).astype(np.int32)
    if unseen.size:
        others = np.flatnonzero(~w.is_small_user)
        extra_u = others[rng.integers(0, others.size, unseen.size)].astype(np.int32)
        pu, pv = np.r_[pu, extra_u], np.r_[pv, unseen]
        order = np.argsort(pu, kind="stable")
        pu, pv = pu[order], pv[order]
    return pu, pv


def _big_matrix(w: _World, rng: np.random.Generator) -> pd.DataFrame:
    pu, pv = _sample_pairs(w, rng)
    n_u = w.sizes.users
    per_user = np.bincount(pu, minlength=n_u)
    first = np.r_[0, np.cumsum(per_user)[:-1]]

    # Re-watches: views beyond the distinct pairs go back to a pair the user already has.
    rewatch = np.maximum(w.views - per_user, 0)
    rw_user = np.repeat(np.arange(n_u), rewatch)
    rw_pair = first[rw_user] + (rng.random(rw_user.size) * per_user[rw_user]).astype(np.int64)
    view_pair = np.r_[np.arange(pu.size), rw_pair]
    del rw_user, rw_pair
    u, v = pu[view_pair], pv[view_pair]
    offset = _FEED_EFFECT + w.feed_user_offset[u]
    play, ratio = _watch(w, u, v, rng, w.feed_quality, offset, _FEED_LOOP_SHARE, _FEED_LOOP_SD)
    del offset
    del view_pair
    ts, day = _event_times(u.size, rng)

    # The log's date label drifts from the event's local date in about 0.1% of rows.
    drift = rng.choice(u.size, size=max(2, round(_DATE_DRIFT_SHARE * u.size)), replace=False)
    day[drift] += rng.choice(np.array([-1, 1], np.int32), drift.size)

    # Duplicate log rows: exact copies; a few are filed under another date.
    n_dup = max(2, round(w.sizes.big_rows * _DUP_SHARE))
    dup = rng.choice(u.size, size=n_dup, replace=False)
    dup_day = day[dup].copy()
    moved = rng.choice(n_dup, size=max(2, round(_TWO_DATE_SHARE * n_dup)), replace=False)
    dup_day[moved] += rng.choice(np.array([-1, 1], np.int32), moved.size)

    u, v = np.r_[u, u[dup]], np.r_[v, v[dup]]
    play, ratio = np.r_[play, play[dup]], np.r_[ratio, ratio[dup]]
    ts, day = np.r_[ts, ts[dup]], np.r_[day, dup_day]
    is_copy = np.r_[np.zeros(u.size - n_dup, np.int64), np.ones(n_dup, np.int64)]
    order = _order_by(u, ts, is_copy)
    return pd.DataFrame(
        {
            "user_id": u[order],
            "video_id": v[order],
            "play_duration": play[order],
            "video_duration": w.duration_ms[v[order]],
            "ts": ts[order],
            "day": day[order],
            "watch_ratio": ratio[order],
        }
    )


def _small_matrix(w: _World, rng: np.random.Generator) -> pd.DataFrame:
    su, sv = w.small_users, w.small_videos
    keep = np.ones((su.size, sv.size), bool)  # less the pairs the users blocked
    n_blocked = max(1, round((1 - _SMALL_KEEP) * keep.size))
    keep.flat[rng.choice(keep.size, size=n_blocked, replace=False)] = False
    r, c = np.nonzero(keep)
    u, v = su[r].astype(np.int32), sv[c].astype(np.int32)
    del keep, r, c
    play, ratio = _watch(w, u, v, rng, w.quality)
    ts, day = _event_times(u.size, rng)
    order = _order_by(u, ts, np.zeros(u.size, np.int64))
    untimed = rng.random(u.size) < _SMALL_UNTIMED
    return pd.DataFrame(
        {
            "user_id": u[order],
            "video_id": v[order],
            "play_duration": play[order],
            "video_duration": w.duration_ms[v[order]],
            "ts": ts[order],
            "day": day[order],
            "watch_ratio": ratio[order],
            "untimed": untimed,
        }
    )


_INTERACTION_SQL = """
COPY (
    SELECT user_id, video_id, play_duration, video_duration,
        CASE WHEN NOT {untimed} THEN
            strftime(epoch_ms(ts + {offset}), '%Y-%m-%d %H:%M:%S.%g') END AS "time",
        CASE WHEN NOT {untimed} THEN
            strftime(DATE '1970-01-01' + day, '%Y%m%d') || '{date_suffix}' END AS "date",
        CASE WHEN NOT {untimed} THEN
            (ts // 1000)::VARCHAR || '.' || lpad((ts % 1000)::VARCHAR, 3, '0') END AS "timestamp",
        watch_ratio
    FROM frame
) TO '{path}' (HEADER, DELIMITER ',')
"""


def _copy_csv(frame: pd.DataFrame, sql: str, path: Path) -> None:
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("frame", frame)
        con.execute(sql.replace("{path}", str(path).replace("'", "''")))
    finally:
        con.close()


def _write_interactions(frame: pd.DataFrame, path: Path, *, float_date: bool) -> None:
    sql = _INTERACTION_SQL.format(
        untimed="untimed" if "untimed" in frame.columns else "false",
        offset=_LOCAL_OFFSET_MS,
        date_suffix=".0" if float_date else "",
        path="{path}",
    )
    _copy_csv(frame, sql, path)


# --- small text files --------------------------------------------------------------------------
def _field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    text = str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_rows(path: Path, header: list[str], rows: list[list[object]]) -> None:
    lines = [",".join(header)]
    lines.extend(",".join(_field(x) for x in row) for row in rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")


def _list_text(items) -> str:
    return "[" + ", ".join(str(int(x)) for x in items) + "]"


def _social_network(w: _World, rng: np.random.Generator) -> list[list[object]]:
    n_u = w.sizes.users
    n_rows = min(n_u, max(5, round(_SOCIAL_ROWS * w.sizes.scale)))
    members = np.sort(rng.choice(n_u, size=n_rows, replace=False))
    favourite = np.argmax(w.taste, axis=1) // _SUBTOPICS
    rows = []
    for user in members:
        n_friends = int(rng.choice([1, 2, 3, 4, 6], p=[0.35, 0.3, 0.18, 0.12, 0.05]))
        same = np.flatnonzero(favourite == favourite[user])
        pool = same if rng.random() < 0.6 and same.size > n_friends else np.arange(n_u)
        pool = pool[pool != user]
        friends = rng.choice(pool, size=min(n_friends, pool.size), replace=False)
        rows.append([int(user), _list_text(friends)])
    return rows


def _item_categories(w: _World, rng: np.random.Generator) -> list[list[object]]:
    n_v = w.sizes.videos
    n_tags = rng.choice([1, 2, 3, 4], size=n_v, p=[0.5, 0.33, 0.13, 0.04])
    second = rng.random(n_v) < 0.15
    extra = rng.random((n_v, _TAGS))
    rows = []
    for vid in range(n_v):
        own, other = _topic_tags(int(w.main_topic[vid]))
        tags = [other if second[vid] else own]
        for tag in np.argsort(extra[vid]):
            if len(tags) >= n_tags[vid]:
                break
            if tag not in tags:
                tags.append(int(tag))
        rows.append([vid, _list_text(tags)])
    return rows


def _binned(values: np.ndarray, edges: list[int], labels: list[str]) -> list[str]:
    return [labels[i] for i in np.searchsorted(edges, values, side="left")]


def _user_features(w: _World, rng: np.random.Generator) -> list[list[object]]:
    n_u = w.sizes.users
    act_rank = np.argsort(np.argsort(-w.views)) / n_u
    degree = np.where(
        act_rank < 0.45, "full_active", np.where(act_rank < 0.75, "high_active", "middle_active")
    )
    degree[rng.random(n_u) < 0.03] = "UNKNOWN"
    low = (rng.random(n_u) < 0.02).astype(int)
    streamer = (rng.random(n_u) < 0.12).astype(int)
    author = (rng.random(n_u) < 0.3).astype(int)
    follow = np.floor(np.exp(rng.normal(3.5, 1.4, n_u))).astype(int) * (rng.random(n_u) > 0.05)
    fans = np.floor(np.exp(rng.normal(1.5, 1.8, n_u))).astype(int) * (rng.random(n_u) > 0.2)
    fans = np.minimum(fans, 99_999)
    friends = np.floor(np.exp(rng.normal(1.0, 1.3, n_u))).astype(int) * (rng.random(n_u) > 0.3)
    register = rng.integers(15, 2200, n_u)
    follow_r = _binned(
        follow,
        [0, 9, 49, 99, 149, 249, 499],
        ["0", "(0,10)", "[10,50)", "[50,100)", "[100,150)", "[150,250)", "[250,500)", "500+"],
    )
    fans_r = _binned(
        fans,
        [0, 9, 99, 999, 4999, 9999],
        ["0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)", "[5k,1w)", "[1w,10w)"],
    )
    friends_r = _binned(
        friends,
        [0, 4, 29, 59, 119, 249],
        ["0", "[1,5)", "[5,30)", "[30,60)", "[60,120)", "[120,250)", "250+"],
    )
    register_r = _binned(
        register,
        [30, 60, 90, 180, 365, 730],
        ["15-30", "31-60", "61-90", "91-180", "181-365", "366-730", "730+"],
    )
    sizes = [2, 8, 30, 5, 60, 3, 2, 4, 3, 2, 5, 3, 2, 2, 4, 2, 3, 2]
    onehot = np.stack([rng.integers(0, s, n_u) for s in sizes], axis=1)
    gaps = {4: rng.random(n_u) < 0.02, 12: rng.random(n_u) < 0.01}  # written as floats
    rows = []
    for i in range(n_u):
        feats: list[object] = []
        for j in range(len(sizes)):
            if j in gaps:
                feats.append(float("nan") if gaps[j][i] else float(onehot[i, j]))
            else:
                feats.append(int(onehot[i, j]))
        rows.append(
            [
                i,
                degree[i],
                low[i],
                streamer[i],
                author[i],
                follow[i],
                follow_r[i],
                fans[i],
                fans_r[i],
                friends[i],
                friends_r[i],
                register[i],
                register_r[i],
                *feats,
            ]
        )
    return rows


def _caption(w: _World, vid: int, rng: np.random.Generator) -> list[object]:
    topic = int(w.main_topic[vid])
    name, first_id, seconds, thirds, words = _TOPIC_INFO[topic]
    roll = rng.random(8)
    if roll[0] < 0.6:
        cover = "UNKNOWN"
    else:
        cover = str(rng.choice(words)) + str(rng.choice(_COVER_WORDS))
    parts = [str(x) for x in rng.choice(words, size=int(rng.integers(1, 3)), replace=False)]
    parts += [str(x) for x in rng.choice(_GENERIC_WORDS, size=int(rng.integers(1, 4)))]
    rng.shuffle(parts)
    seps = rng.choice(["", "，", ",", " ", "！", ", "], size=len(parts) - 1)
    caption = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:]))
    if roll[1] < 0.5:
        caption += "".join(rng.choice(_EMOJI, size=int(rng.integers(1, 4))))
    if roll[2] < 0.3:
        caption += f" #{name} #{rng.choice(words)}"
    if roll[3] < 0.05:
        caption = f'他说"{rng.choice(words)}"，{caption}'
    if roll[4] < 0.03:
        caption += "\n" + str(rng.choice(_GENERIC_WORDS))
    if roll[5] < 0.02:
        caption = ""
    topic_tag = f"[{name},{rng.choice(words)}]" if roll[6] < 0.35 else "[]"
    second_id, second_name = seconds[int(w.main_sub[vid]) % _SUBTOPICS]
    third_id, third_name = thirds[int(rng.integers(len(thirds)))]
    if roll[7] < 0.5:
        third_id, third_name = -124, "UNKNOWN"
    if roll[7] < 0.03:
        first_id, name, second_id, second_name = -124, "UNKNOWN", -124, "UNKNOWN"
    return [
        vid,
        cover,
        caption,
        topic_tag,
        first_id,
        name,
        second_id,
        second_name,
        third_id,
        third_name,
    ]


def _captions(w: _World, rng: np.random.Generator) -> list[list[object]]:
    n_v = w.sizes.videos
    rows = [_caption(w, vid, rng) for vid in range(n_v)]
    # A few captions hold a bare carriage return (the reason readers need care).
    for vid in rng.choice(n_v, size=max(2, round(0.001 * n_v)), replace=False):
        rows[vid][2] = f"{rows[vid][2]}\r{rng.choice(_GENERIC_WORDS)}"
    return rows


# --- item daily features -----------------------------------------------------------------------
_DAILY_RATES = [  # counter, share of play_cnt (before a per-video and per-row factor)
    ("like_cnt", 0.03),
    ("click_like_cnt", 0.025),
    ("double_click_cnt", 0.005),
    ("cancel_like_cnt", 0.001),
    ("comment_cnt", 0.004),
    ("direct_comment_cnt", 0.003),
    ("reply_comment_cnt", 0.001),
    ("delete_comment_cnt", 0.0002),
    ("comment_like_cnt", 0.002),
    ("follow_cnt", 0.003),
    ("cancel_follow_cnt", 0.0005),
    ("share_cnt", 0.002),
    ("download_cnt", 0.001),
    ("report_cnt", 0.0001),
    ("reduce_similar_cnt", 0.0008),
    ("collect_cnt", 0.001),
    ("cancel_collect_cnt", 0.0001),
]
_USER_COUNTERS = {
    "like_user_num": "like_cnt",
    "cancel_like_user_num": "cancel_like_cnt",
    "comment_user_num": "comment_cnt",
    "delete_comment_user_num": "delete_comment_cnt",
    "comment_like_user_num": "comment_like_cnt",
    "follow_user_num": "follow_cnt",
    "cancel_follow_user_num": "cancel_follow_cnt",
    "share_user_num": "share_cnt",
    "download_user_num": "download_cnt",
    "report_user_num": "report_cnt",
    "reduce_similar_user_num": "reduce_similar_cnt",
    "collect_user_num": "collect_cnt",
    "cancel_collect_user_num": "cancel_collect_cnt",
}


def _item_daily(w: _World, rng: np.random.Generator) -> pd.DataFrame:
    n_v = w.sizes.videos
    # Alive days: older videos from the first day, newer ones from their upload; some stop early.
    old = rng.random(n_v) < 0.35
    first = np.where(old, 0, rng.integers(0, _SPAN_DAYS, n_v))
    upload = np.where(old, -rng.integers(1, 400, n_v), first)
    span = _SPAN_DAYS - first
    alive = np.maximum(1, np.rint(span * rng.uniform(0.5, 1.0, n_v))).astype(np.int64)
    alive = np.minimum(alive, span)
    vid = np.repeat(np.arange(n_v), alive)
    offset = np.arange(vid.size) - np.repeat(np.cumsum(alive) - alive, alive)
    day = first[vid] + offset
    n = vid.size

    def noise(sd: float) -> np.ndarray:
        return np.exp(rng.normal(0.0, sd, n))

    age = (day - upload[vid]).astype(float)
    show = np.floor(np.exp(w.log_pop[vid] + 9.5) * noise(0.6) / np.sqrt(1.0 + age / 7.0))
    play_rate = 1.0 / (1.0 + np.exp(-(1.2 + w.feed_quality[vid])))
    play = np.minimum(show, np.floor(show * play_rate * noise(0.05)))
    sec = w.duration_ms[vid] / 1000.0
    per_play_ms = np.minimum(_WATCH_BASE_S, sec * 3) * 1000 * np.exp(w.feed_quality[vid])
    complete_rate = np.clip(_WATCH_BASE_S / sec * np.exp(w.feed_quality[vid]) * 0.5, 0.02, 0.98)
    cols: dict[str, np.ndarray] = {}
    cols["show_cnt"] = show
    cols["show_user_num"] = np.floor(show * 0.93)
    cols["play_cnt"] = play
    cols["play_user_num"] = np.floor(play * 0.9)
    cols["play_duration"] = np.floor(play * per_play_ms * noise(0.1))
    cols["complete_play_cnt"] = np.minimum(play, np.floor(play * complete_rate * noise(0.1)))
    cols["complete_play_user_num"] = np.floor(cols["complete_play_cnt"] * 0.88)
    cols["valid_play_cnt"] = np.minimum(play, np.floor(play * 0.7 * noise(0.1)))
    cols["valid_play_user_num"] = np.floor(cols["valid_play_cnt"] * 0.9)
    cols["long_time_play_cnt"] = np.minimum(play, np.floor(play * 0.3 * noise(0.2)))
    cols["long_time_play_user_num"] = np.floor(cols["long_time_play_cnt"] * 0.9)
    cols["short_time_play_cnt"] = np.minimum(play, np.floor(play * 0.25 * noise(0.2)))
    cols["short_time_play_user_num"] = np.floor(cols["short_time_play_cnt"] * 0.92)
    progress = np.clip(complete_rate * noise(0.1), 0.0, 1.0)
    cols["play_progress"] = np.round(progress, 4)
    stay = np.floor(play * 40.0 * noise(0.5))
    stay[rng.random(n) < 0.003] = np.nan  # a few empty cells
    cols["comment_stay_duration"] = stay
    engagement = np.exp(w.feed_quality[vid] * 2.0)
    for name, rate in _DAILY_RATES:
        cols[name] = np.floor(play * rate * engagement * noise(0.7))
    for name, source in _USER_COUNTERS.items():
        cols[name] = np.floor(cols[source] * 0.95)

    author = rng.integers(0, max(10, n_v // 3), n_v)
    video_type = np.where(rng.random(n_v) < 0.03, "AD", "NORMAL")
    upload_dt = (np.datetime64("1970-01-01") + (_DAY0 + upload).astype("timedelta64[D]")).astype(
        str
    )
    upload_type = rng.choice(_UPLOAD_TYPES, size=n_v, p=_UPLOAD_TYPE_WEIGHTS)
    visible = rng.choice(["public", "friend", "private"], size=n_v, p=[0.97, 0.02, 0.01])
    size_kind = rng.choice(3, size=n_v, p=[0.7, 0.2, 0.1])
    width = np.array([720, 1080, 576])[size_kind]
    height = np.array([1280, 1920, 1024])[size_kind]
    horizontal = rng.random(n_v) < 0.1
    width, height = np.where(horizontal, height, width), np.where(horizontal, width, height)
    music = rng.integers(1, max(50, n_v * 2), n_v).astype(float)
    music[rng.random(n_v) < 0.01] = np.nan  # a few empty cells
    tag_id = np.array([_topic_tags(int(t))[0] for t in w.main_topic])
    tag_name = np.array(_TAG_NAMES, dtype=object)[tag_id]

    data = {
        "video_id": vid.astype(np.int32),
        "date": (_DAY0 + day).astype(np.int32),
        "author_id": author[vid],
        "video_type": video_type[vid],
        "upload_dt": upload_dt[vid],
        "upload_type": upload_type[vid],
        "visible_status": visible[vid],
        "video_duration": w.duration_ms[vid].astype(float),
        "video_width": width[vid],
        "video_height": height[vid],
        "music_id": music[vid],
        "video_tag_id": tag_id[vid],
        "video_tag_name": tag_name[vid],
    }
    # Counters are integers; the two columns with fractions or empty cells stay floats.
    floats = ("play_progress", "comment_stay_duration")
    for name, values in cols.items():
        data[name] = values if name in floats else values.astype(np.int64)
    return pd.DataFrame(data)[list(SOURCES["item_daily_features"][1])]


def _write_item_daily(frame: pd.DataFrame, path: Path) -> None:
    columns = list(SOURCES["item_daily_features"][1])
    select = ", ".join(
        "strftime(DATE '1970-01-01' + date, '%Y%m%d') AS date" if c == "date" else f'"{c}"'
        for c in columns
    )
    _copy_csv(
        frame, f"COPY (SELECT {select} FROM frame) TO '{{path}}' (HEADER, DELIMITER ',')", path
    )


# --- entry point -------------------------------------------------------------------------------
def generate(
    out_dir: Path,
    scale: float = 0.1,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
    full_catalogue: bool = False,
) -> dict[str, int]:
    """Write the seven KuaiRec CSV files of a synthetic data set into out_dir.

    full_catalogue: scale shrinks users only (rows grow in proportion to scale; the bench).
    Same (scale, seed, full_catalogue) gives byte-identical files. Returns the row count of
    each file name.
    """
    sizes = _sizes(scale, full_catalogue)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {source: file for source, (file, _) in SOURCES.items()}
    headers = {source: list(cols) for source, (_, cols) in SOURCES.items()}
    streams = np.random.SeedSequence([seed, 20_200_705]).spawn(8)
    rng = [np.random.default_rng(s) for s in streams]
    world = _make_world(sizes, rng[0])
    counts: dict[str, int] = {}

    def done(source: str, n: int) -> None:
        counts[names[source]] = n
        if progress is not None:
            progress(f"{names[source]}: {n:,} rows")

    big = _big_matrix(world, rng[1])
    _write_interactions(big, out_dir / names["big_matrix"], float_date=False)
    done("big_matrix", len(big))
    del big
    small = _small_matrix(world, rng[2])
    _write_interactions(small, out_dir / names["small_matrix"], float_date=True)
    done("small_matrix", len(small))
    del small
    for source, make, r in (
        ("social_network", _social_network, rng[3]),
        ("item_categories", _item_categories, rng[4]),
        ("user_features", _user_features, rng[5]),
        ("caption_category", _captions, rng[7]),
    ):
        rows = make(world, r)
        _write_rows(out_dir / names[source], headers[source], rows)
        done(source, len(rows))
    daily = _item_daily(world, rng[6])
    _write_item_daily(daily, out_dir / names["item_daily_features"])
    done("item_daily_features", len(daily))
    return counts

"""``report``: one self-contained HTML page about a built database, read from the database alone.

Sections (SECTIONS, in order): the data and its row accounting, the leaderboard (with bootstrap
intervals when ``eval_metrics_ci`` exists), paired comparisons against the best model
(``eval_paired``), accuracy against the popularity of what is recommended, coverage and
diversity (``eval_beyond_accuracy``), the exposure study (``eval_exposure_study``, written by
``exposure-study``) and its temporal split, and results per user segment
(``eval_segment_metrics``). A relation that is missing gives a short note in its section, never
an error. Plots are matplotlib figures (Agg backend) embedded as base64 PNG images, so the file
needs nothing else to be read.

Size: over 1,000 lines: one function per section of the page, each reading its own relation,
with the figure helpers they share; the first candidate to become a package (report/).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import __version__, validate
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)

SECTIONS = (
    ("data", "Data"),
    ("profile", "Dataset profile"),
    ("leaderboard", "Leaderboard"),
    ("paired", "Paired comparisons against the best model"),
    ("popularity", "Accuracy and popularity"),
    ("beyond", "Coverage and diversity"),
    ("exposure", "Exposure study: sparse test sets against the fully observed matrix"),
    ("temporal", "Temporal split against the fully observed matrix"),
    ("segments", "Results per user segment"),
)
REQUIRED = ("build_info", "eval_metrics", "eval_rankings", "eval_ground_truth")
LEADERBOARD_METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")
STRATEGY_TITLES = {
    "uniform": "uniform exposure",
    "positivity": "positivity-oriented exposure",
    "popularity": "popularity-oriented exposure",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: #1d2330; background: #fff; margin: 0; line-height: 1.45; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin: 2em 0 0.5em; padding-bottom: 0.2em;
     border-bottom: 2px solid #d8dee9; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em; }
p, li { max-width: 860px; }
nav ol { columns: 2; padding-left: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e9f0; text-align: left;
         vertical-align: top; }
th { background: #eef1f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f8f9fb; }
.note { background: #fff8e1; border-left: 4px solid #f0b429; padding: 8px 12px; }
.leftout { background: #fff8e1; border-left: 4px solid #f0b429; padding: 8px 12px; }
.warn { background: #fdecea; border-left: 4px solid #d64545; padding: 8px 12px; }
.muted { color: #5c6677; font-size: 0.9em; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0 1em; }
.ci { color: #5c6677; font-size: 0.85em; }
code { background: #eef1f6; padding: 1px 4px; border-radius: 3px; }
"""


@dataclass
class ReportResult:
    out: Path
    n_images: int
    notes: list[str]  # sections that had to say something is missing


# ---------------------------------------------------------------------------------------------
# Small HTML helpers


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


class Html(str):
    """A table cell that is already HTML (right-aligned, not escaped)."""


def table(headers: list[str], rows: list[list[Any]], digits: int = 4) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, Html):
                cells.append(f'<td class="num">{value}</td>')
                continue
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{_esc(_fmt(value, digits))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{text}</p>'


def ci_cell(value: Any, low: Any, high: Any, digits: int = 4) -> Any:
    """A value with its interval in brackets, or the bare value when it has none."""
    if value is None:
        return None
    if low is None or high is None:
        return value
    ci = f"[{low:.{digits - 1}f}, {high:.{digits - 1}f}]"
    return Html(f'{value:.{digits}f} <span class="ci">{ci}</span>')


def p_cell(p_value: Any, n_permutations: Any) -> Any:
    """A permutation p-value; at the test's floor 1 / (1 + n) it is shown as '< floor'."""
    if p_value is None:
        return None
    if n_permutations and p_value <= 1 / (1 + n_permutations) + 1e-12:
        return Html(f"&lt; {1 / (1 + n_permutations):.3f}")
    return Html(f"{p_value:.3f}")


def spread_labels(ax, points: list[tuple[float, float, str, Any]], min_gap: float = 0.06) -> None:
    """Label points without overlap: labels sit right of their points, moved up or down (in
    axes fractions) until they are min_gap apart, with a thin line to the point when moved."""
    if not points:
        return
    to_axes = ax.transData + ax.transAxes.inverted()
    placed = []
    for x, y, text, color in points:
        ax_x, ax_y = to_axes.transform((x, y))
        placed.append([ax_y, ax_x, ax_y, text, color])
    placed.sort(key=lambda p: p[0])
    for i in range(1, len(placed)):
        placed[i][0] = max(placed[i][0], placed[i - 1][0] + min_gap)
    overflow = placed[-1][0] - 0.97
    if overflow > 0:
        for p in placed:
            p[0] -= overflow
        for i in range(len(placed) - 2, -1, -1):
            placed[i][0] = min(placed[i][0], placed[i + 1][0] - min_gap)
    for label_y, ax_x, ax_y, text, color in placed:
        ax.annotate(
            text,
            xy=(ax_x, ax_y),
            xycoords="axes fraction",
            xytext=(ax_x + 0.03, label_y),
            textcoords="axes fraction",
            fontsize=9,
            va="center",
            color="#1d2330",
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.7, "shrinkA": 0, "shrinkB": 4}
            if abs(label_y - ax_y) > 0.01
            else None,
        )


def label_line_ends(ax, ends: list[tuple[float, float, str, Any]], min_gap: float = 0.055):
    """Name each curve at its right end, spread apart vertically like spread_labels."""
    if not ends:
        return
    to_axes = ax.transData + ax.transAxes.inverted()
    placed = sorted(
        ([to_axes.transform((x, y))[1], text, color] for x, y, text, color in ends),
        key=lambda p: p[0],
    )
    for i in range(1, len(placed)):
        placed[i][0] = max(placed[i][0], placed[i - 1][0] + min_gap)
    overflow = placed[-1][0] - 0.98
    if overflow > 0:
        for p in placed:
            p[0] -= overflow
    for label_y, text, color in placed:
        ax.annotate(
            text,
            xy=(1.01, label_y),
            xycoords="axes fraction",
            fontsize=8,
            va="center",
            color=color,
            fontweight="bold",
        )


def _left_out_models(reader: Reader) -> list[tuple[str, str]]:
    if not reader.has("eval_exposure_models"):
        return []
    return reader.rows(
        "select model, coalesce(note, 'left out') from eval_exposure_models "
        "where not in_study order by model"
    )


class Figures:
    """matplotlib figures -> <img> tags with base64 PNG data."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt
        self.count = 0

    def new(self, ncols: int = 1, nrows: int = 1, width: float = 10.0, height: float = 4.0):
        fig, axes = self.plt.subplots(
            nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained"
        )
        return fig, axes

    def img(self, fig, alt: str) -> str:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        self.plt.close(fig)
        self.count += 1
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


# ---------------------------------------------------------------------------------------------
# Reading


class Reader:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        rows = con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database()"
        ).fetchall()
        self.relations = {r[0] for r in rows}

    def has(self, name: str) -> bool:
        return name in self.relations

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def one(self, sql: str, params: list | None = None):
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None


def _model_order(reader: Reader, k: int) -> list[str]:
    rows = reader.rows(
        "select model, value from eval_metrics where split = 'test' and k = ? "
        "and metric = 'ndcg' order by value desc, model",
        [k],
    )
    models = [r[0] for r in rows]
    others = reader.rows("select distinct model from eval_rankings order by model")
    return models + [r[0] for r in others if r[0] not in models]


def _colors(models: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


# ---------------------------------------------------------------------------------------------
# Sections


def section_data(reader: Reader, ctx: dict) -> str:
    info = ctx["info"]
    parts = []
    if info.get("data_kind") == "synthetic_demo":
        parts.append(
            note(
                "Built on the <b>synthetic demo dataset</b>: its numbers say nothing about "
                "KuaiRec. See the README to build on the real data.",
                "warn",
            )
        )
    facts = [
        ("data", info.get("data_kind", "?")),
        ("location", info.get("data_location", "?")),
        (
            "label",
            f"{info.get('param.label', '?')} (quantile {info.get('param.label_quantile')}"
            f", threshold {info.get('param.label_threshold')})",
        ),
        ("models", info.get("models", "?").replace(",", ", ")),
        ("built", f"{info.get('finished_at', '?')} in {info.get('build_seconds', '?')} s"),
        *(
            [("updated", f"{info['updated_at']} in {info.get('update_seconds', '?')} s")]
            if "updated_at" in info
            else []
        ),
        (
            "versions",
            f"kuairec_db {info.get('kuairec_db_version', '?')}, "
            f"DuckDB {info.get('duckdb_version', '?')}",
        ),
    ]
    counts = reader.rows(
        """
        select count(distinct user_id), count(distinct video_id), count(*),
               avg(is_relevant::integer),
               count(distinct user_id) filter (where split = 'test')
        from eval_ground_truth
        """
    )[0]
    facts.append(
        (
            "small matrix",
            f"{counts[0]:,} users x {counts[1]:,} videos, {counts[2]:,} labelled pairs, "
            f"{counts[3]:.1%} relevant; {counts[4]:,} test users",
        )
    )
    if reader.has("int_train_events"):
        train = reader.rows(
            "select count(*), count(distinct user_id), count(distinct video_id), "
            "min(event_at)::date, max(event_at)::date from int_train_events"
        )[0]
        facts.append(
            (
                "training (big matrix)",
                f"{train[0]:,} views by {train[1]:,} users of {train[2]:,} videos, "
                f"{train[3]} .. {train[4]}",
            )
        )
    parts.append(table(["fact", "value"], [list(f) for f in facts]))
    if reader.has("data_quality"):
        rows = reader.rows(
            "select source, step, role, n_rows, detail from data_quality "
            "order by source, case role when 'read' then 0 when 'drop' then 1 "
            "when 'kept' then 2 else 3 end, step"
        )
        parts.append("<h3>Row accounting (data_quality)</h3>")
        parts.append(
            '<p class="muted">For every file, read = kept + the drop rows; note rows are '
            "counts worth knowing.</p>"
        )
        parts.append(table(["source", "step", "role", "rows", "detail"], [list(r) for r in rows]))
    else:
        parts.append(note("This database has no <code>data_quality</code> view."))
    return "".join(parts)


def section_profile(reader: Reader) -> str:
    """data_profile: the shape of both matrices side by side, then the structure statistics."""
    from kuairec_db.profile import format_value

    if not reader.has("data_profile"):
        return note(
            "This database has no <code>data_profile</code> view (built by an older version); "
            "rebuild it, or run <code>python -m kuairec_db profile</code> on the data folder."
        )
    rows = reader.rows("select section, statistic, scope, value, comment from data_profile")
    shape: dict[str, dict[str, Any]] = {}
    structure = []
    for section, statistic, scope, value, comment in rows:
        if section == "shape":
            shape.setdefault(statistic, {"comment": comment})[scope] = value
        else:
            structure.append([statistic, Html(_esc(format_value(value, statistic))), comment])
    scopes = [s for s in ("big_matrix", "small_matrix") if any(s in v for v in shape.values())]
    parts = [
        '<p class="muted">How the data looks (<code>data_profile</code>; formulas in '
        "<code>sql/public/data_profile.sql</code>). Compare two datasets with "
        "<code>python -m kuairec_db profile A B</code>.</p>",
        table(
            ["statistic", *scopes, "how"],
            [
                [stat, *(Html(_esc(format_value(v.get(s), stat))) for s in scopes), v["comment"]]
                for stat, v in shape.items()
            ],
        ),
        "<h3>Structure of the fully observed matrix (83 md5-chosen videos a user)</h3>",
        '<p class="muted">y = ln(1 + min(watch_ratio, 50)). Which part of y the video, the '
        "user, the user's taste by category and a factor model explain, and two rankings "
        "that need no model.</p>",
        table(["statistic", "value", "how"], structure),
    ]
    return "".join(parts)


def section_leaderboard(reader: Reader, ctx: dict, figs: Figures) -> str:
    k, models = ctx["k"], ctx["models"]
    values = {
        (m, metric): (v, n)
        for m, metric, v, n in reader.rows(
            "select model, metric, value, n_users from eval_metrics where split = 'test' and k = ?",
            [k],
        )
    }
    intervals: dict[tuple[str, str], tuple[float, float]] = {}
    if reader.has("eval_metrics_ci"):
        for m, metric, lo, hi in reader.rows(
            "select model, metric, ci_low, ci_high from eval_metrics_ci "
            "where split = 'test' and k = ?",
            [k],
        ):
            intervals[(m, metric)] = (lo, hi)
    metrics = [m for m in LEADERBOARD_METRICS if any((x, m) in values for x in models)]
    n_users = max((n for _, n in values.values()), default=0)
    brackets = (
        " Brackets: 95% bootstrap interval over users (eval_metrics_ci)." if intervals else ""
    )
    parts = [
        f"<p>Test users ({n_users:,} with a relevant video), top {k} of each user's fully "
        f"observed candidates, binary relevance; models in order of NDCG@{k}.{brackets}</p>"
    ]
    rows = []
    for m in models:
        row: list[Any] = [m]
        for metric in metrics:
            v = values.get((m, metric), (None, 0))[0]
            if (m, metric) in intervals and v is not None:
                lo, hi = intervals[(m, metric)]
                row.append(Html(f'{v:.4f} <span class="ci">[{lo:.3f}, {hi:.3f}]</span>'))
            else:
                row.append(v)
        rows.append(row)
    parts.append(table(["model"] + [f"{metric}@{k}" for metric in metrics], rows))
    if not intervals:
        parts.append(note("This database has no <code>eval_metrics_ci</code> view: no intervals."))
    fig, axes = figs.new(ncols=2, width=10.5, height=0.45 * len(models) + 1.4)
    for ax, metric in zip(axes[0], ("ndcg", "recall")):
        shown = [m for m in models if (m, metric) in values][::-1]
        vals = [values[(m, metric)][0] for m in shown]
        ax.barh(shown, vals, color=[ctx["colors"][m] for m in shown])
        if intervals:
            lo = [
                vals[i] - intervals.get((m, metric), (vals[i], 0))[0] for i, m in enumerate(shown)
            ]
            hi = [
                intervals.get((m, metric), (0, vals[i]))[1] - vals[i] for i, m in enumerate(shown)
            ]
            ax.errorbar(vals, shown, xerr=[lo, hi], fmt="none", ecolor="#222", capsize=3)
        ax.set_xlabel(f"{metric}@{k} (test users)")
        ax.grid(axis="x", alpha=0.3)
    parts.append(figs.img(fig, f"NDCG@{k} and recall@{k} per model"))
    return "".join(parts)


def section_paired(reader: Reader, ctx: dict) -> str:
    if not reader.has("eval_paired"):
        return note("This database has no <code>eval_paired</code> view: no paired comparisons.")
    k, best = ctx["k"], ctx["models"][0]
    columns = {
        r[0]
        for r in reader.rows(
            "select column_name from duckdb_columns() where table_name = 'eval_paired'"
        )
    }
    holm = "p_value_holm" if "p_value_holm" in columns else "null"
    n_perm = "n_permutations" if "n_permutations" in columns else "1000"
    rows = reader.rows(
        f"""
        select model_b, metric, mean_diff, ci_low, ci_high, win_rate, tie_rate, p_value,
               {holm}, {n_perm}, n_users
        from eval_paired
        where split = 'test' and k = ? and model_a = ? and model_b <> model_a
          and metric in ('ndcg', 'recall')
        order by metric, mean_diff
        """,
        [k, best],
    )
    if not rows:
        return note(f"<code>eval_paired</code> has no rows for {_esc(best)} at k = {k}.")
    n_permutations = max(r[9] for r in rows)
    n_models = len(ctx["models"])
    text = (
        f"<p>The best model by NDCG@{k}, <b>{_esc(best)}</b>, against each other model on the "
        f"same {rows[0][10]:,} test users: mean difference (best minus other) with its 95% "
        "bootstrap interval (1,000 Poisson resamples of the users), the share of users where "
        "the best model wins or ties, and the two-sided sign-flip permutation p-value "
        f"({n_permutations:,} random sign vectors, so the smallest possible p-value is 1 / "
        f"{n_permutations + 1:,}, shown as &lt; {1 / (n_permutations + 1):.3f}). "
        f"<b>Holm p</b> adjusts for multiple testing over the family of all "
        f"{n_models * (n_models - 1) // 2} pairs of the {n_models} models (per metric, k and "
        "split, as in <code>eval_paired.p_value_holm</code>): reject where it is at most 0.05 "
        "and the chance of any false difference in the family stays at most 5%.</p>"
    )
    return text + table(
        [
            "other model",
            "metric",
            "mean diff [95% CI]",
            "win rate",
            "tie rate",
            "p-value",
            "Holm p",
            "users",
        ],
        [
            [
                r[0],
                r[1],
                ci_cell(r[2], r[3], r[4]),
                r[5],
                r[6],
                p_cell(r[7], r[9]),
                p_cell(r[8], r[9]),
                r[10],
            ]
            for r in rows
        ],
    )


def section_popularity(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not (reader.has("eval_intervals") and reader.has("feat_video_popularity")):
        return note("No <code>eval_intervals</code> here: popularity of the lists is unknown.")
    k = ctx["k"]
    rows = reader.rows(
        """
        select p.model, p.value, p.ci_low, p.ci_high, m.value, m.ci_low, m.ci_high, p.n_users
        from eval_intervals as p
        inner join eval_intervals as m
            on m.model = p.model and m.k = p.k and m.relation = 'eval_metrics'
            and m.split = 'test' and m.metric = 'ndcg'
        where p.relation = 'eval_beyond_accuracy' and p.segment = 'eval_rankings'
          and p.split = 'test' and p.metric = 'popularity_percentile' and p.k = ?
        """,
        [k],
    )
    if not rows:
        return note(f"No popularity of the lists at k = {k}.")
    base = reader.one(
        """
        select avg(p.popularity_percentile)
        from eval_ground_truth as g
        left join feat_video_popularity as p on g.video_id = p.video_id
        where g.split = 'test'
        """
    )
    order = {m: i for i, m in enumerate(ctx["models"])}
    rows.sort(key=lambda r: order.get(r[0], 99))
    text = (
        f"<p>Mean popularity percentile (training users who viewed the video, 1 = most "
        f"viewed) of the top {k} a model gives each of the {rows[0][7]:,} test users, against "
        f"its NDCG@{k} on the same users; error bars are 95% bootstrap intervals over those "
        "users (<code>eval_intervals</code>). A model up and to the right wins by recommending "
        f"what is popular; the dashed line is the candidates' mean ({base:.3f}).</p>"
    )
    fig, axes = figs.new(width=9.0, height=5.2)
    ax = axes[0][0]
    for model, pop, pop_lo, pop_hi, ndcg, lo, hi, _ in rows:
        color = ctx["colors"].get(model, "#555")
        ax.errorbar(
            pop,
            ndcg,
            xerr=[[pop - pop_lo], [pop_hi - pop]],
            yerr=[[ndcg - lo], [hi - ndcg]],
            fmt="o",
            markersize=7,
            color=color,
            ecolor=color,
            elinewidth=1,
            capsize=3,
            zorder=3,
        )
    ax.axvline(base, linestyle="--", color="#888", linewidth=1)
    xs = [v for r in rows for v in (r[2], r[3], base)]
    ys = [v for r in rows for v in (r[5], r[6])]
    x_pad = (max(xs) - min(xs)) * 0.08 or 0.05
    ax.set_xlim(min(xs) - x_pad, max(xs) + 3 * x_pad)  # room for the labels on the right
    y_pad = (max(ys) - min(ys)) * 0.08 or 0.05
    ax.set_ylim(min(ys) - y_pad, max(ys) + y_pad)
    ax.set_xlabel(f"mean popularity percentile of the top {k} (test users)")
    ax.set_ylabel(f"NDCG@{k} (test users)")
    ax.grid(alpha=0.3)
    fig.canvas.draw()
    spread_labels(ax, [(r[1], r[4], r[0], ctx["colors"].get(r[0], "#555")) for r in rows])
    return (
        text
        + figs.img(fig, f"NDCG@{k} against the popularity of the recommended videos")
        + table(
            ["model", "mean popularity percentile [95% CI]", f"ndcg@{k} [95% CI]", "users"],
            [[r[0], ci_cell(r[1], r[2], r[3]), ci_cell(r[4], r[5], r[6]), r[7]] for r in rows],
        )
    )


def section_beyond(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_beyond_accuracy"):
        return note(
            "This database has no <code>eval_beyond_accuracy</code> view: no coverage or "
            "diversity measures."
        )
    k = ctx["k"]
    metrics = ("coverage", "gini", "novelty_bits", "n_categories", "duration_ratio")
    has_ci = "ci_low" in {
        r[0]
        for r in reader.rows(
            "select column_name from duckdb_columns() where table_name = 'eval_beyond_accuracy'"
        )
    }
    select_ci = "ci_low, ci_high" if has_ci else "null, null"
    data = {
        (s, m, metric): (v, lo, hi, n)
        for s, m, metric, v, lo, hi, n in reader.rows(
            f"select source, model, metric, value, {select_ci}, n_users "
            "from eval_beyond_accuracy where k = ?",
            [k],
        )
    }
    if not data:
        return note(f"<code>eval_beyond_accuracy</code> has no rows at k = {k}.")
    parts = [
        f"<p>What the top {k} lists look like, whatever the labels say: <b>coverage</b> = share "
        "of the catalogue shown to anyone, <b>gini</b> of how often each video is shown (0 = "
        "evenly), <b>novelty</b> in bits (higher = less popular videos), distinct first-level "
        "<b>categories</b> per list, and mean <b>duration</b> against the catalogue's (below 1 = "
        "shorter videos). Source <i>recommendations</i>: every big-matrix user over the whole "
        "catalogue; <i>eval_rankings</i>: small-matrix users among their candidates. Brackets: "
        "95% bootstrap intervals over users for the means over users (novelty, categories, "
        "duration); coverage and gini describe all lists together, not a mean over users, and "
        "have none.</p>"
    ]
    sources = [s for s in ("recommendations", "eval_rankings") if any(key[0] == s for key in data)]
    for source in sources:
        n_users = max(v[3] for key, v in data.items() if key[0] == source)
        parts.append(f"<h3>{_esc(source)} ({n_users:,} users' lists)</h3>")
        rows = [
            [m]
            + [
                ci_cell(*data[(source, m, metric)][:3], digits=3)
                if (source, m, metric) in data
                else None
                for metric in metrics
            ]
            for m in ctx["models"]
            if any((source, m, metric) in data for metric in metrics)
        ]
        parts.append(table(["model", *metrics], rows, digits=3))
    fig, axes = figs.new(ncols=2, width=10.5, height=0.45 * len(ctx["models"]) + 1.6)
    source = sources[0]
    for ax, metric in zip(axes[0], ("coverage", "gini")):
        shown = [m for m in ctx["models"] if (source, m, metric) in data][::-1]
        ax.barh(
            shown,
            [data[(source, m, metric)][0] for m in shown],
            color=[ctx["colors"][m] for m in shown],
        )
        ax.set_xlabel(f"{metric} of the top {k} ({source})")
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "no error bars: coverage and gini are one number over all lists, not a mean over users",
        fontsize=9,
        color="#5c6677",
    )
    parts.append(figs.img(fig, f"coverage and gini of the top {k}"))
    return "".join(parts)


def _exposure_info(reader: Reader) -> dict[str, str]:
    if not reader.has("eval_exposure_info"):
        return {}
    return dict(reader.rows("select key, value from eval_exposure_info"))


def section_exposure(reader: Reader, ctx: dict, figs: Figures) -> str:
    command = f"python -m kuairec_db exposure-study --db {_esc(ctx['db'])}"
    if not reader.has("eval_exposure_study"):
        return note(
            "The exposure study has not been run on this database. Run it with "
            f"<code>{command}</code> (then this report again)."
        )
    info = _exposure_info(reader)
    parts = []
    if info.get("build_finished_at") and info["build_finished_at"] != ctx["info"].get(
        "finished_at"
    ):
        parts.append(
            note(
                "These results were computed on an earlier build of this database (built "
                f"{_esc(info['build_finished_at'])}); run <code>{command}</code> again.",
                "warn",
            )
        )
    columns = {
        r[0]
        for r in reader.rows(
            "select column_name from duckdb_columns() where table_name = 'eval_exposure_study'"
        )
    }
    if "n_repeats" not in columns:
        return "".join(parts) + note(
            "This exposure study was written by an older version (one seed, no intervals); "
            f"run <code>{command}</code> again."
        )
    ks = [r[0] for r in reader.rows("select distinct k from eval_exposure_study order by k")]
    k = ctx["k"] if ctx["k"] in ks else ks[0]
    rows = reader.rows(
        "select strategy, density, model, metric, value, ci_low, ci_high, full_value, "
        "full_ci_low, full_ci_high, kendall_tau, tau_ci_low, tau_ci_high, top_model_changed, "
        "n_repeats, n_users from eval_exposure_study where k = ?",
        [k],
    )
    strategies = [s for s in STRATEGY_TITLES if any(r[0] == s for r in rows)]
    models = [m for m in ctx["models"] if any(r[2] == m for r in rows)]
    left_out = _left_out_models(reader)
    n_repeats = max(r[14] for r in rows)
    seeds = info.get("seeds", info.get("seed", "?")).replace(",", ", ")
    interval = (
        f"Bands and bars: 95% t-intervals of the mean over the {n_repeats} samples"
        if n_repeats > 1
        else "One sample per set (--repeats 1): no interval over samples"
    )
    parts.append(
        "<p>The KuaiRec paper's experiment: sparse test sets are sampled from the fully observed "
        f"pairs of the {_esc(info.get('split', 'test'))} users at several densities, "
        "under three exposure strategies (uniform; positivity-oriented: a relevant pair is "
        f"{_esc(info.get('positivity_weight', '?'))} times as likely to be exposed; "
        "popularity-oriented: exposure grows with the video's training users), "
        f"<b>{n_repeats} times</b> each (seeds {_esc(seeds)}). Each model ranks a user's sampled "
        f"videos in the order of its full ranking. First figure: NDCG@{k} on the sparse sets "
        "(mean over the samples); the stars at density 1 are the fully observed values with "
        "their 95% bootstrap intervals over users. Second figure: Kendall's tau between the "
        "models' order on a sparse set and on the full matrix (1 = the same order). "
        f"{interval}.</p>"
    )
    if left_out:
        parts.append(
            note(
                "Not in the study: "
                + "; ".join(f"<b>{_esc(m)}</b> ({_esc(why)})" for m, why in left_out)
                + ". The figures say so too.",
                "leftout",
            )
        )
    left_out_line = (
        "not in the study: " + ", ".join(m for m, _ in left_out) + " (see the note above)"
        if left_out
        else ""
    )
    if strategies:
        fig, axes = figs.new(ncols=len(strategies), width=4.2 * len(strategies) + 1.8, height=5.4)
        ndcg = [r for r in rows if r[3] == "ndcg"]
        lows = [v for r in ndcg for v in (r[5], r[8]) if v is not None]
        highs = [v for r in ndcg for v in (r[6], r[9]) if v is not None]
        pad = (max(highs) - min(lows)) * 0.05 if lows else 0.05
        for col, strategy in enumerate(strategies):
            ax = axes[0][col]
            ends = []
            for model in models:
                color = ctx["colors"][model]
                pts = sorted(
                    (r[1], r[4], r[5], r[6]) for r in ndcg if r[0] == strategy and r[2] == model
                )
                full = next((r for r in ndcg if r[2] == model), None)
                if pts:
                    xs, ys, lo, hi = zip(*pts)
                    ax.plot(xs, ys, marker="o", markersize=4, color=color, label=model)
                    if None not in lo:
                        ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
                    ends.append((1.0, full[7] if full else ys[-1], model, color))
                if full is not None and full[7] is not None:
                    ax.errorbar(
                        [1.0],
                        [full[7]],
                        yerr=[[full[7] - (full[8] or full[7])], [(full[9] or full[7]) - full[7]]],
                        fmt="*",
                        markersize=10,
                        color=color,
                        capsize=3,
                    )
            ax.set_title(STRATEGY_TITLES[strategy])
            ax.set_xlabel("density of the test set")
            ax.set_xlim(0, 1.05)
            if lows:
                ax.set_ylim(min(lows) - pad, max(highs) + pad)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(f"NDCG@{k}")
            if col == len(strategies) - 1:
                fig.canvas.draw()
                label_line_ends(ax, ends)
        if left_out_line:
            fig.suptitle(left_out_line, fontsize=9, color="#a33")
        parts.append(figs.img(fig, f"NDCG@{k} against test-set density per strategy"))

        fig, axes = figs.new(ncols=len(strategies), width=4.2 * len(strategies) + 1.8, height=3.9)
        tau_rows = {
            (r[0], r[1], r[3]): (r[10], r[11], r[12])
            for r in rows
            if r[10] is not None and r[3] in ("ndcg", "precision", "recall")
        }
        tau_values = [v for t in tau_rows.values() for v in t if v is not None]
        floor = min(tau_values) if tau_values else 0.0
        for col, strategy in enumerate(strategies):
            ax = axes[0][col]
            for metric, style, color in (
                ("ndcg", "-o", "#1f5fa8"),
                ("precision", "--s", "#c0392b"),
                ("recall", ":^", "#2e8b57"),
            ):
                pts = sorted(
                    (d, *t) for (s, d, m), t in tau_rows.items() if s == strategy and m == metric
                )
                if not pts:
                    continue
                xs, ys, lo, hi = zip(*pts)
                ax.plot(xs, ys, style, color=color, markersize=4, label=f"{metric}@{k}")
                if None not in lo:
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.12, linewidth=0)
            ax.set_title(STRATEGY_TITLES[strategy])
            ax.set_xlabel("density of the test set")
            ax.set_xlim(0, 1.05)
            span = 1.0 - floor
            ax.set_ylim(floor - max(span * 0.08, 0.01), 1.0 + max(span * 0.05, 0.005))
            ax.axhline(1, color="#888", linewidth=0.8)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("Kendall's tau vs fully observed")
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
        if left_out_line:
            fig.suptitle(left_out_line, fontsize=9, color="#a33")
        parts.append(figs.img(fig, "Kendall's tau against test-set density per strategy"))
    wide: dict[tuple[str, float], dict[str, Any]] = {}
    for r in rows:
        if r[0] == "fully_observed" or r[3] not in ("ndcg", "precision", "recall"):
            continue
        cell = wide.setdefault((r[0], r[1]), {"n": Html(f"{r[15]:,.1f}")})
        cell[r[3]] = ci_cell(r[10], r[11], r[12], digits=3)
        if r[3] == "ndcg":
            cell["changed"] = r[13]
    parts.append(f"<h3>Kendall's tau at k = {k}, and how often the best model changes</h3>")
    parts.append(
        '<p class="muted">Per set: the mean users with a relevant sampled video, tau with its '
        f"95% interval over the {n_repeats} samples, and the share of samples in which the "
        f"fully observed best model by NDCG@{k} is not first on the sparse set (the paper's "
        "question: does sparse exposure change which model looks best?).</p>"
    )
    parts.append(
        table(
            [
                "strategy",
                "density",
                "users (mean)",
                f"tau ndcg@{k}",
                f"tau precision@{k}",
                f"tau recall@{k}",
                f"best model changed (ndcg@{k})",
            ],
            [
                [s, d, v["n"], v.get("ndcg"), v.get("precision"), v.get("recall"), v.get("changed")]
                for (s, d), v in sorted(wide.items())
            ],
            digits=3,
        )
    )
    changed = [v.get("changed") for v in wide.values() if v.get("changed") is not None]
    if changed:
        parts.append(
            f"<p>Over all {len(changed)} sparse sets, the best model by NDCG@{k} changed in "
            f"{sum(changed) / len(changed):.0%} of the samples (at most "
            f"{max(changed):.0%} in one set).</p>"
        )
    if reader.has("eval_exposure_samples"):
        parts.append("<h3>What the sparse test sets hold (mean over the samples)</h3>")
        parts.append(
            table(
                [
                    "strategy",
                    "density",
                    "pairs",
                    "achieved density",
                    "relevant share",
                    "mean popularity percentile",
                    "users with a relevant pair",
                ],
                [
                    list(r)
                    for r in reader.rows(
                        "select strategy, density, avg(n_sampled)::bigint, "
                        "avg(density_achieved), avg(relevant_share), "
                        "avg(mean_popularity_percentile), "
                        "printf('%.1f', avg(n_users_with_relevant)) "
                        "from eval_exposure_samples group by all order by strategy, density"
                    )
                ],
                digits=3,
            )
        )
    if reader.has("eval_exposure_models"):
        out = reader.rows(
            "select model, in_study, scored_by, rank_agreement, note from eval_exposure_models "
            "order by in_study desc, model"
        )
        parts.append("<h3>How each model was scored on every candidate</h3>")
        parts.append(
            '<p class="muted">rank agreement = share of the model\'s stored top-N '
            "(eval_rankings) that the re-scoring puts at the same rank.</p>"
        )
        parts.append(
            table(
                ["model", "in the study", "scored by", "rank agreement", "note"],
                [list(r) for r in out],
            )
        )
    return "".join(parts)


def section_temporal(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_temporal_split"):
        return note(
            "No temporal split in this database. <code>python -m kuairec_db exposure-study "
            f"--db {_esc(ctx['db'])}</code> computes it (unless given --no-temporal)."
        )
    info = _exposure_info(reader)
    columns = {
        r[0]
        for r in reader.rows(
            "select column_name from duckdb_columns() where table_name = 'eval_temporal_split'"
        )
    }
    if "full_n_users" not in columns:
        return note(
            "This temporal split was written by an older version (no intervals); run "
            f"<code>python -m kuairec_db exposure-study --db {_esc(ctx['db'])}</code> again."
        )
    ks = [r[0] for r in reader.rows("select distinct k from eval_temporal_split order by k")]
    k = ctx["k"] if ctx["k"] in ks else ks[0]
    rows = reader.rows(
        "select model, metric, value, ci_low, ci_high, n_users, model_rank, full_value, "
        "full_ci_low, full_ci_high, full_n_users, full_model_rank, kendall_tau "
        "from eval_temporal_split where k = ? and metric in ('ndcg', 'recall', 'precision') "
        "order by metric, model_rank, model",
        [k],
    )
    ndcg = [r for r in rows if r[1] == "ndcg"]
    n_temporal = ndcg[0][5] if ndcg else 0
    n_full = ndcg[0][10] if ndcg else 0
    text = (
        "<p>The usual sparse protocol for contrast: the big-matrix views of the last "
        f"{_esc(info.get('temporal.days', '?'))} days (from "
        f"{_esc(info.get('temporal.cutoff_at', '?'))}) are the test set, "
        f"{_esc(info.get('temporal.models', '?').replace(',', ', '))} are retrained on the "
        "earlier views and rank the whole catalogue; a video the user did not view counts as "
        f"not relevant. The temporal values are over the <b>{n_temporal:,} big-matrix users</b> "
        "with a relevant test view; the fully observed values (eval_metrics, trained on the "
        f"whole big matrix) over the <b>{n_full:,} small-matrix test users</b>. The two are on "
        "different scales, so each has its own figure; error bars are 95% bootstrap intervals "
        "over each one's users. What should agree is the order of the models.</p>"
    )
    parts = [text]
    for value_at, low_at, title, users in (
        (2, 3, "temporal split (sparse, biased test set)", n_temporal),
        (7, 8, "fully observed small matrix", n_full),
    ):
        fig, axes = figs.new(width=8.0, height=0.5 * len(ndcg) + 1.3)
        ax = axes[0][0]
        shown = ndcg[::-1]
        values = [r[value_at] for r in shown]
        ax.barh(
            [r[0] for r in shown], values, color=[ctx["colors"].get(r[0], "#555") for r in shown]
        )
        if all(r[low_at] is not None for r in shown):
            ax.errorbar(
                values,
                [r[0] for r in shown],
                xerr=[
                    [v - r[low_at] for v, r in zip(values, shown)],
                    [r[low_at + 1] - v for v, r in zip(values, shown)],
                ],
                fmt="none",
                ecolor="#222",
                capsize=3,
            )
        ax.set_title(f"{title}: {users:,} users", fontsize=10)
        ax.set_xlabel(f"NDCG@{k}")
        ax.grid(axis="x", alpha=0.3)
        parts.append(figs.img(fig, f"NDCG@{k}: {title}"))
    parts.append(
        table(
            [
                "model",
                "metric",
                "temporal value [95% CI]",
                "temporal users",
                "temporal rank",
                "fully observed value [95% CI]",
                "fully observed users",
                "fully observed rank",
                "kendall tau",
            ],
            [
                [
                    r[0],
                    r[1],
                    ci_cell(r[2], r[3], r[4]),
                    r[5],
                    r[6],
                    ci_cell(r[7], r[8], r[9]),
                    r[10],
                    r[11],
                    r[12],
                ]
                for r in rows
            ],
        )
    )
    return "".join(parts)


def _users(n: int) -> str:
    return f"{n:,} user{'' if n == 1 else 's'}"


def section_segments(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_segment_metrics"):
        return note("This database has no <code>eval_segment_metrics</code> view: no segments.")
    k = ctx["k"]
    rows = reader.rows(
        "select segment_kind, segment, model, value, n_users, ci_low, ci_high, segment_order, "
        "is_small from eval_segment_metrics "
        "where split = 'test' and k = ? and metric = 'ndcg' order by segment_kind, segment_order",
        [k],
    )
    if not rows:
        return note(f"<code>eval_segment_metrics</code> has no test rows at k = {k}.")
    kinds = sorted({r[0] for r in rows}, reverse=True)  # profile field first, then quartiles
    small = sorted({(r[0], r[7], r[1], r[4]) for r in rows if r[8]})
    parts = [
        f"<p>NDCG@{k} of each model within groups of test users, with 95% bootstrap intervals "
        "over the group's users. Groups sort from the least to the most active. A group of "
        "fewer than 20 users (<code>is_small</code>) is too small for its mean to say much: it "
        "is left out of the figure and marked in the tables.</p>"
    ]
    fig, axes = figs.new(ncols=len(kinds), width=5.4 * len(kinds) + 1.4, height=4.6)
    for ax, kind in zip(axes[0], kinds):
        order = sorted({(r[7], r[1], r[4]) for r in rows if r[0] == kind and not r[8]})
        segments = [s for _, s, _ in order]
        models = [m for m in ctx["models"] if any(r[2] == m and r[0] == kind for r in rows)]
        width = 0.8 / max(len(models), 1)
        lookup = {(r[1], r[2]): r for r in rows if r[0] == kind}
        for i, model in enumerate(models):
            xs = [j + i * width - 0.4 + width / 2 for j in range(len(segments))]
            vals = [lookup[(s, model)][3] if (s, model) in lookup else 0 for s in segments]
            ax.bar(xs, vals, width, color=ctx["colors"][model], label=model)
            lows = [lookup[(s, model)][5] if (s, model) in lookup else None for s in segments]
            highs = [lookup[(s, model)][6] if (s, model) in lookup else None for s in segments]
            if None not in lows and None not in highs:
                ax.errorbar(
                    xs,
                    vals,
                    yerr=[
                        [v - lo for v, lo in zip(vals, lows)],
                        [hi - v for v, hi in zip(vals, highs)],
                    ],
                    fmt="none",
                    ecolor="#333",
                    elinewidth=0.7,
                    capsize=1.5,
                )
        ax.set_xticks(range(len(segments)))
        ax.set_xticklabels([f"{s}\n({_users(n)})" for _, s, n in order], rotation=0, fontsize=8)
        left = [f"{s} ({_users(n)})" for kd, _, s, n in small if kd == kind]
        title = kind + (f"\nleft out, below 20 users: {', '.join(left)}" if left else "")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"NDCG@{k}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    parts.append(figs.img(fig, f"NDCG@{k} per user segment"))
    for kind in kinds:
        order = sorted({(r[7], r[1], r[4], r[8]) for r in rows if r[0] == kind})
        lookup = {(r[1], r[2]): r for r in rows if r[0] == kind}
        parts.append(f"<h3>{_esc(kind)}</h3>")
        headers = [
            f"{s} ({_users(n)}{', too few' if is_small else ''})" for _, s, n, is_small in order
        ]
        parts.append(
            table(
                ["model", *headers],
                [
                    [m]
                    + [
                        ci_cell(*lookup[(s, m)][3:4], *lookup[(s, m)][5:7], digits=3)
                        if (s, m) in lookup
                        else None
                        for _, s, _, _ in order
                    ]
                    for m in ctx["models"]
                    if any((s, m) in lookup for _, s, _, _ in order)
                ],
            )
        )
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# The page


def write_report(db: Path, out: Path) -> ReportResult:
    validate.check_database_file(db, str(db))
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{db}: cannot open the database ({first})") from None
    try:
        reader = Reader(con)
        missing = [n for n in REQUIRED if not reader.has(n)]
        if missing:
            raise UserError(
                f"{db}: not a kuairec_db database with evaluation tables (no "
                f"{', '.join(missing)}); build it with: python -m kuairec_db build --db {db}"
            )
        info = dict(reader.rows("select key, value from build_info"))
        ks = [r[0] for r in reader.rows("select distinct k from eval_metrics order by k")]
        if not ks:
            raise UserError(f"{db}: eval_metrics is empty; rebuild the database")
        k = 10 if 10 in ks else ks[0]
        models = _model_order(reader, k)
        ctx = {"info": info, "k": k, "models": models, "colors": _colors(models), "db": str(db)}
        figs = Figures()
        bodies = {
            "data": section_data(reader, ctx),
            "profile": section_profile(reader),
            "leaderboard": section_leaderboard(reader, ctx, figs),
            "paired": section_paired(reader, ctx),
            "popularity": section_popularity(reader, ctx, figs),
            "beyond": section_beyond(reader, ctx, figs),
            "exposure": section_exposure(reader, ctx, figs),
            "temporal": section_temporal(reader, ctx, figs),
            "segments": section_segments(reader, ctx, figs),
        }
    finally:
        con.close()
    notes = [key for key, body in bodies.items() if 'class="note"' in body]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    toc = "".join(f'<li><a href="#{key}">{_esc(title)}</a></li>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="{key}"><h2>{_esc(title)}</h2>{bodies[key]}</section>'
        for key, title in SECTIONS
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>KuaiRec report: {_esc(db.name)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>KuaiRec recommenders: report</h1>"
        f'<p class="muted">Database <code>{_esc(db)}</code>, data '
        f"{_esc(info.get('data_kind', '?'))}; report written {now} by kuairec_db "
        f"{_esc(__version__)}.</p><nav><ol>{toc}</ol></nav>{sections}</main></body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    temp.replace(out)
    return ReportResult(out=out, n_images=figs.count, notes=notes)

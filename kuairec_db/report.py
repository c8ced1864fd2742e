"""``report``: one self-contained HTML page about a built database, read from the database alone.

Sections (SECTIONS, in order): the data and its row accounting, the leaderboard (with bootstrap
intervals when ``eval_metrics_ci`` exists), paired comparisons against the best model
(``eval_paired``), accuracy against the popularity of what is recommended, coverage and
diversity (``eval_beyond_accuracy``), the exposure study (``eval_exposure_study``, written by
``exposure-study``) and its temporal split, and results per user segment
(``eval_segment_metrics``). A relation that is missing gives a short note in its section, never
an error. Plots are matplotlib figures (Agg backend) embedded as base64 PNG images, so the file
needs nothing else to be read.
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
    rows = reader.rows(
        """
        select model_b, metric, mean_diff, ci_low, ci_high, win_rate, tie_rate, p_value, n_users
        from eval_paired
        where split = 'test' and k = ? and model_a = ? and model_b <> model_a
          and metric in ('ndcg', 'recall')
        order by metric, mean_diff
        """,
        [k, best],
    )
    if not rows:
        return note(f"<code>eval_paired</code> has no rows for {_esc(best)} at k = {k}.")
    text = (
        f"<p>The best model by NDCG@{k}, <b>{_esc(best)}</b>, against each other model on the "
        "same test users: mean difference (best minus other) with its 95% bootstrap interval, "
        "the share of users where the best model wins or ties, and a sign-flip permutation "
        "p-value.</p>"
    )
    return text + table(
        [
            "other model",
            "metric",
            "mean diff",
            "ci low",
            "ci high",
            "win rate",
            "tie rate",
            "p-value",
            "users",
        ],
        [list(r) for r in rows],
    )


def section_popularity(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("feat_video_popularity"):
        return note("No <code>feat_video_popularity</code> here: popularity is unknown.")
    k = ctx["k"]
    rows = reader.rows(
        """
        with lists as (
            select r.model, r.user_id, avg(p.popularity_percentile) as popularity
            from eval_rankings as r
            inner join eval_ground_truth as g
                on r.user_id = g.user_id and r.video_id = g.video_id and g.split = 'test'
            left join feat_video_popularity as p on r.video_id = p.video_id
            where r.rank <= ?
            group by all
        )
        select lists.model, avg(lists.popularity), any_value(m.value)
        from lists
        left join eval_metrics as m
            on m.model = lists.model and m.split = 'test' and m.k = ? and m.metric = 'ndcg'
        group by lists.model
        """,
        [k, k],
    )
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
        f"viewed) of the top {k} a model gives each test user, beside its NDCG@{k}. A model "
        "up and to the right wins by recommending what is popular; the dashed line is the "
        f"candidates' mean ({base:.3f}).</p>"
    )
    fig, axes = figs.new(width=7.5, height=4.6)
    ax = axes[0][0]
    for model, pop, ndcg in rows:
        if ndcg is None:
            continue
        ax.scatter(pop, ndcg, s=70, color=ctx["colors"].get(model, "#555"), zorder=3)
        ax.annotate(model, (pop, ndcg), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.axvline(base, linestyle="--", color="#888", linewidth=1)
    ax.set_xlabel(f"mean popularity percentile of the top {k}")
    ax.set_ylabel(f"NDCG@{k} (test users)")
    ax.grid(alpha=0.3)
    return (
        text
        + figs.img(fig, f"NDCG@{k} against the popularity of the recommended videos")
        + table(["model", "mean popularity percentile", f"ndcg@{k}"], [list(r) for r in rows])
    )


def section_beyond(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_beyond_accuracy"):
        return note(
            "This database has no <code>eval_beyond_accuracy</code> view: no coverage or "
            "diversity measures."
        )
    k = ctx["k"]
    metrics = ("coverage", "gini", "novelty_bits", "n_categories", "duration_ratio")
    data = {
        (s, m, metric): v
        for s, m, metric, v in reader.rows(
            "select source, model, metric, value from eval_beyond_accuracy where k = ?", [k]
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
        "catalogue; <i>eval_rankings</i>: small-matrix users among their candidates.</p>"
    ]
    sources = [s for s in ("recommendations", "eval_rankings") if any(key[0] == s for key in data)]
    for source in sources:
        parts.append(f"<h3>{_esc(source)}</h3>")
        rows = [
            [m] + [data.get((source, m, metric)) for metric in metrics]
            for m in ctx["models"]
            if any((source, m, metric) in data for metric in metrics)
        ]
        parts.append(table(["model", *metrics], rows))
    fig, axes = figs.new(ncols=2, width=10.5, height=0.45 * len(ctx["models"]) + 1.4)
    source = sources[0]
    for ax, metric in zip(axes[0], ("coverage", "gini")):
        shown = [m for m in ctx["models"] if (source, m, metric) in data][::-1]
        ax.barh(
            shown,
            [data[(source, m, metric)] for m in shown],
            color=[ctx["colors"][m] for m in shown],
        )
        ax.set_xlabel(f"{metric} of the top {k} ({source})")
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
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
    ks = [r[0] for r in reader.rows("select distinct k from eval_exposure_study order by k")]
    k = ctx["k"] if ctx["k"] in ks else ks[0]
    rows = reader.rows(
        "select strategy, density, model, metric, value, full_value, kendall_tau "
        "from eval_exposure_study where k = ?",
        [k],
    )
    strategies = [s for s in STRATEGY_TITLES if any(r[0] == s for r in rows)]
    models = [m for m in ctx["models"] if any(r[2] == m for r in rows)]
    parts.append(
        "<p>The KuaiRec paper's experiment: sparse test sets are sampled from the fully observed "
        f"pairs of the {_esc(info.get('split', 'test'))} users at several densities, "
        "under three exposure strategies (uniform; positivity-oriented: a relevant pair is "
        f"{_esc(info.get('positivity_weight', '?'))} times as likely to be exposed; "
        "popularity-oriented: exposure grows with the video's training users), with seed "
        f"{_esc(info.get('seed', '?'))}. Each model ranks a user's sampled videos in the order "
        f"of its full ranking. Top row: NDCG@{k} on each sparse set, the dotted lines at density "
        "1 are the fully observed values. Bottom row: Kendall's tau between the models' order on "
        "the sparse set and on the full matrix (1 = the same order).</p>"
    )
    taus = [r[6] for r in rows if r[6] is not None and r[3] in ("ndcg", "precision", "recall")]
    tau_floor = min(taus) if taus else 0.0
    if strategies:
        fig, axes = figs.new(
            ncols=len(strategies), nrows=2, width=4.0 * len(strategies) + 1.5, height=7.0
        )
        for col, strategy in enumerate(strategies):
            ax = axes[0][col]
            for model in models:
                pts = sorted(
                    (r[1], r[4])
                    for r in rows
                    if r[0] == strategy and r[2] == model and r[3] == "ndcg"
                )
                full = next((r[5] for r in rows if r[2] == model and r[3] == "ndcg"), None)
                if pts:
                    ax.plot(*zip(*pts), marker="o", color=ctx["colors"][model], label=model)
                if full is not None:
                    ax.plot([1.0], [full], marker="*", markersize=11, color=ctx["colors"][model])
                    ax.axhline(full, linestyle=":", linewidth=0.8, color=ctx["colors"][model])
            ax.set_title(STRATEGY_TITLES[strategy])
            ax.set_xlabel("density of the test set")
            ax.set_ylabel(f"NDCG@{k}")
            ax.set_xlim(0, 1.05)
            ax.grid(alpha=0.3)
            ax = axes[1][col]
            for metric, style in (("ndcg", "-o"), ("precision", "--s"), ("recall", ":^")):
                pts = sorted(
                    {
                        (r[1], r[6])
                        for r in rows
                        if r[0] == strategy and r[3] == metric and r[6] is not None
                    }
                )
                if pts:
                    ax.plot(*zip(*pts), style, label=f"{metric}@{k}")
            ax.set_xlabel("density of the test set")
            ax.set_ylabel("Kendall's tau vs fully observed")
            ax.set_xlim(0, 1.05)
            ax.set_ylim(max(-1.05, min(tau_floor - 0.1, 0.0)), 1.05)
            ax.axhline(1, color="#888", linewidth=0.8)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
        axes[1][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
        parts.append(figs.img(fig, "NDCG and Kendall's tau against test-set density per strategy"))
    tau_rows = reader.rows(
        """
        select strategy, density, metric, any_value(kendall_tau), any_value(n_users)
        from eval_exposure_study
        where k = ? and strategy <> 'fully_observed' and metric in ('ndcg', 'precision', 'recall')
        group by all
        order by strategy, density, metric
        """,
        [k],
    )
    wide: dict[tuple[str, float], dict[str, Any]] = {}
    for strategy, density, metric, tau, n in tau_rows:
        wide.setdefault((strategy, density), {"n": n})[metric] = tau
    parts.append(f"<h3>Kendall's tau at k = {k}</h3>")
    parts.append(
        table(
            [
                "strategy",
                "density",
                "users",
                f"tau ndcg@{k}",
                f"tau precision@{k}",
                f"tau recall@{k}",
            ],
            [
                [s, d, v["n"], v.get("ndcg"), v.get("precision"), v.get("recall")]
                for (s, d), v in wide.items()
            ],
            digits=3,
        )
    )
    if reader.has("eval_exposure_samples"):
        parts.append("<h3>What the sparse test sets hold</h3>")
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
                        "select strategy, density, n_sampled, density_achieved, relevant_share, "
                        "mean_popularity_percentile, n_users_with_relevant "
                        "from eval_exposure_samples order by strategy, density"
                    )
                ],
                digits=3,
            )
        )
    if reader.has("eval_exposure_models"):
        out = reader.rows(
            "select model, scored_by, rank_agreement, note from eval_exposure_models "
            "order by in_study desc, model"
        )
        parts.append("<h3>How each model was scored on every candidate</h3>")
        parts.append(
            '<p class="muted">rank agreement = share of the model\'s stored top-N '
            "(eval_rankings) that the re-scoring puts at the same rank.</p>"
        )
        parts.append(
            table(["model", "scored by", "rank agreement", "note"], [list(r) for r in out])
        )
    return "".join(parts)


def section_temporal(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_temporal_split"):
        return note(
            "No temporal split in this database. <code>python -m kuairec_db exposure-study "
            f"--db {_esc(ctx['db'])}</code> computes it (unless given --no-temporal)."
        )
    info = _exposure_info(reader)
    ks = [r[0] for r in reader.rows("select distinct k from eval_temporal_split order by k")]
    k = ctx["k"] if ctx["k"] in ks else ks[0]
    rows = reader.rows(
        "select model, metric, value, model_rank, full_value, full_model_rank, kendall_tau, "
        "n_users from eval_temporal_split where k = ? and metric in ('ndcg', 'recall', "
        "'precision') order by metric, model_rank, model",
        [k],
    )
    text = (
        "<p>The usual sparse protocol for contrast: the big-matrix views of the last "
        f"{_esc(info.get('temporal.days', '?'))} days (from "
        f"{_esc(info.get('temporal.cutoff_at', '?'))}) are the test set, "
        f"{_esc(info.get('temporal.models', '?').replace(',', ', '))} are retrained on the "
        "earlier views and rank the whole catalogue; a video the user did not view counts as "
        f"not relevant. {int(info.get('temporal.n_users', 0) or 0):,} users have a relevant "
        "test view. Beside each value: the model's fully observed value (eval_metrics, test "
        "users) and the rank each protocol gives it.</p>"
    )
    fig, axes = figs.new(ncols=2, width=10, height=3.6)
    for ax, (values, title) in zip(
        axes[0], ((2, "temporal split (sparse)"), (4, "fully observed"))
    ):
        shown = [r for r in rows if r[1] == "ndcg"]
        ax.bar(
            [r[0] for r in shown],
            [r[values] for r in shown],
            color=[ctx["colors"].get(r[0], "#555") for r in shown],
        )
        ax.set_title(title)
        ax.set_ylabel(f"NDCG@{k}")
        ax.grid(axis="y", alpha=0.3)
    return (
        text
        + figs.img(fig, f"NDCG@{k}: temporal split against fully observed")
        + table(
            [
                "model",
                "metric",
                "temporal value",
                "temporal rank",
                "fully observed value",
                "fully observed rank",
                "kendall tau",
                "users",
            ],
            [list(r) for r in rows],
        )
    )


def section_segments(reader: Reader, ctx: dict, figs: Figures) -> str:
    if not reader.has("eval_segment_metrics"):
        return note("This database has no <code>eval_segment_metrics</code> view: no segments.")
    k = ctx["k"]
    rows = reader.rows(
        "select segment_kind, segment, model, value, n_users from eval_segment_metrics "
        "where split = 'test' and k = ? and metric = 'ndcg' order by segment_kind, segment",
        [k],
    )
    if not rows:
        return note(f"<code>eval_segment_metrics</code> has no test rows at k = {k}.")
    kinds = sorted({r[0] for r in rows})
    parts = [f"<p>NDCG@{k} of each model within groups of test users.</p>"]
    fig, axes = figs.new(ncols=len(kinds), width=5.2 * len(kinds) + 1.2, height=4.4)
    for ax, kind in zip(axes[0], kinds):
        segments = sorted({r[1] for r in rows if r[0] == kind})
        models = [m for m in ctx["models"] if any(r[2] == m and r[0] == kind for r in rows)]
        width = 0.8 / max(len(models), 1)
        lookup = {(r[1], r[2]): r[3] for r in rows if r[0] == kind}
        for i, model in enumerate(models):
            xs = [j + i * width - 0.4 + width / 2 for j in range(len(segments))]
            ax.bar(
                xs,
                [lookup.get((s, model), 0) for s in segments],
                width,
                color=ctx["colors"][model],
                label=model,
            )
        ax.set_xticks(range(len(segments)))
        ax.set_xticklabels(segments, rotation=20, ha="right", fontsize=8)
        ax.set_title(kind)
        ax.set_ylabel(f"NDCG@{k}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    parts.append(figs.img(fig, f"NDCG@{k} per user segment"))
    for kind in kinds:
        segments = sorted({r[1] for r in rows if r[0] == kind})
        lookup = {(r[1], r[2]): r[3] for r in rows if r[0] == kind}
        users = {r[1]: r[4] for r in rows if r[0] == kind}
        parts.append(f"<h3>{_esc(kind)}</h3>")
        parts.append(
            table(
                ["model", *[f"{s} ({users[s]:,})" for s in segments]],
                [
                    [m] + [lookup.get((s, m)) for s in segments]
                    for m in ctx["models"]
                    if any((s, m) in lookup for s in segments)
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


def register(sub) -> None:
    from kuairec_db.commands import RAW, _add_db

    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report (tables and plots) of a database",
        formatter_class=RAW,
        description="Reads the database only (read-only) and writes one HTML file with its "
        "plots embedded:\nthe data and its row accounting, the leaderboard, paired comparisons, "
        "accuracy against\npopularity, coverage and diversity, the exposure study and the "
        "temporal split, and\nper-segment results. Sections whose tables are missing say so.",
        epilog="examples:\n  python -m kuairec_db report\n"
        "  python -m kuairec_db report --db kuairec.duckdb --out report.html",
    )
    _add_db(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        metavar="FILE",
        help="HTML file to write (default ./report.html)",
    )
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    result = write_report(Path(args.db), args.out)
    print(f"wrote {result.out} ({result.n_images} plots)")
    for key in result.notes:
        title = dict(SECTIONS)[key]
        print(f"  note: section '{title}' is partial (a table is missing)")
    return 0

"""``rebalance-lab report DIR...``: figures and tables from every run directory below the given dirs.

Writes ``report.html`` (self-contained: figures embedded as base64 PNG), ``report.md`` with the
same content and its figures as files under ``figures/``. Run directories whose derived tables are
missing or older than their history are analysed first (:func:`bench.analysis.metrics.tables.analyze`). A figure
without data in the given runs is skipped with a note saying why, never drawn empty. Runs that
failed or were aborted come first in both documents, then check failures; the failed runs stay out
of every figure and statistic unless asked for (``--include-failed``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure as Canvas
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from bench.analysis.metrics.stats import describe
from bench.analysis.metrics.tables import analyze, find_runs
from bench.experiment.history import ERROR_FILE, RunState

log = logging.getLogger(__name__)

DERIVED = ("rebalances.csv", "zk_load.csv", "broker_load.csv", "summary.json")
SERIES_ORDER = ("coordinator/classic", "zk/chain", "zk/herd", "zk/selfbalance", "zk/setpartitioner")
COLORS = {
    "coordinator/classic": "#222222",
    "zk/chain": "#1f77b4",
    "zk/herd": "#d62728",
    "zk/selfbalance": "#2ca02c",
    "zk/setpartitioner": "#9467bd",
}
MARKERS = {
    "coordinator/classic": "s",
    "zk/chain": "o",
    "zk/herd": "^",
    "zk/selfbalance": "D",
    "zk/setpartitioner": "v",
}
_EXTRA_COLORS = ("#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
TRIGGER_NAMES = {
    "run_start": "cold start",
    "add_members": "scale out",
    "leave_members": "graceful leave",
    "kill_member": "member crash",
    "kill_leader": "leader crash",
    "rolling_restart": "rolling restart",
    "kill_coordinator": "coordinator crash",
    "stop_zk": "ZooKeeper server stop",
    "restart_zk": "ZooKeeper server restart",
    "set_delay": "delay change",
    "cut_link": "link cut",
    "heal_link": "link healed",
}


@dataclass(frozen=True)
class Quantity:
    """How a table shows one quantity: one name and one unit, wherever it appears."""

    name: str
    unit: str  # "" for counts
    scale: float = 1.0  # from the unit of its rebalances.csv column to ``unit``
    digits: int = 2

    @property
    def header(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def format(self, value: float | None) -> str:
        return _fmt(None if value is None else value * self.scale, self.digits)


#: Every quantity the report's summary and the demo's terminal table show, by its rebalances.csv
#: column: a rebalance's durations in seconds, a member's join in milliseconds.
QUANTITIES = {
    "detection_ms": Quantity("detection", "s", 1e-3),
    "convergence_ms": Quantity("convergence", "s", 1e-3),
    "unowned_partition_s": Quantity("unowned", "partition·s"),
    "join_ms": Quantity("join median / max / span", "ms", digits=0),
    "zk_reads": Quantity("zk reads", "", digits=0),
    "zk_writes": Quantity("zk writes", "", digits=0),
    "broker_requests": Quantity("broker requests", "", digits=0),
}
#: Actions that change membership by one member (the ZooKeeper cost formulas are per such change).
SINGLE_CHANGES = ("add_members", "leave_members", "kill_member", "kill_leader")
#: Analytic growth of ZooKeeper reads per membership change with group size N. chain follows ZooKeeper's
#: leader-election recipe without a herd effect (each member watches its predecessor; ZooKeeper's
#: "Recipes and Solutions", Leader Election), so one change costs reads by the leader only; herd is
#: the recipe's naive form (every member watches and re-reads the membership); selfbalance is Kafka
#: 0.8's ZookeeperConsumerConnector rebalance, where every consumer re-reads every registration.
EXPECTED_READS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "zk/chain": ("∝ N", lambda n: n),
    "zk/herd": ("∝ N²", lambda n: n**2),
    "zk/selfbalance": ("∝ N²", lambda n: n**2),
}


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    title: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class Skipped:
    title: str
    reason: str


@dataclass
class Results:
    roots: list[Path]
    runs: list[Path]  # the completed runs, or every run with ``include_failed``
    rebalances: pd.DataFrame
    zk: pd.DataFrame
    broker: pd.DataFrame
    summaries: list[dict[str, Any]] = field(default_factory=list)  # of ``runs``
    #: summaries of the runs that failed or were aborted, whether or not they are in ``runs``
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    include_failed: bool = False

    @property
    def failures(self) -> pd.DataFrame:
        rows = [
            {
                "scenario": s["scenario"],
                "mode/variant": f"{s['mode']}/{s['variant']}",
                "run": s["run_id"],
                "check": f["check"],
                "group": f.get("group"),
                "message": f["message"],
            }
            for s in self.summaries
            for f in s["checks"]["failures"]
        ]
        return pd.DataFrame(rows, columns=["scenario", "mode/variant", "run", "check", "group", "message"])

    @property
    def completed(self) -> int:
        return len(self.summaries) - (len(self.incomplete) if self.include_failed else 0)


# -- loading ---------------------------------------------------------------------------------------


def _stale(run_dir: Path) -> bool:
    names = ("events.jsonl", "samples.jsonl", ERROR_FILE)
    sources = [run_dir / n for n in names if (run_dir / n).exists()]
    newest = max(p.stat().st_mtime for p in sources)
    if any(not (run_dir / n).exists() or (run_dir / n).stat().st_mtime < newest for n in DERIVED):
        return True
    return "status" not in json.loads((run_dir / "summary.json").read_text())  # from before run statuses


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_results(dirs: Sequence[Path], include_failed: bool = False) -> Results:
    """Every run below ``dirs``, analysed if needed. Runs that failed or were aborted are listed in
    ``incomplete`` and kept out of the tables unless ``include_failed``. ``run_id`` becomes the run
    directory's path: unique per directory, also for copies of one run."""
    frames: dict[str, list[pd.DataFrame]] = {"rebalances": [], "zk": [], "broker": []}
    summaries, incomplete, runs = [], [], []
    for root, run_dir in find_runs(dirs):
        if _stale(run_dir):
            log.info("analysing %s", run_dir)
            analyze(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["run_id"] = str(run_dir)
        state = summary["status"]["state"]
        if state != RunState.COMPLETED:
            incomplete.append(summary)
            if not include_failed:
                continue
        summaries.append(summary)
        runs.append(run_dir)
        for key, name in (
            ("rebalances", "rebalances.csv"),
            ("zk", "zk_load.csv"),
            ("broker", "broker_load.csv"),
        ):
            frame = _read_csv(run_dir / name)
            if not frame.empty:
                frame["run_id"] = str(run_dir)
                frame["source"] = str(root)
                frame["run_state"] = state
                frames[key].append(frame)

    def concat(key: str) -> pd.DataFrame:
        if not frames[key]:
            return pd.DataFrame()
        out = pd.concat(frames[key], ignore_index=True)
        if "mode" in out:
            out["series"] = out["mode"].astype(str) + "/" + out["variant"].astype(str)
        return out

    return Results(
        list(dirs),
        runs,
        concat("rebalances"),
        concat("zk"),
        concat("broker"),
        summaries,
        incomplete,
        include_failed,
    )


# -- helpers ---------------------------------------------------------------------------------------


def _series_order(names: Sequence[str]) -> list[str]:
    known = [s for s in SERIES_ORDER if s in names]
    return known + sorted(set(names) - set(known))


def _color(series: str) -> str:
    if series in COLORS:
        return COLORS[series]
    return _EXTRA_COLORS[hash(series) % len(_EXTRA_COLORS)]


def trigger_label(action: str, phase: str, first_start: bool) -> str:
    if action == "start_members":
        return "cold start" if first_start else "start members"
    if action == "pause_member":
        return "resume" if phase == "end" else "pause"
    return TRIGGER_NAMES.get(action, action.replace("_", " "))


def _with_triggers(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``trigger`` (a readable label; the step is appended when one action appears twice)."""
    frame = frame.copy()
    first = frame[frame["action"] == "start_members"].groupby("family")["step"].min()
    frame["trigger"] = [
        trigger_label(a, p, s == first.get(f, s))
        for a, p, s, f in zip(frame["action"], frame["phase"], frame["step"], frame["family"], strict=True)
    ]
    steps = frame.groupby(["family", "trigger"])["step"].nunique()
    repeated = set(steps[steps > 1].index)
    frame["trigger"] = [
        f"{t} (step {s})" if (f, t) in repeated else t
        for f, t, s in zip(frame["family"], frame["trigger"], frame["step"], strict=True)
    ]
    return frame


def _trigger_order(frame: pd.DataFrame) -> list[str]:
    order = frame.sort_values(["step", "phase"], ascending=[True, False]).drop_duplicates("trigger")
    return list(order["trigger"])


def _subplots(rows: int, cols: int, figsize: tuple[float, float], squeeze: bool = True) -> tuple[Canvas, Any]:
    """A figure of its own (no pyplot state: nothing global, nothing to close, no display needed)."""
    fig = Canvas(figsize=figsize, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def _png(fig: Canvas) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _use_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and len(positive) == len(values) and max(positive) / min(positive) > 20


def _plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1-2-5 steps labelled as plain numbers (0.2, 1, 50), not powers of ten."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))

    # Under a decade the 1-2-5 ticks are too few: label the minor ticks too then, as plain numbers.
    def minor(v: float, _: int) -> str:
        low, high = sorted(axis.get_view_interval())
        return f"{v:g}" if low > 0 and high / low < 10 else ""

    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def _log_limits(values: Sequence[float]) -> tuple[float, float]:
    """The 1-2-5 steps just below and above the positive values: a labelled tick under the smallest
    value and above the largest, so every value can be read off the axis."""
    positive = [v for v in values if v > 0]
    low, high = min(positive) / 1.05, max(positive) * 1.05  # a little room: no point on the frame
    exp_low, exp_high = math.floor(math.log10(low)), math.floor(math.log10(high))
    below = max(m * 10.0**exp_low for m in (1, 2, 5) if m * 10.0**exp_low <= low)
    above = min(m * 10.0**exp_high for m in (1, 2, 5, 10) if m * 10.0**exp_high >= high)
    return below, above


def _y_axis(ax: Axes, log: bool, label: str, values: Sequence[float] = ()) -> None:
    """One y axis; with ``log`` and the values drawn, its limits are :func:`_log_limits`."""
    if log:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        if any(v > 0 for v in values):
            ax.set_ylim(*_log_limits(values))
        ax.set_ylabel(f"{label}, log scale")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel(label)
    ax.grid(True, axis="y", which="both", alpha=0.3)


def _sizes_axis(ax: Axes, sizes: Sequence[float], label: str) -> None:
    """A log2 x axis ticked at the sizes that were measured."""
    ax.set_xscale("log", base=2)
    ticks = sorted({float(v) for v in sizes})
    if len(ticks) > 8:  # too many to label: powers of two instead
        ticks = [2.0**k for k in range(int(math.log2(ticks[0])), int(math.ceil(math.log2(ticks[-1]))) + 1)]
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel(f"{label} (log scale)")
    ax.grid(True, axis="x", alpha=0.3)


def _sweep_families(frame: pd.DataFrame, column: str) -> list[str]:
    if frame.empty or column not in frame:
        return []
    counts = frame.groupby("family")[column].nunique()
    return sorted(counts[counts >= 2].index)


def _single_point_families(frame: pd.DataFrame) -> list[str]:
    counts = frame.groupby("family")["scenario"].nunique()
    return sorted(counts[counts == 1].index)


def _series_handle(series: str) -> Any:
    return Line2D(
        [], [], color=_color(series), marker=MARKERS.get(series, "o"), lw=1.4, markersize=6, label=series
    )


def _figure_legend(fig: Canvas, handles: Sequence[Any], title: str) -> None:
    """One title above all panels and one legend below them."""
    fig.suptitle(title, fontsize=12)
    if handles:
        ncol = len(handles) if len(handles) <= 6 else math.ceil(len(handles) / 2)
        fig.legend(handles=list(handles), loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def _dist_panel(ax: Axes, data: pd.DataFrame, column: str, scale: float) -> tuple[list[str], list[float]]:
    """Points per episode, a bar at the median, a box (IQR) from 5 values on; episodes without a value
    (e.g. never converged) are counted above their slot as "✕n". Returns the series drawn and values."""
    triggers = _trigger_order(data)
    series = _series_order(list(data["series"].unique()))
    width = min(0.8 / max(1, len(series)), 0.2)  # one series alone gets a narrow slot, not the whole width
    rng = np.random.default_rng(0)  # fixed jitter: the same input draws the same figure
    drawn: list[str] = []
    values_all: list[float] = []
    for j, s in enumerate(series):
        for i, trig in enumerate(triggers):
            column_values = data[(data["series"] == s) & (data["trigger"] == trig)][column]
            vals = column_values.dropna().to_numpy(dtype=float) * scale
            x = i + width * (j - (len(series) - 1) / 2)
            missing = int(column_values.isna().sum())
            if missing:
                ax.text(
                    x,
                    0.99,
                    f"✕{missing}",
                    color=_color(s),
                    fontsize=7,
                    ha="center",
                    va="top",
                    transform=ax.get_xaxis_transform(),
                )
            if len(vals) == 0:
                continue
            values_all += list(vals)
            if len(vals) >= 5:
                q1, q3 = np.percentile(vals, [25, 75])
                ax.add_patch(
                    Rectangle((x - width * 0.4, q1), width * 0.8, q3 - q1, fill=False, ec=_color(s), lw=1)
                )
            ax.scatter(
                x + rng.uniform(-width * 0.25, width * 0.25, len(vals)),
                vals,
                s=20,
                color=_color(s),
                marker=MARKERS.get(s, "o"),
                alpha=0.6,
                lw=0,
                zorder=3,  # in front of the median bar, which would hide a single value
            )
            ax.hlines(np.median(vals), x - width * 0.45, x + width * 0.45, color=_color(s), lw=2.4, zorder=2)
            if s not in drawn:
                drawn.append(s)
    ax.set_xticks(range(len(triggers)), triggers, rotation=15 if len(triggers) > 4 else 0)
    ax.set_xlim(-0.6, len(triggers) - 0.4)
    return drawn, values_all


def _medians(data: pd.DataFrame, x: str, y: str, scale: float = 1.0) -> pd.DataFrame:
    """Median of ``y`` per series and ``x`` value, with the median's 95 % CI."""
    rows = []
    for (s, xv), frame in data.groupby(["series", x]):
        st = describe((frame[y] * scale).tolist())
        if st.n:
            rows.append({"series": s, "x": float(xv), "median": st.median, "lo": st.ci_low, "hi": st.ci_high})
    return pd.DataFrame(rows, columns=["series", "x", "median", "lo", "hi"])


def _stat_lines(ax: Axes, medians: pd.DataFrame) -> list[str]:
    """One line per series through the medians, the CI as error bars; returns the series drawn."""
    drawn = []
    for s in _series_order(list(medians["series"].unique())):
        m = medians[medians["series"] == s].sort_values("x")
        ax.errorbar(
            m["x"],
            m["median"],
            yerr=[m["median"] - m["lo"], m["hi"] - m["median"]],
            color=_color(s),
            marker=MARKERS.get(s, "o"),
            markersize=5,
            capsize=3,
            lw=1.4,
        )
        drawn.append(s)
    return drawn


# -- figures ---------------------------------------------------------------------------------------


def latency_canvas(family: str, frame: pd.DataFrame) -> Canvas:
    """Detection and convergence of one scenario's episodes (``frame`` with triggers), side by side."""
    fig, axes = _subplots(1, 2, figsize=(12, 4.4))
    drawn, detections = _dist_panel(axes[0], frame, "detection_ms", 1e-3)
    _, convergences = _dist_panel(axes[1], frame, "convergence_ms", 1e-3)
    values = detections + convergences
    log = _use_log(values)  # one scale for both panels, or they could not be compared
    detection, convergence = QUANTITIES["detection_ms"], QUANTITIES["convergence_ms"]
    _y_axis(axes[0], log, f"trigger → first member event ({detection.unit})", values)
    _y_axis(axes[1], log, f"trigger → converged ({convergence.unit})", values)
    axes[0].set_title(detection.name, fontsize=10)
    axes[1].set_title(f"{convergence.name}: one newer generation, every partition owned once", fontsize=10)
    _figure_legend(
        fig,
        [_series_handle(s) for s in drawn],
        f"{family}: rebalance latency by mode/variant ({_plural(frame['run_id'].nunique(), 'run')})",
    )
    return fig


def fig_latency(res: Results) -> list[Figure | Skipped]:
    title = "Time to react and to converge, per scenario"
    data = res.rebalances
    if data.empty or data["convergence_ms"].dropna().empty:
        return [Skipped(title, "no episode converged in the given runs")]
    data = _with_triggers(data)
    out: list[Figure | Skipped] = []
    for family in _single_point_families(data):
        frame = data[data["family"] == family]
        if frame["convergence_ms"].dropna().empty:
            out.append(Skipped(f"{family}: latency", "no episode converged"))
            continue
        fig = latency_canvas(family, frame)
        out.append(
            Figure(
                f"latency-{family}",
                f"{family}: rebalance latency",
                "Each point is one episode (one group in one run); the thick bar is the median, the box the "
                "interquartile range (drawn from 5 values on). Detection is the time from the trigger to the "
                "first event any member of the group reports; convergence the time until every live member "
                "holds one newer generation and the partitions are owned completely and exactly once. "
                "✕n above a slot: n episodes that never converged (see the outcome column of the table).",
                _png(fig),
            )
        )
    return out or [Skipped(title, "only sweep scenarios in the given runs (see the sweep figures)")]


def fig_unowned(res: Results) -> Figure | Skipped:
    title = "Unowned partition-seconds per episode"
    data = res.rebalances
    if data.empty or data["unowned_partition_s"].dropna().empty:
        return Skipped(title, "no episodes in the given runs")
    data = _with_triggers(data)
    families = _single_point_families(data)
    if not families:
        return Skipped(title, "only sweep scenarios in the given runs")
    cols = 2 if len(families) > 1 else 1
    rows = math.ceil(len(families) / cols)
    fig, axes = _subplots(rows, cols, figsize=(6.2 * cols, 3.6 * rows + 0.6), squeeze=False)
    drawn: list[str] = []
    values: list[float] = []
    for ax, family in zip(axes.flat, families, strict=False):
        frame = data[data["family"] == family]
        series, panel_values = _dist_panel(ax, frame, "unowned_partition_s", 1.0)
        drawn += [s for s in series if s not in drawn]
        values += panel_values
        ax.set_title(family, fontsize=10)
    log = _use_log(values)  # one scale for every panel of the figure
    for ax in list(axes.flat)[: len(families)]:
        _y_axis(ax, log, "partition-seconds", values)
    for ax in list(axes.flat)[len(families) :]:
        ax.set_visible(False)
    _figure_legend(
        fig,
        [_series_handle(s) for s in _series_order(drawn)],
        "Partitions nobody owned, integrated over each episode",
    )
    return Figure(
        "unowned-partition-seconds",
        title,
        "Per episode, the number of the group's partitions that no live member owned, integrated from the "
        "trigger to convergence (to the next trigger when the group never converged): 2 partitions unowned for "
        "3 s count 6. A crashed member's partitions count as unowned from the crash; a paused member's from "
        "the pause until it reports again. Points are episodes, the bar the median.",
        _png(fig),
    )


def fig_latency_vs_size(res: Results) -> list[Figure | Skipped]:
    title = "Latency against group size"
    data = res.rebalances
    families = _sweep_families(data, "scenario_members") if not data.empty else []
    if not families:
        return [Skipped(title, "no scenario family with two or more group sizes (e.g. group-size-sweep)")]
    out: list[Figure | Skipped] = []
    data = _with_triggers(data)
    for family in families:
        frame = data[data["family"] == family]
        triggers = _trigger_order(frame)
        medians = {
            t: _medians(frame[frame["trigger"] == t], "scenario_members", "convergence_ms", 1e-3)
            for t in triggers
        }
        bounds = [v for m in medians.values() for v in (*m["lo"], *m["hi"])]
        log = _use_log(bounds)
        fig, axes = _subplots(1, len(triggers), figsize=(4.6 * len(triggers), 4.4), squeeze=False)
        drawn: list[str] = []
        for ax, trig in zip(axes[0], triggers, strict=True):
            drawn += [s for s in _stat_lines(ax, medians[trig]) if s not in drawn]
            _sizes_axis(ax, frame["scenario_members"].dropna(), "members in the group")
            _y_axis(ax, log, "convergence (s)", bounds)
            ax.set_title(trig, fontsize=10)
        _figure_legend(
            fig,
            [_series_handle(s) for s in _series_order(drawn)],
            f"{family}: convergence latency against group size (median, 95 % CI)",
        )
        out.append(
            Figure(
                f"latency-vs-size-{family}",
                f"{family}: latency against group size",
                "Median convergence latency over repetitions at each group size; error bars are the 95 % "
                "confidence interval of the median from order statistics (with fewer than 6 values: min to max).",
                _png(fig),
            )
        )
    return out


def fig_zk_ops_vs_size(res: Results) -> list[Figure | Skipped]:
    title = "ZooKeeper operations per rebalance against group size"
    data = res.rebalances
    families = _sweep_families(data, "scenario_members") if not data.empty else []
    if not families:
        return [Skipped(title, "no scenario family with two or more group sizes (e.g. group-size-sweep)")]
    if data["zk_reads"].dropna().empty:
        return [Skipped(title, "the runs have no ZooKeeper samples")]
    data = _with_triggers(data)
    out: list[Figure | Skipped] = []
    metrics = (("zk_reads", "reads"), ("zk_writes", "writes (znode changes)"))
    for family in families:
        frame = data[data["family"] == family]
        triggers = _trigger_order(frame)
        fig, axes = _subplots(2, len(triggers), figsize=(4.6 * len(triggers), 8), squeeze=False)
        zeros: set[str] = set()
        drawn: list[str] = []
        expected: dict[str, Any] = {}
        for col, trig in enumerate(triggers):
            sub = frame[frame["trigger"] == trig]
            for row, (metric, label) in enumerate(metrics):
                ax = axes[row][col]
                for s, values in sub.groupby("series")[metric]:
                    if values.dropna().eq(0).all():
                        zeros.add(f"{s} ({label.split()[0]})")
                medians = _medians(sub[sub[metric] > 0], "scenario_members", metric)
                drawn += [s for s in _stat_lines(ax, medians) if s not in drawn]
                if row == 0 and sub["action"].iloc[0] in SINGLE_CHANGES:
                    for s, (formula, shape) in EXPECTED_READS.items():
                        m = medians[medians["series"] == s].sort_values("x")
                        if len(m) < 2:
                            continue
                        # Anchored at the largest group, where the leading term dominates.
                        n_max, at_max = m["x"].iloc[-1], m["median"].iloc[-1]
                        grid = np.geomspace(m["x"].iloc[0], n_max, 50)
                        ax.plot(
                            grid,
                            at_max * shape(grid) / shape(np.array(n_max)),
                            ls="--",
                            lw=1.2,
                            color=_color(s),
                        )
                        expected[s] = Line2D(
                            [], [], ls="--", color=_color(s), label=f"{s} expected {formula}"
                        )
                _sizes_axis(ax, frame["scenario_members"].dropna(), "members in the group")
                if not medians.empty:
                    ax.set_yscale("log")
                    _plain_log_ticks(ax.yaxis)
                ax.set_ylabel(f"ZooKeeper {label}, log scale")
                ax.grid(True, axis="y", which="both", alpha=0.3)
                ax.set_title(f"{trig}: {label.split()[0]}", fontsize=10)
        handles = [_series_handle(s) for s in _series_order(drawn)] + [
            expected[s] for s in _series_order(list(expected))
        ]
        _figure_legend(
            fig, handles, f"{family}: ZooKeeper operations per rebalance against group size (median, 95 % CI)"
        )
        zero_note = (
            " Zero at every size, so not drawable on log axes: " + ", ".join(sorted(zeros)) + "."
            if zeros
            else ""
        )
        out.append(
            Figure(
                f"zk-ops-vs-size-{family}",
                f"{family}: ZooKeeper operations per rebalance against group size",
                "Solid: measured reads (top) and znode changes (bottom) in each mode's namespace (zk members "
                "under /zkmode, coordinator-mode brokers under /kafka) between the mntr readings that bracket "
                "the episode; pings are not counted. Dashed: the analytic growth per membership change, drawn "
                "through the measurement at the largest group, so compare slopes: chain ∝ N (only the leader "
                "watches and reads the membership), herd ∝ N² (all N members are notified and each reads all "
                "N registrations), selfbalance ∝ N² (Kafka 0.8: every consumer reads about N + B + T + 5 "
                "znodes, so about N·(N + B + T + 5) + P reads per rebalance for B brokers, T topics and P "
                "partitions, as Kafka 0.8's ZookeeperConsumerConnector rebalances). No formula is drawn for setpartitioner."
                + zero_note,
                _png(fig),
            )
        )
    return out


def fig_steady(res: Results) -> Figure | Skipped:
    title = "Steady-state ZooKeeper load against members"
    zk = res.zk
    steady = zk[zk["kind"] == "steady"] if not zk.empty else zk
    if steady.empty:
        return Skipped(
            title, "no steady window (2 s without actions, every group converged) with mntr readings"
        )
    steady = steady.assign(
        series=steady["mode"].astype(str) + "/" + steady["variant"].astype(str),
        all_per_s=steady["reads_incl_pings"] / steady["duration_s"],
        ns_per_s=(steady["reads"] + steady["writes"]) / steady["duration_s"],
    )
    fig, axes = _subplots(1, 2, figsize=(12, 4.4))
    drawn: list[str] = []
    panels = (
        ("all_per_s", "requests incl. pings per second", "background: pings and session upkeep"),
        (
            "ns_per_s",
            "namespace reads + writes per second",
            "polling: namespace requests while nothing changes",
        ),
    )
    for ax, (col, label, heading) in zip(axes, panels, strict=True):
        medians = _medians(steady, "members", col)
        drawn += [s for s in _stat_lines(ax, medians) if s not in drawn]
        _sizes_axis(ax, steady["members"].dropna(), "live members")
        _y_axis(ax, False, label)
        top = max(1.0, 1.15 * float(medians["hi"].max()))
        ax.set_ylim(-0.03 * top, top)  # zeros stay visible above the axis, and read as zero
        ax.set_title(heading, fontsize=10)
    _figure_legend(
        fig,
        [_series_handle(s) for s in _series_order(drawn)],
        "ZooKeeper load with nothing happening (median over steady windows, 95 % CI)",
    )
    return Figure(
        "steady-zk-load",
        title,
        "Rates over steady windows: no action in progress and every group converged, starting 1 s after the "
        "last event and lasting at least 2 s. Left: all requests without a transaction, including each "
        "session's pings (kazoo pings after about a third of the session timeout; coordinator mode keeps only "
        "the brokers' sessions). Right: reads and writes in the mode's namespace, which exclude pings; above "
        "zero means a design polls ZooKeeper while idle.",
        _png(fig),
    )


def fig_latency_vs_rtt(res: Results) -> list[Figure | Skipped]:
    title = "Latency against injected round-trip time"
    data = res.rebalances
    families = _sweep_families(data, "rtt_ms") if not data.empty else []
    if not families:
        return [
            Skipped(title, "no scenario family with two or more injected round-trip times (e.g. rtt-sweep)")
        ]
    data = _with_triggers(data)
    out: list[Figure | Skipped] = []
    for family in families:
        frame = data[data["family"] == family]
        triggers = [
            t for t in _trigger_order(frame) if frame[frame["trigger"] == t]["convergence_ms"].notna().any()
        ]
        fig, axes = _subplots(1, len(triggers), figsize=(4.6 * len(triggers), 4.4), squeeze=False)
        drawn: list[str] = []
        for ax, trig in zip(axes[0], triggers, strict=True):
            medians = _medians(frame[frame["trigger"] == trig], "rtt_ms", "convergence_ms", 1e-3)
            drawn += [s for s in _stat_lines(ax, medians) if s not in drawn]
            ax.set_xlabel("added round-trip time (ms)")
            ax.set_xticks(sorted(frame["rtt_ms"].dropna().unique()))
            ax.set_xlim(left=-0.5)
            _y_axis(ax, False, "convergence (s)")  # linear: k round trips per rebalance show as slope k
            ax.set_title(trig, fontsize=10)
        _figure_legend(
            fig,
            [_series_handle(s) for s in _series_order(drawn)],
            f"{family}: convergence latency against injected round-trip time (median, 95 % CI)",
        )
        out.append(
            Figure(
                f"latency-vs-rtt-{family}",
                f"{family}: latency against round-trip time",
                "Round-trip time added by the harness's TCP proxy between the members and ZooKeeper or the "
                "brokers (half each way). A design that needs k sequential round trips per rebalance rises "
                "by k ms per added ms.",
                _png(fig),
            )
        )
    return out


def fig_comparison(res: Results) -> Figure | Skipped:
    title = "Comparison of several result sets"
    data = res.rebalances
    sources = sorted(data["source"].unique()) if not data.empty else []
    if len(sources) < 2:
        return Skipped(title, "one result directory given; pass several to compare them side by side")
    data = _with_triggers(data)
    data = data[data["family"].isin(_single_point_families(data))]
    keys = (
        data.dropna(subset=["convergence_ms"])
        .groupby(["family", "trigger", "series"])
        .size()
        .reset_index()[["family", "trigger", "series"]]
    )
    if keys.empty:
        return Skipped(title, "no converged episodes outside sweeps")
    fig, ax = _subplots(1, 1, figsize=(10, 0.3 * len(keys) + 1.6))
    offsets = np.linspace(-0.25, 0.25, len(sources))
    markers = ("o", "s", "^", "D", "v", "P")
    for i, row in enumerate(keys.itertuples(index=False)):
        if i and row.family != keys["family"].iloc[i - 1]:
            ax.axhline(i - 0.5, color="#bbbbbb", lw=0.8)  # separates scenarios
        for k, source in enumerate(sources):
            sel = data[
                (data["family"] == row.family)
                & (data["trigger"] == row.trigger)
                & (data["series"] == row.series)
                & (data["source"] == source)
            ]
            st = describe((sel["convergence_ms"] / 1e3).tolist())
            if not st.n:
                continue
            ax.errorbar(
                st.median,
                i + offsets[k],
                xerr=[[st.median - st.ci_low], [st.ci_high - st.median]],
                fmt=markers[k % len(markers)],
                color=_color(row.series),
                mfc="white" if st.warnings else _color(row.series),
                capsize=2,
                markersize=5,
            )
    ax.set_yticks(
        range(len(keys)), [f"{r.family} · {r.trigger} · {r.series}" for r in keys.itertuples()], fontsize=7
    )
    ax.invert_yaxis()
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("convergence latency (s, log scale): median and 95 % CI")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    handles = [
        Line2D([], [], marker=markers[k % len(markers)], color="gray", lw=0, label=src)
        for k, src in enumerate(sources)
    ]
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            mfc="white",
            color="gray",
            lw=0,
            label="with warnings (few or disagreeing values)",
        )
    )
    _figure_legend(fig, handles, "Convergence latency per result set")
    return Figure(
        "comparison",
        title,
        "One marker per result directory given to the report, for every scenario, trigger and mode/variant "
        "(colour as in the other figures); hollow markers have warnings (fewer than 5 values or runs that "
        "disagree, CV above 25 %).",
        _png(fig),
    )


def all_figures(res: Results) -> list[Figure | Skipped]:
    out: list[Figure | Skipped] = []
    out += fig_latency(res)
    out.append(fig_unowned(res))
    out += fig_latency_vs_size(res)
    out += fig_zk_ops_vs_size(res)
    out.append(fig_steady(res))
    out += fig_latency_vs_rtt(res)
    out.append(fig_comparison(res))
    return out


# -- tables ----------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.0f}"


def summary_table(res: Results) -> pd.DataFrame:
    """Per scenario, trigger and mode/variant: medians with CIs, outcomes and warnings."""
    if res.rebalances.empty:
        return pd.DataFrame()
    data = _with_triggers(res.rebalances)
    rows = []
    for (scenario, trigger, series), frame in data.groupby(["scenario", "trigger", "series"], sort=False):
        q = QUANTITIES
        conv = describe((frame["convergence_ms"] * q["convergence_ms"].scale).tolist())
        det = describe((frame["detection_ms"] * q["detection_ms"].scale).tolist())
        warns = sorted({w for st in (conv, det) for w in st.warnings if st.n})
        outcomes = frame["outcome"].value_counts()
        joins = frame["join_ms_median"].notna().any() if "join_ms_median" in frame else False
        rows.append(
            {
                "scenario": scenario,
                "trigger": trigger,
                "mode/variant": series,
                "runs": frame["run_id"].nunique(),
                "not completed": frame.loc[frame["run_state"] != RunState.COMPLETED, "run_id"].nunique()
                if "run_state" in frame
                else 0,
                "episodes": len(frame),
                "converged": f"{outcomes.get('converged', 0)}/{len(frame)}",
                q["detection_ms"].header: _fmt(det.median),
                f"{q['convergence_ms'].header} [95% CI]": f"{_fmt(conv.median)} [{_fmt(conv.ci_low)}, "
                f"{_fmt(conv.ci_high)}]"
                if conv.n
                else "–",
                q["unowned_partition_s"].header: q["unowned_partition_s"].format(
                    frame["unowned_partition_s"].median()
                ),
                # per joining member, join start -> first assignment (median, max), and first join
                # out -> all of them assigned (span): medians over episodes, the max's max
                q["join_ms"].header: " / ".join(
                    q["join_ms"].format(v)
                    for v in (
                        frame["join_ms_median"].median(),
                        frame["join_ms_max"].max(),
                        frame["join_span_ms"].median(),
                    )
                )
                if joins
                else "–",
                **{
                    q[c].header: q[c].format(frame[c].median())
                    for c in ("zk_reads", "zk_writes", "broker_requests")
                },
                "warnings": "; ".join(warns),
                "_order": frame["step"].min(),
            }
        )
    table = pd.DataFrame(rows)
    if not res.include_failed:
        table = table.drop(columns="not completed")
    table["_series"] = table["mode/variant"].map(lambda s: _series_order(list(SERIES_ORDER) + [s]).index(s))
    return table.sort_values(["scenario", "_order", "trigger", "_series"]).drop(columns=["_order", "_series"])


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    return "<p><em>none</em></p>" if frame.empty else frame.to_html(index=False, escape=True, border=0)


# -- documents -------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
figure { margin: 1.5em 0 2.5em; } figure img { max-width: 100%; }
figcaption { font-size: 13px; color: #444; max-width: 1000px; }
.fail { background: #fdecea; border-left: 4px solid #c62828; padding: 0.6em 1em; }
.pass { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: 0.6em 1em; }
.skipped { color: #666; font-size: 13px; }
details summary { cursor: pointer; color: #444; margin: 0.3em 0; }
"""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    figures: tuple[Path, ...]


@dataclass
class _Document:
    """Builds the Markdown and the HTML version side by side, from the same calls."""

    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.md.append(f"\n{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str | None = None) -> None:
        self.md.append(f"{text}\n")
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{html.escape(text).replace('**', '')}</p>")

    def table(self, frame: pd.DataFrame, folded: str | None = None) -> None:
        """A table; ``folded`` puts it behind a summary line in HTML (long lists)."""
        self.md.append((f"**{folded}:**\n\n" if folded else "") + _md_table(frame))
        table = _html_table(frame)
        self.html.append(
            f"<details><summary>{html.escape(folded)}</summary>{table}</details>" if folded else table
        )

    def figure(self, fig: Figure, path: Path) -> None:
        self.md.append(f"### {fig.title}\n\n![{fig.title}](figures/{path.name})\n\n{fig.caption}\n")
        b64 = base64.b64encode(fig.png).decode("ascii")
        self.html.append(
            f'<figure><h3>{html.escape(fig.title)}</h3><img alt="{html.escape(fig.title)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(fig.caption)}</figcaption></figure>'
        )

    def bullets(self, items: Sequence[str], css: str | None = None) -> None:
        self.md.append("".join(f"- {i}\n" for i in items))
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<ul{cls}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def write(self, md_path: Path, html_path: Path) -> None:
        md_path.write_text("\n".join(self.md))
        html_path.write_text(
            '<!doctype html><html><head><meta charset="utf-8"><title>rebalance-lab report</title>'
            f"<style>{_CSS}</style></head><body>{''.join(self.html)}</body></html>\n"
        )


def _failure_overview(failures: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (scenario, series, check), frame in failures.groupby(
        ["scenario", "mode/variant", "check"], sort=True
    ):
        rows.append(
            {
                "scenario": scenario,
                "mode/variant": series,
                "check": check,
                "failures": len(frame),
                "runs": frame["run"].nunique(),
                "example": frame["message"].iloc[0],
            }
        )
    return pd.DataFrame(rows)


def _incomplete_section(doc: _Document, res: Results) -> None:
    """First in the report: runs whose numbers are no measurement, and whether they were left out."""
    doc.heading(2, "Runs that did not complete")
    kept = (
        "They are INCLUDED in the figures and statistics below (--include-failed); the summary's "
        "'not completed' column counts them per row."
        if res.include_failed
        else "Their numbers are left out of every figure, statistic and check below "
        "(rebalance-lab report --include-failed takes them in)."
    )
    doc.para(f"**{_plural(len(res.incomplete), 'run')} failed or aborted.** {kept}", css="fail")
    rows = [
        {
            "run": s["run_id"],
            "scenario": s["scenario"],
            "mode/variant": f"{s['mode']}/{s['variant']}",
            "status": s["status"]["state"],
            "reason": s["status"]["reason"],
        }
        for s in res.incomplete
    ]
    doc.table(pd.DataFrame(rows))


def _checks_section(doc: _Document, res: Results) -> None:
    doc.heading(2, "Checks")
    failures = res.failures
    if not res.summaries:
        doc.para("**No completed run: nothing was measured or checked.**", css="fail")
    elif failures.empty:
        checked = _plural(len(res.summaries), "run") + (
            " (failed ones included)" if res.include_failed else ""
        )
        doc.para(
            f"**All {checked} passed the checks**: no partition owned twice, every partition owned "
            "whenever a group was stable, at most one leader per generation, no committed offset lost.",
            css="pass",
        )
    else:
        doc.para(
            f"**FAILED: {len(failures)} check failure(s) in {failures['run'].nunique()} run(s).**", css="fail"
        )
        doc.table(_failure_overview(failures))
        doc.table(failures, folded=f"All {len(failures)} failures")


def write_report(res: Results, out: Path) -> ReportFiles:
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    items = all_figures(res)
    figures = [f for f in items if isinstance(f, Figure)]
    skipped = [f for f in items if isinstance(f, Skipped)]
    paths = []
    for f in figures:
        path = fig_dir / f"{f.name}.png"
        path.write_bytes(f.png)
        paths.append(path)

    doc = _Document()
    data = res.rebalances
    scenarios = sorted(data["scenario"].unique()) if not data.empty else []
    series = _series_order(list(data["series"].unique())) if not data.empty else []
    doc.heading(1, "rebalance-lab report")
    not_completed = f", {len(res.incomplete)} failed or aborted" if res.incomplete else ""
    doc.para(
        f"{_plural(res.completed, 'completed run')}{not_completed} from {', '.join(str(r) for r in res.roots)}; "
        f"{len(scenarios)} scenario(s) measured; modes/variants: {', '.join(series) or 'none'}. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}."
    )
    if res.incomplete:
        _incomplete_section(doc, res)
    _checks_section(doc, res)

    doc.heading(2, "Figures")
    for f, path in zip(figures, paths, strict=True):
        doc.figure(f, path)
    if skipped:
        doc.heading(3, "Not drawn")
        doc.bullets([f"{s.title}: {s.reason}" for s in skipped], css="skipped")

    table = summary_table(res)
    doc.heading(2, "Summary")
    doc.para(
        "Medians over episodes (runs × groups); the 95 % CI is the median's, from order statistics. "
        "Warnings mark numbers to distrust. Column definitions: the README of rebalance-lab, section 'Results'."
    )
    if table.empty:
        doc.para("No episodes.")
    else:
        points = table["scenario"].isin(data.loc[data["scenario"] != data["family"], "scenario"])
        doc.table(table[~points])
        if points.any():
            doc.heading(3, "Sweep points")
            doc.table(
                table[points], folded=f"{int(points.sum())} rows, one per sweep point, trigger and mode"
            )

    kept = res.summaries + ([] if res.include_failed else res.incomplete)
    problems = [f"{s['run_id']}: {p}" for s in kept for p in s.get("problems", [])]
    if problems:
        doc.heading(2, "Problems reading the runs")
        doc.bullets(problems)
    harness = [f"{s['run_id']}: {p}" for s in kept for p in s.get("harness_problems", [])]
    if harness:
        doc.heading(2, "Harness problems")
        doc.para(
            "What the harness got wrong, apart from the designs' checks: each escalation is recorded "
            "as a kill at the moment it happened, so the checks above count those members dead from then on."
        )
        doc.bullets(harness)
    files = ReportFiles(out / "report.html", out / "report.md", tuple(paths))
    doc.write(files.markdown, files.html)
    return files


def build_report(dirs: Sequence[Path], out: Path, include_failed: bool = False) -> ReportFiles:
    return write_report(load_results(dirs, include_failed), out)


#: Exit code of ``report`` when there is nothing to report (as for a usage error).
EXIT_NO_RUNS = 2


@click.command("report")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write report.html, report.md and figures/ (default: DIR/report for the first DIR).",
)
@click.option(
    "--include-failed",
    is_flag=True,
    help="Count failed and aborted runs in the figures and statistics too (they are always listed first).",
)
def report(dirs: tuple[Path, ...], out: Path | None, include_failed: bool) -> None:
    """Build an HTML and a Markdown report from every run directory below DIRS.

    Exits 0 once the report is written (whatever the runs say: the report puts failures first),
    2 when there is no run directory below DIRS.
    """
    if not find_runs(dirs):
        error = click.ClickException(
            f"no run directories (with events.jsonl) below {', '.join(map(str, dirs))}"
        )
        error.exit_code = EXIT_NO_RUNS
        raise error
    files = build_report(dirs, out or dirs[0] / "report", include_failed)
    click.echo(f"report: {files.html}\nmarkdown: {files.markdown} ({len(files.figures)} figures)")

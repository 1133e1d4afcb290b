"""The report's look, shared by every figure: series colours and markers, trigger labels, axes
(log or linear, readable ticks), legends and the distribution panel.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure as Canvas
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from bench.analysis.metrics.stats import describe
from bench.experiment.actions import ACTIONS

log = logging.getLogger(__name__)
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
#: Labels of what opens an episode that is not an action of the table (the run's own start).
TRIGGER_NAMES = {"run_start": "cold start"}


# -- helpers ---------------------------------------------------------------------------------------


def series_order(names: Sequence[str]) -> list[str]:
    known = [s for s in SERIES_ORDER if s in names]
    return known + sorted(set(names) - set(known))


def series_color(series: str) -> str:
    if series in COLORS:
        return COLORS[series]
    return _EXTRA_COLORS[hash(series) % len(_EXTRA_COLORS)]


def trigger_label(action: str, phase: str, first_start: bool) -> str:
    """An episode's trigger as the report names it: the action's label from the actions table."""
    if action == "start_members" and first_start:
        return "cold start"
    spec = ACTIONS.get(action)
    if spec is not None:
        return spec.end_label if phase == "end" and spec.end_label else spec.label
    return TRIGGER_NAMES.get(action, action.replace("_", " "))


def with_triggers(frame: pd.DataFrame) -> pd.DataFrame:
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


def trigger_order(frame: pd.DataFrame) -> list[str]:
    order = frame.sort_values(["step", "phase"], ascending=[True, False]).drop_duplicates("trigger")
    return list(order["trigger"])


def new_canvas(
    rows: int, cols: int, figsize: tuple[float, float], squeeze: bool = True
) -> tuple[Canvas, Any]:
    """A figure of its own (no pyplot state: nothing global, nothing to close, no display needed)."""
    fig = Canvas(figsize=figsize, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def png_bytes(fig: Canvas) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def use_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and len(positive) == len(values) and max(positive) / min(positive) > 20


def plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1-2-5 steps labelled as plain numbers (0.2, 1, 50), not powers of ten."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))

    # Under a decade the 1-2-5 ticks are too few: label the minor ticks too then, as plain numbers.
    def minor(v: float, _: int) -> str:
        low, high = sorted(axis.get_view_interval())
        return f"{v:g}" if low > 0 and high / low < 10 else ""

    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def log_limits(values: Sequence[float]) -> tuple[float, float]:
    """The 1-2-5 steps just below and above the positive values: a labelled tick under the smallest
    value and above the largest, so every value can be read off the axis."""
    positive = [v for v in values if v > 0]
    low, high = min(positive) / 1.05, max(positive) * 1.05  # a little room: no point on the frame
    exp_low, exp_high = math.floor(math.log10(low)), math.floor(math.log10(high))
    below = max(m * 10.0**exp_low for m in (1, 2, 5) if m * 10.0**exp_low <= low)
    above = min(m * 10.0**exp_high for m in (1, 2, 5, 10) if m * 10.0**exp_high >= high)
    return below, above


def y_axis(ax: Axes, log: bool, label: str, values: Sequence[float] = ()) -> None:
    """One y axis; with ``log`` and the values drawn, its limits are :func:`log_limits`."""
    if log:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
        if any(v > 0 for v in values):
            ax.set_ylim(*log_limits(values))
        ax.set_ylabel(f"{label}, log scale")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel(label)
    ax.grid(True, axis="y", which="both", alpha=0.3)


def sizes_axis(ax: Axes, sizes: Sequence[float], label: str) -> None:
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


def sweep_families(frame: pd.DataFrame, column: str) -> list[str]:
    if frame.empty or column not in frame:
        return []
    counts = frame.groupby("family")[column].nunique()
    return sorted(counts[counts >= 2].index)


def single_point_families(frame: pd.DataFrame) -> list[str]:
    counts = frame.groupby("family")["scenario"].nunique()
    return sorted(counts[counts == 1].index)


def series_handle(series: str) -> Any:
    return Line2D(
        [],
        [],
        color=series_color(series),
        marker=MARKERS.get(series, "o"),
        lw=1.4,
        markersize=6,
        label=series,
    )


def figure_legend(fig: Canvas, handles: Sequence[Any], title: str) -> None:
    """One title above all panels and one legend below them."""
    fig.suptitle(title, fontsize=12)
    if handles:
        ncol = len(handles) if len(handles) <= 6 else math.ceil(len(handles) / 2)
        fig.legend(handles=list(handles), loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def dist_panel(ax: Axes, data: pd.DataFrame, column: str, scale: float) -> tuple[list[str], list[float]]:
    """Points per episode, a bar at the median, a box (IQR) from 5 values on; episodes without a value
    (e.g. never converged) are counted above their slot as "✕n". Returns the series drawn and values."""
    triggers = trigger_order(data)
    series = series_order(list(data["series"].unique()))
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
                    color=series_color(s),
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
                    Rectangle(
                        (x - width * 0.4, q1), width * 0.8, q3 - q1, fill=False, ec=series_color(s), lw=1
                    )
                )
            ax.scatter(
                x + rng.uniform(-width * 0.25, width * 0.25, len(vals)),
                vals,
                s=20,
                color=series_color(s),
                marker=MARKERS.get(s, "o"),
                alpha=0.6,
                lw=0,
                zorder=3,  # in front of the median bar, which would hide a single value
            )
            ax.hlines(
                np.median(vals), x - width * 0.45, x + width * 0.45, color=series_color(s), lw=2.4, zorder=2
            )
            if s not in drawn:
                drawn.append(s)
    ax.set_xticks(range(len(triggers)), triggers, rotation=15 if len(triggers) > 4 else 0)
    ax.set_xlim(-0.6, len(triggers) - 0.4)
    return drawn, values_all


def medians_by(data: pd.DataFrame, x: str, y: str, scale: float = 1.0) -> pd.DataFrame:
    """Median of ``y`` per series and ``x`` value, with the median's 95 % CI."""
    rows = []
    for (s, xv), frame in data.groupby(["series", x]):
        st = describe((frame[y] * scale).tolist())
        if st.n:
            rows.append({"series": s, "x": float(xv), "median": st.median, "lo": st.ci_low, "hi": st.ci_high})
    return pd.DataFrame(rows, columns=["series", "x", "median", "lo", "hi"])


def stat_lines(ax: Axes, medians: pd.DataFrame) -> list[str]:
    """One line per series through the medians, the CI as error bars; returns the series drawn."""
    drawn = []
    for s in series_order(list(medians["series"].unique())):
        m = medians[medians["series"] == s].sort_values("x")
        ax.errorbar(
            m["x"],
            m["median"],
            yerr=[m["median"] - m["lo"], m["hi"] - m["median"]],
            color=series_color(s),
            marker=MARKERS.get(s, "o"),
            markersize=5,
            capsize=3,
            lw=1.4,
        )
        drawn.append(s)
    return drawn

"""The report's figures, one function each; a figure without data in the given runs is a
:class:`Skipped` saying why, never drawn empty.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as Canvas
from matplotlib.lines import Line2D

from bench.analysis.metrics.stats import describe
from bench.analysis.report.load import Results
from bench.analysis.report.style import (
    dist_panel,
    figure_legend,
    medians_by,
    new_canvas,
    plain_log_ticks,
    plural,
    png_bytes,
    series_color,
    series_handle,
    series_order,
    single_point_families,
    sizes_axis,
    stat_lines,
    sweep_families,
    trigger_order,
    use_log,
    with_triggers,
    y_axis,
)
from bench.analysis.report.tables import QUANTITIES, ledger_costs
from bench.experiment.actions import ACTIONS
from bench.model import Workload, predict

log = logging.getLogger(__name__)
#: Actions that change membership by one member (a sweep's points compare one such change).
SINGLE_CHANGES = tuple(str(a) for a, spec in ACTIONS.items() if spec.single_change)
#: The cost model's joins (bench.model) drawn beside the measured ones: series -> zk variant.
MODELLED_JOINS = {"zk/chain": "chain", "zk/herd": "herd", "zk/selfbalance": "selfbalance"}


def model_curve(variant: str, sizes: np.ndarray, partitions: int, metric: str) -> np.ndarray:
    """The model's reads or writes of one join per group size (the middle of a racing interval)."""
    out = []
    for n in sizes:
        p = predict("zk", variant, "join", Workload(members=int(n), partitions=partitions, commits=True))
        out.append((p.zk_reads if metric == "zk_reads" else p.zk_writes).mid)
    return np.array(out)


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


# -- figures ---------------------------------------------------------------------------------------


def latency_canvas(family: str, frame: pd.DataFrame) -> Canvas:
    """Detection and convergence of one scenario's episodes (``frame`` with triggers), side by side."""
    fig, axes = new_canvas(1, 2, figsize=(12, 4.4))
    drawn, detections = dist_panel(axes[0], frame, "detection_ms", 1e-3)
    _, convergences = dist_panel(axes[1], frame, "convergence_ms", 1e-3)
    values = detections + convergences
    log = use_log(values)  # one scale for both panels, or they could not be compared
    detection, convergence = QUANTITIES["detection_ms"], QUANTITIES["convergence_ms"]
    y_axis(axes[0], log, f"trigger → first member event ({detection.unit})", values)
    y_axis(axes[1], log, f"trigger → converged ({convergence.unit})", values)
    axes[0].set_title(detection.name, fontsize=10)
    axes[1].set_title(f"{convergence.name}: one newer generation, every partition owned once", fontsize=10)
    figure_legend(
        fig,
        [series_handle(s) for s in drawn],
        f"{family}: rebalance latency by mode/variant ({plural(frame['run_id'].nunique(), 'run')})",
    )
    return fig


def fig_latency(res: Results) -> list[Figure | Skipped]:
    title = "Time to react and to converge, per scenario"
    data = res.rebalances
    if data.empty or data["convergence_ms"].dropna().empty:
        return [Skipped(title, "no episode converged in the given runs")]
    data = with_triggers(data)
    out: list[Figure | Skipped] = []
    for family in single_point_families(data):
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
                png_bytes(fig),
            )
        )
    return out or [Skipped(title, "only sweep scenarios in the given runs (see the sweep figures)")]


def fig_unowned(res: Results) -> Figure | Skipped:
    title = "Unowned partition-seconds per episode"
    data = res.rebalances
    if data.empty or data["unowned_partition_s"].dropna().empty:
        return Skipped(title, "no episodes in the given runs")
    data = with_triggers(data)
    families = single_point_families(data)
    if not families:
        return Skipped(title, "only sweep scenarios in the given runs")
    cols = 2 if len(families) > 1 else 1
    rows = math.ceil(len(families) / cols)
    fig, axes = new_canvas(rows, cols, figsize=(6.2 * cols, 3.6 * rows + 0.6), squeeze=False)
    drawn: list[str] = []
    values: list[float] = []
    for ax, family in zip(axes.flat, families, strict=False):
        frame = data[data["family"] == family]
        series, panel_values = dist_panel(ax, frame, "unowned_partition_s", 1.0)
        drawn += [s for s in series if s not in drawn]
        values += panel_values
        ax.set_title(family, fontsize=10)
    log = use_log(values)  # one scale for every panel of the figure
    for ax in list(axes.flat)[: len(families)]:
        y_axis(ax, log, "partition-seconds", values)
    for ax in list(axes.flat)[len(families) :]:
        ax.set_visible(False)
    figure_legend(
        fig,
        [series_handle(s) for s in series_order(drawn)],
        "Partitions nobody owned, integrated over each episode",
    )
    return Figure(
        "unowned-partition-seconds",
        title,
        "Per episode, the number of the group's partitions that no live member owned, integrated from the "
        "trigger to convergence (to the next trigger when the group never converged): 2 partitions unowned for "
        "3 s count 6. A crashed member's partitions count as unowned from the crash; a paused member's from "
        "the pause until it reports again. Points are episodes, the bar the median.",
        png_bytes(fig),
    )


def fig_latency_vs_size(res: Results) -> list[Figure | Skipped]:
    title = "Latency against group size"
    data = res.rebalances
    families = sweep_families(data, "scenario_members") if not data.empty else []
    if not families:
        return [Skipped(title, "no scenario family with two or more group sizes (e.g. group-size-sweep)")]
    out: list[Figure | Skipped] = []
    data = with_triggers(data)
    for family in families:
        frame = data[data["family"] == family]
        triggers = trigger_order(frame)
        medians = {
            t: medians_by(frame[frame["trigger"] == t], "scenario_members", "convergence_ms", 1e-3)
            for t in triggers
        }
        bounds = [v for m in medians.values() for v in (*m["lo"], *m["hi"])]
        log = use_log(bounds)
        fig, axes = new_canvas(1, len(triggers), figsize=(4.6 * len(triggers), 4.4), squeeze=False)
        drawn: list[str] = []
        for ax, trig in zip(axes[0], triggers, strict=True):
            drawn += [s for s in stat_lines(ax, medians[trig]) if s not in drawn]
            sizes_axis(ax, frame["scenario_members"].dropna(), "members in the group")
            y_axis(ax, log, "convergence (s)", bounds)
            ax.set_title(trig, fontsize=10)
        figure_legend(
            fig,
            [series_handle(s) for s in series_order(drawn)],
            f"{family}: convergence latency against group size (median, 95 % CI)",
        )
        out.append(
            Figure(
                f"latency-vs-size-{family}",
                f"{family}: latency against group size",
                "Median convergence latency over repetitions at each group size; error bars are the 95 % "
                "confidence interval of the median from order statistics (with fewer than 6 values: min to max).",
                png_bytes(fig),
            )
        )
    return out


def fig_zk_ops_vs_size(res: Results) -> list[Figure | Skipped]:
    """One figure per sweep family: reads and writes per rebalance against N, with the cost
    model's curves on joins. Long (80 lines) because it is one figure's layout, read top to bottom: data,
    panels, guides, caption; pieces of it would only be called from here."""
    title = "ZooKeeper operations per rebalance against group size"
    data = res.rebalances
    families = sweep_families(data, "scenario_members") if not data.empty else []
    if not families:
        return [Skipped(title, "no scenario family with two or more group sizes (e.g. group-size-sweep)")]
    if data["zk_reads"].dropna().empty:
        return [Skipped(title, "the runs have no ZooKeeper samples")]
    data = with_triggers(data)
    out: list[Figure | Skipped] = []
    metrics = (("zk_reads", "reads"), ("zk_writes", "writes (znode changes)"))
    for family in families:
        frame = data[data["family"] == family]
        triggers = trigger_order(frame)
        fig, axes = new_canvas(2, len(triggers), figsize=(4.6 * len(triggers), 8), squeeze=False)
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
                medians = medians_by(sub[sub[metric] > 0], "scenario_members", metric)
                drawn += [s for s in stat_lines(ax, medians) if s not in drawn]
                if sub["action"].iloc[0] == "add_members":
                    partitions = int(sub["partitions"].dropna().iloc[0])
                    for s, variant in MODELLED_JOINS.items():
                        m = medians[medians["series"] == s].sort_values("x")
                        if len(m) < 2:
                            continue
                        grid = np.unique(np.geomspace(m["x"].iloc[0], m["x"].iloc[-1], 30).round())
                        ax.plot(
                            grid,
                            model_curve(variant, grid, partitions, metric),
                            ls="--",
                            lw=1.2,
                            color=series_color(s),
                        )
                        expected[s] = Line2D([], [], ls="--", color=series_color(s), label=f"{s} model")
                sizes_axis(ax, frame["scenario_members"].dropna(), "members in the group")
                if not medians.empty:
                    ax.set_yscale("log")
                    plain_log_ticks(ax.yaxis)
                ax.set_ylabel(f"ZooKeeper {label}, log scale")
                ax.grid(True, axis="y", which="both", alpha=0.3)
                ax.set_title(f"{trig}: {label.split()[0]}", fontsize=10)
        handles = [series_handle(s) for s in series_order(drawn)] + [
            expected[s] for s in series_order(list(expected))
        ]
        figure_legend(
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
                "the episode; pings are not counted. Dashed, on joins: the cost model's prediction "
                "(bench.model, commits on, the assignor's moves at each size; the middle of its interval where "
                "claims race), counted on the members' calls: chain N + T + 6 + M reads, herd N² + 2N + T + 2 + M, "
                "selfbalance T + N(N + 1) (Kafka 0.8: every consumer reads every registration), plus one read "
                "and one write per moved partition for the offsets. The server counts reads of existing "
                "znodes only, so measured may sit a little below." + zero_note,
                png_bytes(fig),
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
    fig, axes = new_canvas(1, 2, figsize=(12, 4.4))
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
        medians = medians_by(steady, "members", col)
        drawn += [s for s in stat_lines(ax, medians) if s not in drawn]
        sizes_axis(ax, steady["members"].dropna(), "live members")
        y_axis(ax, False, label)
        top = max(1.0, 1.15 * float(medians["hi"].max()))
        ax.set_ylim(-0.03 * top, top)  # zeros stay visible above the axis, and read as zero
        ax.set_title(heading, fontsize=10)
    figure_legend(
        fig,
        [series_handle(s) for s in series_order(drawn)],
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
        png_bytes(fig),
    )


#: The ledger's panels: (cost, axis label); bytes are in and out together.
LEDGER_PANELS = (
    ("requests", "requests served"),
    ("bytes", "bytes in + out"),
    ("durable_writes", "durable writes"),
    ("fsyncs", "fsyncs"),
    ("replication_messages", "replication messages"),
)


def fig_ledger(res: Results) -> Figure | Skipped:
    """Both designs on one ledger against the group's size: requests, bytes, durable writes, fsyncs
    and replication of every coordination service summed, per rebalance (episodes) and per idle
    second (steady windows). With a group-size sweep among the runs (``demo-sweep``,
    ``group-size-sweep``), the rebalances drawn are its one-member changes, so that each size shows
    the same rebalance; without one, every episode is drawn at its group size."""
    title = "Coordination cost on one ledger: per rebalance and per idle second"
    if res.ledger.empty or "service" not in res.ledger:
        return Skipped(title, "no coordination_load.csv rows in the runs")
    episodes, steady = ledger_costs(res.ledger)
    sweeps = sweep_families(episodes, "scenario_members")
    what = "every episode at its group size"
    if sweeps:
        episodes = episodes[episodes["family"].isin(sweeps) & episodes["action"].isin(SINGLE_CHANGES)]
        # each sweep point's idle stretch at its own size (a coordinator run has one after the join too)
        steady = steady[steady["family"].isin(sweeps) & (steady["members"] == steady["scenario_members"])]
        what = f"the one-member changes (joins, leaves, crashes) of {', '.join(sweeps)}"
    frames = []
    for frame in (episodes, steady):
        frame = frame[frame["members"] > 0]
        frames.append(frame.assign(bytes=frame[["bytes_in", "bytes_out"]].sum(axis=1, min_count=1)))
    fig, axes = new_canvas(2, len(LEDGER_PANELS), figsize=(4 * len(LEDGER_PANELS), 8), squeeze=False)
    drawn: list[str] = []
    single: set[str] = set()
    for row, (frame, per) in enumerate(zip(frames, ("per rebalance", "per idle second"), strict=True)):
        for col, (metric, label) in enumerate(LEDGER_PANELS):
            ax = axes[row][col]
            ax.set_title(f"{label}, {per}", fontsize=10)
            data = frame.dropna(subset=[metric])
            if data.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
                continue
            counts = data.groupby(["series", "members"]).size()
            single |= {s for (s, _), n in counts.items() if n == 1}
            medians = medians_by(data, "members", metric)
            drawn += [s for s in stat_lines(ax, medians) if s not in drawn]
            sizes_axis(ax, data["members"], "members in the group")
            y_axis(ax, False, f"{label} {per}")
            ax.grid(True, axis="y", alpha=0.3)
    figure_legend(
        fig,
        [series_handle(s) for s in series_order(drawn)],
        "Every coordination service of each design summed (median, 95 % CI)",
    )
    one_value = (
        f" Points of {', '.join(series_order(sorted(single)))} rest on one value (one episode or window): "
        "the shape of the answer, no confidence interval."
        if single
        else ""
    )
    return Figure(
        "coordination-ledger",
        title,
        "From coordination_load.csv: zk mode's ZooKeeper (its namespace) against coordinator mode's group "
        "coordinators, offsets-topic replicas and the ZooKeeper holding the brokers' metadata, summed per "
        f"episode (top; {what}) and divided by the steady window's length (bottom). Requests exclude "
        "ZooKeeper's pings but include the coordinator's heartbeats and the followers' replica fetches; "
        "durable writes are znode changes against records appended to __consumer_offsets, on every "
        "replica; fsyncs are ZooKeeper's transaction-log syncs against the offsets replicas' (none per "
        "append by default, as Kafka); replication is ZooKeeper's proposals to followers against the "
        "replica fetches that carried records (0 with one ZooKeeper server and one broker). Real Kafka "
        "is not drawn: its costs are read over JMX (broker_load.csv)." + one_value,
        png_bytes(fig),
    )


def fig_latency_vs_rtt(res: Results) -> list[Figure | Skipped]:
    title = "Latency against injected round-trip time"
    data = res.rebalances
    families = sweep_families(data, "rtt_ms") if not data.empty else []
    if not families:
        return [
            Skipped(title, "no scenario family with two or more injected round-trip times (e.g. rtt-sweep)")
        ]
    data = with_triggers(data)
    out: list[Figure | Skipped] = []
    for family in families:
        frame = data[data["family"] == family]
        triggers = [
            t for t in trigger_order(frame) if frame[frame["trigger"] == t]["convergence_ms"].notna().any()
        ]
        fig, axes = new_canvas(1, len(triggers), figsize=(4.6 * len(triggers), 4.4), squeeze=False)
        drawn: list[str] = []
        for ax, trig in zip(axes[0], triggers, strict=True):
            medians = medians_by(frame[frame["trigger"] == trig], "rtt_ms", "convergence_ms", 1e-3)
            drawn += [s for s in stat_lines(ax, medians) if s not in drawn]
            ax.set_xlabel("added round-trip time (ms)")
            ax.set_xticks(sorted(frame["rtt_ms"].dropna().unique()))
            ax.set_xlim(left=-0.5)
            y_axis(ax, False, "convergence (s)")  # linear: k round trips per rebalance show as slope k
            ax.set_title(trig, fontsize=10)
        figure_legend(
            fig,
            [series_handle(s) for s in series_order(drawn)],
            f"{family}: convergence latency against injected round-trip time (median, 95 % CI)",
        )
        out.append(
            Figure(
                f"latency-vs-rtt-{family}",
                f"{family}: latency against round-trip time",
                "Round-trip time added by the harness's TCP proxy between the members and ZooKeeper or the "
                "brokers (half each way). A design that needs k sequential round trips per rebalance rises "
                "by k ms per added ms.",
                png_bytes(fig),
            )
        )
    return out


def fig_comparison(res: Results) -> Figure | Skipped:
    """Several result sets side by side (``report DIR DIR ...``). Long (74 lines) for the same
    reason as :func:`fig_zk_ops_vs_size`: one figure's layout, top to bottom."""
    title = "Comparison of several result sets"
    data = res.rebalances
    sources = sorted(data["source"].unique()) if not data.empty else []
    if len(sources) < 2:
        return Skipped(title, "one result directory given; pass several to compare them side by side")
    data = with_triggers(data)
    data = data[data["family"].isin(single_point_families(data))]
    keys = (
        data.dropna(subset=["convergence_ms"])
        .groupby(["family", "trigger", "series"])
        .size()
        .reset_index()[["family", "trigger", "series"]]
    )
    if keys.empty:
        return Skipped(title, "no converged episodes outside sweeps")
    fig, ax = new_canvas(1, 1, figsize=(10, 0.3 * len(keys) + 1.6))
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
                color=series_color(row.series),
                mfc="white" if st.warnings else series_color(row.series),
                capsize=2,
                markersize=5,
            )
    ax.set_yticks(
        range(len(keys)), [f"{r.family} · {r.trigger} · {r.series}" for r in keys.itertuples()], fontsize=7
    )
    ax.invert_yaxis()
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
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
    figure_legend(fig, handles, "Convergence latency per result set")
    return Figure(
        "comparison",
        title,
        "One marker per result directory given to the report, for every scenario, trigger and mode/variant "
        "(colour as in the other figures); hollow markers have warnings (fewer than 5 values or runs that "
        "disagree, CV above 25 %).",
        png_bytes(fig),
    )


def all_figures(res: Results) -> list[Figure | Skipped]:
    out: list[Figure | Skipped] = []
    out += fig_latency(res)
    out.append(fig_unowned(res))
    out += fig_latency_vs_size(res)
    out += fig_zk_ops_vs_size(res)
    out.append(fig_steady(res))
    out.append(fig_ledger(res))
    out += fig_latency_vs_rtt(res)
    out.append(fig_comparison(res))
    return out

"""The derived tables of one run directory, computed the same way for every mode: ``analyze(run_dir)``.

It writes ``rebalances.csv`` (one row per episode, :mod:`bench.analysis.metrics.episodes`),
``zk_load.csv`` and ``broker_load.csv`` (:mod:`bench.analysis.metrics.samples`, plus the *steady*
windows: stretches with no action in progress and every group converged, starting
``STEADY_SETTLE_S`` after the last event, where the idle load is measured as a rate; ensemble-wide
counts including pings are reported beside the per-namespace ones as ``reads_incl_pings``) and
``summary.json`` (statistics from :mod:`bench.analysis.metrics.stats`, the checks of
:mod:`bench.analysis.checker`). ``rebalance-lab analyze`` is :func:`analyze_command`. Every output
column is documented in the README, section "Results: what a run directory holds".
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
import yaml

from bench.analysis.checker import CheckReport, check, harness_problems
from bench.analysis.metrics.episodes import Episode, EpisodeBuilder, Join, join_fields, joins, ms_between
from bench.analysis.metrics.samples import (
    Samples,
    bracket_readings,
    broker_load,
    reading_span,
    readings_inside,
)
from bench.analysis.metrics.stats import aggregate
from bench.analysis.replay import RunHistory
from bench.experiment.history import RunState, RunStatus
from bench.services.mntr import ZkLoad, zk_load
from group_api import EventKind

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: A steady window starts this long after the last event, so a rebalance's trailing traffic is not idle load.
STEADY_SETTLE_S = 1.0
#: Shortest steady window worth a rate.
STEADY_MIN_S = 2.0


def _zk_fields(load: ZkLoad | None) -> dict[str, Any]:
    return {f: getattr(load, f) if load else None for f in ZkLoad.__dataclass_fields__ if f != "namespace"}


def _run_identity(run_dir: Path, history: RunHistory) -> dict[str, Any]:
    scenario: dict[str, Any] = {}
    environment: dict[str, Any] = {}
    try:
        scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        log.warning("%s: no readable scenario.yaml", run_dir)
    try:
        environment = json.loads((run_dir / "environment.json").read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("%s: no readable environment.json", run_dir)
    modes = sorted({(g.mode, g.variant) for g in history.groups.values()})
    groups = scenario.get("groups") if isinstance(scenario.get("groups"), dict) else {}
    name = scenario.get("name") or history.info.get("scenario") or run_dir.name
    point = scenario.get("sweep_point") if isinstance(scenario.get("sweep_point"), dict) else {}
    run_id = history.info.get("run_id") or environment.get("run_id") or run_dir.name  # older runs: the name
    return {
        "run_id": run_id,
        "scenario": name,
        "family": point.get("scenario") or name,
        "scenario_members": groups.get("members"),
        "mode": "+".join(sorted({m for m, _ in modes})),
        "variant": "+".join(sorted({v for _, v in modes})),
        "repetition": history.info.get("repetition", environment.get("repetition")),
    }


def _episode_rows(
    ident: dict[str, Any], history: RunHistory, eps: list[Episode], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rebalances, zk_rows, broker_rows = [], [], []
    start = history.start_ns
    by_group: dict[str, list[Join]] = {}
    for j in joins(history):
        by_group.setdefault(j.group, []).append(j)
    for ep in eps:
        spec = history.groups[ep.group]
        window = bracket_readings(samples.zk, ep.trigger_ns, ep.end_ns)
        load = zk_load(*window, namespace=spec.namespace) if window[0] else None
        zk_span = reading_span(*window) if window[0] else (None, None)
        b_window = bracket_readings(samples.brokers, ep.trigger_ns, ep.end_ns)
        b_load = broker_load(*b_window) if b_window[0] else None
        key = {
            **ident,
            "mode": spec.mode,
            "variant": spec.variant,
            "group": ep.group,
            "step": ep.step,
            "action": ep.action,
            "phase": ep.phase,
        }
        rebalances.append(
            {
                **key,
                "trigger_s": round((ep.trigger_ns - start) / 1e9, 3),
                "targets": ";".join(ep.targets),
                "outcome": ep.outcome.value,
                "detection_ms": ms_between(ep.trigger_ns, ep.detection_ns),
                "detected_by": ep.detected_by,
                "detection_event": ep.detection_event,
                "convergence_ms": ms_between(ep.trigger_ns, ep.convergence_ns),
                "window_ms": ms_between(ep.trigger_ns, ep.window_end_ns),
                "unowned_partition_s": round(ep.unowned_partition_s, 6),
                "partitions": len(spec.partitions),
                "generation_before": ep.generation_before,
                "generation_after": ep.generation_after,
                "generations": ep.generations,
                "members_before": ep.members_before,
                "members_after": ep.members_after,
                "members_involved": ep.members_involved,
                **join_fields(ep, by_group.get(ep.group, ())),
                "concurrent_groups": ep.concurrent_groups,
                "rtt_ms": ep.rtt_ms,
                "zk_namespace": spec.namespace,
                "zk_reads": load.reads if load else None,
                "zk_writes": load.writes if load else None,
                "zk_watch_notifications": load.watch_notifications if load else None,
                "zk_reads_incl_pings": load.reads_incl_pings if load else None,
                "zk_window_ms": ms_between(*zk_span),
                "broker_requests": sum(v["requests"] for v in b_load.values())
                if b_load is not None
                else None,
            }
        )
        if load is not None:
            zk_rows.append(
                {
                    **key,
                    "kind": "episode",
                    "start_s": round((zk_span[0] - start) / 1e9, 3),
                    "end_s": round((zk_span[1] - start) / 1e9, 3),
                    "duration_s": round((zk_span[1] - zk_span[0]) / 1e9, 3),
                    "members": ep.members_after,
                    "namespace": spec.namespace,
                    **_zk_fields(load),
                }
            )
        for (broker, api), delta in sorted((b_load or {}).items()):
            b_span = reading_span(*b_window)
            broker_rows.append(
                {
                    **key,
                    "kind": "episode",
                    "start_s": round((b_span[0] - start) / 1e9, 3),
                    "end_s": round((b_span[1] - start) / 1e9, 3),
                    "duration_s": round((b_span[1] - b_span[0]) / 1e9, 3),
                    "broker": broker,
                    "api": api,
                    **delta,
                }
            )
    return rebalances, zk_rows, broker_rows


def _namespaces(history: RunHistory) -> list[str]:
    return sorted({g.namespace for g in history.groups.values()})


def _steady_rows(
    ident: dict[str, Any], history: RunHistory, quiet: list[tuple[int, int, int]], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    zk_rows, broker_rows = [], []
    start = history.start_ns
    base = {**ident, "group": None, "step": None, "action": None, "phase": None, "kind": "steady"}
    for q_start, q_end, members in quiet:
        lo = q_start + int(STEADY_SETTLE_S * 1e9)
        if (q_end - lo) / 1e9 < STEADY_MIN_S:
            continue
        first, last = readings_inside(samples.zk, lo, q_end)
        if first:
            span = reading_span(first, last)
            for ns in _namespaces(history):
                zk_rows.append(
                    {
                        **base,
                        "start_s": round((span[0] - start) / 1e9, 3),
                        "end_s": round((span[1] - start) / 1e9, 3),
                        "duration_s": round((span[1] - span[0]) / 1e9, 3),
                        "members": members,
                        "namespace": ns,
                        **_zk_fields(zk_load(first, last, namespace=ns)),
                    }
                )
        b_first, b_last = readings_inside(samples.brokers, lo, q_end)
        if b_first:
            span = reading_span(b_first, b_last)
            for (broker, api), delta in sorted(broker_load(b_first, b_last).items()):
                broker_rows.append(
                    {
                        **base,
                        "start_s": round((span[0] - start) / 1e9, 3),
                        "end_s": round((span[1] - start) / 1e9, 3),
                        "duration_s": round((span[1] - span[0]) / 1e9, 3),
                        "broker": broker,
                        "api": api,
                        **delta,
                    }
                )
    return zk_rows, broker_rows


def _client_calls(history: RunHistory) -> tuple[dict[str, int], int]:
    """ZooKeeper calls the members counted themselves, summed over the ``left`` events that carry them."""
    total: dict[str, int] = {}
    reporting = 0
    for e in history.events:
        calls = e.extra.get("zk_calls") if e.kind == EventKind.LEFT else None
        if isinstance(calls, dict):
            reporting += 1
            for k, v in calls.items():
                total[k] = total.get(k, 0) + int(v)
    return total, reporting


def _run_rows(ident: dict[str, Any], history: RunHistory, samples: Samples) -> list[dict[str, Any]]:
    """The whole measured run per namespace, with the members' own call counts beside it."""
    first, last = readings_inside(samples.zk, 0, history.analysis_end_ns)
    if not first:
        return []
    calls, reporting = _client_calls(history)
    span = reading_span(first, last)
    rows = []
    for ns in _namespaces(history):
        rows.append(
            {
                **ident,
                "group": None,
                "step": None,
                "action": None,
                "phase": None,
                "kind": "run",
                "start_s": round((span[0] - history.start_ns) / 1e9, 3),
                "end_s": round((span[1] - history.start_ns) / 1e9, 3),
                "duration_s": round((span[1] - span[0]) / 1e9, 3),
                "members": len({e.member for e in history.events}),
                "namespace": ns,
                **_zk_fields(zk_load(first, last, namespace=ns)),
                "client_members": reporting,
                "client_reads": calls.get("reads"),
                "client_writes": calls.get("writes"),
                "client_watch_events": calls.get("watch_events"),
            }
        )
    return rows


ZK_COLUMNS = [
    "run_id",
    "scenario",
    "family",
    "scenario_members",
    "mode",
    "variant",
    "repetition",
    "kind",
    "group",
    "step",
    "action",
    "phase",
    "start_s",
    "end_s",
    "duration_s",
    "members",
    "namespace",
    *(f for f in ZkLoad.__dataclass_fields__ if f != "namespace"),
    "client_members",
    "client_reads",
    "client_writes",
    "client_watch_events",
]
BROKER_COLUMNS = [
    *ZK_COLUMNS[: ZK_COLUMNS.index("members")],
    "broker",
    "api",
    "requests",
    "bytes_in",
    "bytes_out",
]


def _steady_summary(zk_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in zk_rows:
        if row["kind"] != "steady" or not row["duration_s"]:
            continue
        d = row["duration_s"]
        out.append(
            {
                "namespace": row["namespace"],
                "start_s": row["start_s"],
                "duration_s": d,
                "members": row["members"],
                **{
                    f"{k}_per_s": round(row[k] / d, 3)
                    for k in (
                        "reads",
                        "writes",
                        "reads_incl_pings",
                        "watch_notifications",
                        "packets_received",
                    )
                },
            }
        )
    return out


def analyze(run_dir: str | Path) -> dict[str, Any]:
    """Derive ``rebalances.csv``, ``zk_load.csv``, ``broker_load.csv`` and ``summary.json`` from a
    run directory's ``events.jsonl`` and ``samples.jsonl``; returns the summary."""
    run_dir = Path(run_dir)
    history = RunHistory.read(run_dir / "events.jsonl")
    samples = Samples.read(run_dir / "samples.jsonl")
    builder = EpisodeBuilder(history).build()
    ident = _run_identity(run_dir, history)
    report: CheckReport = check(history)

    rebalances, zk_rows, broker_rows = _episode_rows(ident, history, builder.episodes, samples)
    steady_zk, steady_broker = _steady_rows(ident, history, builder.quiet, samples)
    zk_rows += steady_zk + _run_rows(ident, history, samples)
    broker_rows += steady_broker

    frame = _integers(pd.DataFrame(rebalances))
    frame.to_csv(run_dir / "rebalances.csv", index=False)
    _integers(pd.DataFrame(zk_rows, columns=ZK_COLUMNS)).to_csv(run_dir / "zk_load.csv", index=False)
    _integers(pd.DataFrame(broker_rows, columns=BROKER_COLUMNS)).to_csv(
        run_dir / "broker_load.csv", index=False
    )

    stats = aggregate(frame) if not frame.empty else pd.DataFrame()
    problems = [*history.problems, *samples.problems]
    warnings = sorted(
        {
            f"{r['action']} (step {r['step']}) {r['mode']}/{r['variant']} {r['metric']}: {w}"
            for r in stats.to_dict("records")
            for w in r["warnings"]
            if r["metric"] in ("detection_ms", "convergence_ms")
        }
    )
    outcomes = frame["outcome"].value_counts().to_dict() if not frame.empty else {}
    status = run_status(run_dir, history)
    summary = {
        "schema_version": SCHEMA_VERSION,
        **ident,
        "dir": str(run_dir),
        "status": {"state": status.state.value, "reason": status.reason},
        "groups": {
            name: {
                "mode": g.mode,
                "variant": g.variant,
                "partitions": len(g.partitions),
                "namespace": g.namespace,
            }
            for name, g in history.groups.items()
        },
        "duration_s": round((history.analysis_end_ns - history.start_ns) / 1e9, 3),
        "episodes": len(builder.episodes),
        "outcomes": {k: int(v) for k, v in outcomes.items()},
        "stats": _jsonable(stats.to_dict("records")) if not stats.empty else [],
        "steady_state": _steady_summary(zk_rows),
        "zk_run": _jsonable([r for r in zk_rows if r["kind"] == "run"]),
        "checks": report.to_dict(),
        "warnings": warnings,
        "problems": problems,
        "harness_problems": harness_problems(history),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not status.completed:
        log.warning("%s: %s run: %s", run_dir, status.state, status.reason)
    elif not report.passed:
        log.warning("%s: %d check failure(s)", run_dir, len(report.failures))
    for problem in summary["harness_problems"]:
        log.warning("%s: harness problem: %s", run_dir, problem)
    return summary


def run_status(run_dir: Path, history: RunHistory) -> RunStatus:
    """How the run ended: its ``error.txt``, else a history that shows it never really ran or
    never finished (no member event, no run end record) counts as failed too."""
    status = RunStatus.read(run_dir)
    if not status.completed:
        return status
    if not history.events:
        return RunStatus(RunState.FAILED, "no member events in the history: nothing was measured")
    if not history.ended:
        return RunStatus(RunState.FAILED, "the history has no run end record: the run was cut short")
    return status


def find_runs(dirs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(root, run directory) for every directory holding an ``events.jsonl`` in or below the given dirs."""
    found = []
    for root in dirs:
        for events in sorted(Path(root).rglob("events.jsonl")):
            found.append((Path(root), events.parent))
    return found


#: Columns that hold counts or ids: written as integers even when some rows have none.
INTEGER_COLUMNS = frozenset(
    {
        "scenario_members",
        "repetition",
        "step",
        "generation_before",
        "generation_after",
        "generations",
        "members_before",
        "members_after",
        "members_involved",
        "joins",
        "concurrent_groups",
        "partitions",
        "members",
        "client_members",
        "client_reads",
        "client_writes",
        "client_watch_events",
        "broker_requests",
        "requests",
        "bytes_in",
        "bytes_out",
        "zk_reads",
        "zk_writes",
        "zk_watch_notifications",
        "zk_reads_incl_pings",
        *(f for f in ZkLoad.__dataclass_fields__ if f != "namespace"),
    }
)


def _integers(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if column in INTEGER_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    return frame


def _jsonable(value: Any) -> Any:
    """numpy scalars and NaN (from pandas) as plain JSON values."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: Exit codes of ``analyze``: the worst over the directories given.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_NOT_USABLE = 2  # could not analyse, or the run failed or was aborted: its numbers mean nothing


def _verdict(run_dir: Path, summary: dict[str, Any]) -> int:
    """Prints one run's verdict; returns its exit code."""
    status, checks = summary["status"], summary["checks"]
    if status["state"] != RunState.COMPLETED:
        click.echo(f"{run_dir}: {status['state'].upper()} RUN, not measured: {status['reason']}")
        return EXIT_NOT_USABLE
    verdict = "checks passed" if checks["passed"] else f"{len(checks['failures'])} CHECK FAILURE(S)"
    click.echo(f"{run_dir}: {summary['episodes']} episodes, {verdict}")
    for failure in checks["failures"]:
        click.echo(f"  {failure['check']}: {failure['message']}")
    for problem in summary.get("harness_problems", []):
        click.echo(f"  HARNESS PROBLEM (not the design's): {problem}")
    return EXIT_OK if checks["passed"] else EXIT_CHECK_FAILED


@click.command("analyze")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def analyze_command(dirs: tuple[Path, ...]) -> None:
    """(Re)derive the tables and summary.json of every run directory in or below DIRS.

    Exits 0 when every run completed and passed its checks, 1 when a check failed, 2 when a
    directory could not be analysed or holds a failed or aborted run.
    """
    found = find_runs(dirs)
    code = EXIT_OK
    for root in dirs:
        if not any(r == root for r, _ in found):
            click.echo(
                f"{root}: could not analyse: no run directory (with events.jsonl) in or below it", err=True
            )
            code = EXIT_NOT_USABLE
    for _, run_dir in found:
        try:
            summary = analyze(run_dir)
        except Exception as exc:  # one unreadable directory must not hide the verdicts of the others
            log.debug("analysing %s", run_dir, exc_info=True)
            click.echo(f"{run_dir}: could not analyse: {type(exc).__name__}: {exc}", err=True)
            code = EXIT_NOT_USABLE
            continue
        code = max(code, _verdict(run_dir, summary))
    if code != EXIT_OK:
        raise SystemExit(code)

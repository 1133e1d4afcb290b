"""The derived tables of one run directory, computed the same way for every mode: ``analyze(run_dir)``.

It writes ``rebalances.csv`` (one row per episode, :mod:`bench.analysis.metrics.episodes`),
``zk_load.csv`` and ``broker_load.csv`` (:mod:`bench.analysis.metrics.samples`; the rows are built by
:mod:`bench.analysis.metrics.rows`), ``coordination_load.csv`` (one ledger of both designs' coordination
cost, :mod:`bench.analysis.metrics.ledger`) and
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
from bench.analysis.metrics.episodes import EpisodeBuilder
from bench.analysis.metrics.ledger import LEDGER_COLUMNS, LEDGER_VALUES, ledger_rows
from bench.analysis.metrics.rows import WINDOW_KEYS, episode_rows, run_rows, steady_rows, steady_summary
from bench.analysis.metrics.samples import Samples, offsets_durability
from bench.analysis.metrics.stats import aggregate
from bench.analysis.replay import RunHistory
from bench.experiment.history import RunState, RunStatus
from bench.services.mntr import ZkLoad

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


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


ZK_COLUMNS = [
    *WINDOW_KEYS,
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


def _latency_warnings(stats: pd.DataFrame) -> list[str]:
    """The statistics' warnings (few samples, high variation) on the latencies, one line each."""
    return sorted(
        {
            f"{r['action']} (step {r['step']}) {r['mode']}/{r['variant']} {r['metric']}: {w}"
            for r in stats.to_dict("records")
            for w in r["warnings"]
            if r["metric"] in ("detection_ms", "convergence_ms")
        }
    )


def analyze(run_dir: str | Path) -> dict[str, Any]:
    """Derive ``rebalances.csv``, ``zk_load.csv``, ``broker_load.csv`` and ``summary.json`` from a
    run directory's ``events.jsonl`` and ``samples.jsonl``; returns the summary."""
    run_dir = Path(run_dir)
    history = RunHistory.read(run_dir / "events.jsonl")
    samples = Samples.read(run_dir / "samples.jsonl")
    builder = EpisodeBuilder(history).build()
    ident = _run_identity(run_dir, history)
    report: CheckReport = check(history)

    rebalances, zk_rows, broker_rows = episode_rows(ident, history, builder.episodes, samples)
    steady_zk, steady_broker = steady_rows(ident, history, builder.quiet, samples)
    zk_rows += steady_zk + run_rows(ident, history, samples)
    broker_rows += steady_broker

    frame = _integers(pd.DataFrame(rebalances))
    frame.to_csv(run_dir / "rebalances.csv", index=False)
    _integers(pd.DataFrame(zk_rows, columns=ZK_COLUMNS)).to_csv(run_dir / "zk_load.csv", index=False)
    _integers(pd.DataFrame(broker_rows, columns=BROKER_COLUMNS)).to_csv(
        run_dir / "broker_load.csv", index=False
    )
    ledger = ledger_rows(ident, history, builder.episodes, builder.quiet, samples)
    _integers(pd.DataFrame(ledger, columns=LEDGER_COLUMNS)).to_csv(
        run_dir / "coordination_load.csv", index=False
    )

    stats = aggregate(frame) if not frame.empty else pd.DataFrame()
    problems = [*history.problems, *samples.problems]
    warnings = _latency_warnings(stats)
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
        # what the members ran with (session, heartbeat, commit interval, offsets); None before runs recorded it
        "timing": history.info.get("timing"),
        "duration_s": round((history.analysis_end_ns - history.start_ns) / 1e9, 3),
        "episodes": len(builder.episodes),
        "outcomes": {k: int(v) for k, v in outcomes.items()},
        "stats": _jsonable(stats.to_dict("records")) if not stats.empty else [],
        "steady_state": steady_summary(zk_rows),
        "zk_run": _jsonable([r for r in zk_rows if r["kind"] == "run"]),
        "offsets_durability": offsets_durability(samples),
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
        "partitions_revoked",
        "partitions_moved",
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
        *LEDGER_VALUES,
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

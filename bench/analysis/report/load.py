"""Loading the report's input: the derived tables of every run directory below the given ones.

Run directories whose derived tables are missing or older than their history are analysed first
(:func:`bench.analysis.metrics.tables.analyze`); failed and aborted runs are set apart and kept out
of every figure and statistic unless ``include_failed``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.metrics.tables import analyze, find_runs
from bench.experiment.history import ERROR_FILE, RunState

log = logging.getLogger(__name__)

DERIVED = ("rebalances.csv", "zk_load.csv", "broker_load.csv", "coordination_load.csv", "summary.json")


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
    ledger: pd.DataFrame = field(default_factory=pd.DataFrame)  # coordination_load.csv

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


def timing_label(timing: dict[str, Any]) -> str:
    """A run's timing as the report prints it beside its figures: session / heartbeat / commit
    interval in seconds (``no commits`` with ``offsets: none``); "–" for runs that did not record it."""
    keys = ("session_timeout_ms", "heartbeat_interval_ms", "auto_commit_interval_ms")
    if not all(isinstance(timing.get(k), int | float) for k in keys):
        return "–"
    session, heartbeat, commit = (f"{timing[k] / 1000:g}" for k in keys)
    commits = "no commits" if timing.get("offsets") == "none" else commit
    return f"{session} / {heartbeat} / {commits}"


def load_results(dirs: Sequence[Path], include_failed: bool = False) -> Results:
    """Every run below ``dirs``, analysed if needed. Runs that failed or were aborted are listed in
    ``incomplete`` and kept out of the tables unless ``include_failed``. ``run_id`` becomes the run
    directory's path: unique per directory, also for copies of one run."""
    frames: dict[str, list[pd.DataFrame]] = {"rebalances": [], "zk": [], "broker": [], "ledger": []}
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
            ("ledger", "coordination_load.csv"),
        ):
            frame = _read_csv(run_dir / name)
            if not frame.empty:
                if key == "rebalances":
                    timing = summary.get("timing") or {}
                    frame["session_timeout_ms"] = timing.get("session_timeout_ms")
                    frame["timing"] = timing_label(timing)
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
        ledger=concat("ledger"),
    )

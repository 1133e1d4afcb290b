"""The runner end to end: a short scenario in both modes on real servers, and a run that fails."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.process import pid_alive
from bench.runner import run_scenarios
from bench.scenario import load_scenario

SCENARIO = """
name: e2e
description: a short end-to-end run for CI
cluster: {zk_nodes: 1, brokers: 1}
groups: {count: 1, members: 3, topics: {orders: 6}}
modes:
  - {mode: zk, variant: chain}
  - {mode: coordinator, variant: classic}
profile: fast
repetitions: 1
timeline:
  - action: start_members
  - {action: add_members, count: 1}
  - action: kill_leader
  - action: stop
"""


def write(tmp_path: Path, text: str, name: str = "e2e.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_short_run_in_both_modes(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SCENARIO))
    done, failed = run_scenarios([scenario], tmp_path / "out", progress=lambda _: None)
    assert not failed, failed
    assert len(done) == 2
    for run_dir in done:
        for name in ("scenario.yaml", "environment.json", "events.jsonl", "samples.jsonl", "rebalances.csv"):
            assert (run_dir / name).exists(), name
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["checks"]["passed"], summary["checks"]["failures"]
        episodes = pd.read_csv(run_dir / "rebalances.csv")
        starts = episodes[episodes["phase"] == "start"]
        assert list(starts["action"]) == ["start_members", "add_members", "kill_leader"]
        assert set(starts["outcome"]) == {"converged"}
        if summary["mode"] == "coordinator":
            # Consumer rebalances in coordinator mode never write to ZooKeeper.
            assert (starts["zk_writes"].fillna(0) == 0).all(), starts[["action", "zk_writes"]]
            assert (starts["broker_requests"] > 0).all()
        else:
            assert (starts["zk_writes"] > 0).all()


def test_a_failed_run_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    # One member cannot converge within 0.001 s: the step times out.
    text = SCENARIO.replace("  - action: start_members\n", "  - {action: start_members, timeout: 0.001}\n")
    text = text.replace("  - {mode: coordinator, variant: classic}\n", "")
    scenario = load_scenario(write(tmp_path, text))
    done, failed = run_scenarios([scenario], tmp_path / "out", progress=lambda _: None)
    assert not done
    ((label, reason),) = failed
    assert "step 0 (start_members)" in reason and "not stable" in reason
    run_dir = tmp_path / "out" / "e2e" / "zk-chain" / "rep-1"
    assert "not stable" in (run_dir / "error.txt").read_text()
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    pids = {pid for r in records if r["event"] == "action" for pid in r["params"].get("pids", [])}
    assert len(pids) == 3
    assert not any(pid_alive(p) for p in pids)


def test_a_bad_scenario_names_file_and_field(tmp_path: Path) -> None:
    from bench.scenario import ScenarioError

    path = write(tmp_path, SCENARIO.replace("action: kill_leader", "action: kill_everyone"), "bad.yaml")
    with pytest.raises(ScenarioError, match=r"bad\.yaml.*timeline\[2\]\.action"):
        load_scenario(path)


def test_coordinator_failover_loses_no_committed_offset(tmp_path: Path) -> None:
    text = """
name: failover
description: SIGKILL the coordinator of a group whose members commit offsets
cluster: {zk_nodes: 1, brokers: 3}
groups: {count: 1, members: 3, topics: {orders: 6}}
modes: [{mode: coordinator, variant: classic}]
profile: fast
overrides: {coordinator_session_timeout_ms: 15000, heartbeat_interval_ms: 1000}
repetitions: 1
timeline:
  - {action: start_members, wait: offsets_committed}   # every auto.commit.interval.ms (5 s)
  - {action: kill_coordinator, wait: offsets_fetched}  # read back from the new coordinator
  - action: stop
"""
    scenario = load_scenario(write(tmp_path, text))
    done, failed = run_scenarios([scenario], tmp_path / "out", progress=lambda _: None)
    assert not failed, failed
    (run_dir,) = done
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    kill = next(r for r in records if r["event"] == "action" and r["action"] == "kill_coordinator")
    committed = [r for r in records if r["event"] == "offsets_committed" and r["mono_ns"] < kill["mono_ns"]]
    fetched_after = [r for r in records if r["event"] == "offsets_fetched" and r["mono_ns"] > kill["mono_ns"]]
    assert committed and fetched_after, "nothing committed before the kill or read back after it"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["checks"]["passed"], summary["checks"]["failures"]
    assert summary["checks"]["examined"]["offset_fetches"] >= len(fetched_after)

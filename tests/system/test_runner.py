"""The runner end to end: a short scenario in both modes on real servers, and a run that fails."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from bench.analysis.replay import RunHistory
from bench.experiment.loading import load_scenario
from bench.experiment.runner import RunCounter, console_progress, run, run_scenarios
from bench.services.polling import wait_until
from bench.services.process import pid_alive

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
        check_ledger_against_samples(run_dir, summary["mode"])


def _raw_samples(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def check_ledger_against_samples(run_dir: Path, mode: str) -> None:
    """``coordination_load.csv``'s episode rows are the raw counters' changes between the readings
    its span names (one ZooKeeper server and one broker here, so those readings are unique)."""
    ledger = pd.read_csv(run_dir / "coordination_load.csv")
    episodes = ledger[ledger["kind"] == "episode"]
    services = {"zk": {"zookeeper"}, "coordinator": {"zookeeper", "group_coordinator", "offsets_replicas"}}
    assert set(episodes["service"]) == services[mode]
    assert (ledger[ledger["kind"] == "steady"]["duration_s"] > 0).all()
    start_ns = RunHistory.read(run_dir / "events.jsonl").start_ns
    raw = _raw_samples(run_dir)

    def at(source: str, seconds: float) -> dict[str, Any]:
        # A broker's file is read more often than it is rewritten: repeated readings are the same.
        found = [
            r for r in raw if r["source"] == source and round((r["mono_ns"] - start_ns) / 1e9, 3) == seconds
        ]
        same = [{k: v for k, v in r.items() if k != "mono_ns"} for r in found]
        assert found and all(r == same[0] for r in same), (source, seconds)
        return found[0]

    namespace = "zkmode" if mode == "zk" else "kafka"
    for row in episodes.to_dict("records"):
        if row["service"] == "zookeeper":
            a, b = at("zk", row["start_s"])["values"], at("zk", row["end_s"])["values"]
            key = f"zk_cnt_{namespace}_write_per_namespace"
            assert row["durable_writes"] == b.get(key, 0) - a.get(key, 0), row
            assert row["fsyncs"] == b["zk_cnt_fsynctime"] - a["zk_cnt_fsynctime"], row
        else:
            a, b = at("broker", row["start_s"]), at("broker", row["end_s"])
            if row["service"] == "group_coordinator":
                leader = [sum(p.get("leader_records", 0) for p in r["partitions"].values()) for r in (a, b)]
                assert row["durable_writes"] == leader[1] - leader[0], row
                joins = [r["stats"].get("JoinGroup", {}).get("requests", 0) for r in (a, b)]
                assert row["requests"] >= joins[1] - joins[0], row
            else:  # one broker: nothing to replicate, and no fsync per append
                assert row["durable_writes"] == 0 and row["fsyncs"] == 0, row
    if mode == "coordinator":
        coordinator = episodes[episodes["service"] == "group_coordinator"]
        assert (coordinator[coordinator["phase"] == "start"]["durable_writes"] > 0).any()
    else:
        assert (episodes[episodes["phase"] == "start"]["durable_writes"] > 0).all()


def test_a_failed_run_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    # One member cannot converge within 0.001 s: the step times out.
    text = SCENARIO.replace("  - action: start_members\n", "  - {action: start_members, timeout: 0.001}\n")
    text = text.replace("repetitions: 1", "repetitions: 3")
    scenario = load_scenario(write(tmp_path, text))
    # As `run --only zk/chain --repeat 1` would: one mode of two, one repetition of three.
    lines: list[str] = []
    done, failed = run_scenarios(
        [scenario], tmp_path / "out", repeat=1, progress=lines.append, targets=[("zk", "chain")]
    )
    assert not done
    assert lines and all(line.startswith("(run 1 of 1) e2e [zk/chain #1]: ") for line in lines), lines
    assert "FAILED" in lines[-1]
    ((label, reason),) = failed
    assert "step 0 (start_members)" in reason and "not stable" in reason
    run_dir = tmp_path / "out" / "e2e" / "zk-chain" / "rep-1"
    error = (run_dir / "error.txt").read_text().splitlines()
    assert error[0] == "status: failed" and "not stable" in error[1]
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    pids = {pid for r in records if r["event"] == "action" for pid in r["params"].get("pids", [])}
    assert len(pids) == 3
    assert not any(pid_alive(p) for p in pids)

    # The directory describes exactly this run, and its summary says it failed.
    as_run = yaml.safe_load((run_dir / "scenario.yaml").read_text())
    assert (as_run["modes"], as_run["repetitions"]) == ([{"mode": "zk", "variant": "chain"}], 1)
    env = json.loads((run_dir / "environment.json").read_text())
    assert (env["mode"], env["variant"], env["repetition"]) == ("zk", "chain", 1)
    assert env["run_id"].startswith("e2e/zk-chain/rep-1@") and not (run_dir / "run.json").exists()
    assert env["target"]["name"] == "local" and env["target"]["zk_connect"]  # where it ran
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"]["state"] == "failed" and summary["run_id"] == env["run_id"]


CTRL_C_SCENARIO = """
name: ctrl-c
description: a run that holds still long enough to be interrupted
cluster: {zk_nodes: 1, brokers: 1}
groups: {count: 1, members: 2, topics: {orders: 4}}
modes: [{mode: zk, variant: chain}]
profile: fast
repetitions: 1
timeline:
  - {action: start_members, hold: 120}
  - action: stop
"""


def test_ctrl_c_marks_the_run_aborted_and_exits_130(tmp_path: Path) -> None:
    path = write(tmp_path, CTRL_C_SCENARIO, "ctrl-c.yaml")
    out = tmp_path / "out"
    cli = Path(sys.executable).parent / "rebalance-lab"
    proc = subprocess.Popen(
        [str(cli), "run", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = out / "ctrl-c" / "zk-chain" / "rep-1"
    try:
        wait_until(
            lambda: (
                (run_dir / "events.jsonl").exists()
                and (run_dir / "events.jsonl").read_text().count('"event":"assigned"') >= 2
                and '"action":"start_members","phase":"end"' in (run_dir / "events.jsonl").read_text()
            ),
            timeout=90,
            what="both members assigned and their start recorded",
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Aborted by the user (Ctrl-C)" in stderr and "Traceback" not in stderr
    error = (run_dir / "error.txt").read_text()
    assert error.startswith("status: aborted\n") and "during step 0 (start_members)" in error
    assert "Traceback" not in error
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    pids = {pid for r in records if r["event"] == "action" for pid in r["params"].get("pids", [])}
    assert pids and not any(pid_alive(p) for p in pids)


def test_a_bad_scenario_names_file_and_field(tmp_path: Path) -> None:
    from bench.experiment.scenario import ScenarioError

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


def test_the_run_counter_says_which_run_and_estimates_the_rest() -> None:
    now = [0.0]
    counter = RunCounter(4, clock=lambda: now[0])
    counter.start()
    assert counter.prefix() == "(run 1 of 4)", "no estimate before a run finished"
    now[0] = 60.0
    counter.finish()
    counter.start()
    now[0] = 80.0
    # one run took 60 s: three more at that pace, 20 s of the second already gone
    assert counter.prefix() == "(run 2 of 4, about 2 min 40 s left)"
    now[0] = 200.0  # the second run is slower than the first: the two queued ones still count
    assert counter.left_s() == 120.0


def test_progress_on_a_terminal_keeps_the_run_label(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "w")
    try:
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(sys, "stderr", terminal)
        console_progress()("(run 3 of 7) demo [zk/chain #1]: step 0 start_members")
        terminal.flush()
        output = b""
        while select.select([master], [], [], 5)[0]:
            output += os.read(master, 4096)
            if b"start_members" in output:
                break
    finally:
        terminal.close()
        os.close(master)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode())
    assert "(run 3 of 7) demo [zk/chain #1]: step 0 start_members" in plain, plain


def test_an_unknown_only_target_is_named_before_anything_starts(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO)
    out = tmp_path / "out"
    result = CliRunner().invoke(run, [str(path), "--only", "zk/chian", "--out", str(out)])
    assert result.exit_code == 2
    assert "zk/chian matches no mode or mode/variant" in result.output
    assert "did you mean zk/chain?" in result.output
    assert "valid: coordinator, coordinator/classic, zk, zk/chain" in result.output
    assert not out.exists()

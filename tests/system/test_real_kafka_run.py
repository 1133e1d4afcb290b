"""``rebalance-lab run`` of the library's kafka-reference scenario against real Kafka 3.9: the run
completes, every check passes, and the broker tables hold what the Jolokia sampler read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.services.jolokia import OFFSETS_ROW
from bench.services.kafka_config import kafka_target
from tests.kafka_targets import skip_unless_built

pytestmark = pytest.mark.kafka


def test_a_library_scenario_runs_on_kafka_3_9_with_every_check_passing(tmp_path: Path) -> None:
    skip_unless_built(kafka_target("3.9-classic"))
    out = tmp_path / "out"
    env = {**os.environ, "REBALANCE_LAB_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "bench", "run", "kafka-reference", "--only", "kafka/3.9-classic"]
    done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"]["state"] == "completed"
    assert summary["checks"]["passed"], summary["checks"]["failures"]
    assert summary["checks"]["examined"]["offset_fetches"] > 0

    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    from_brokers = [s for s in samples if s["source"] == "broker"]
    assert from_brokers and all(s["info"] == {"via": "jolokia"} for s in from_brokers)

    load = pd.read_csv(run_dir / "broker_load.csv")
    episodes = load[load["kind"] == "episode"]
    joins = episodes[(episodes["action"] == "start_members") & (episodes["api"] == "JoinGroup")]
    assert joins["requests"].sum() >= 3  # three members joined, each with at least one JoinGroup
    assert (episodes["api"] == "Heartbeat").any()
    # The coordinator appended the group's metadata and the members' commits to its offsets log.
    assert episodes.loc[episodes["api"] == OFFSETS_ROW, "requests"].sum() > 0
    zk = pd.read_csv(run_dir / "zk_load.csv")
    assert set(zk["namespace"]) == {"realkafka"}


@pytest.mark.java
def test_kafka_4_0_consumer_runs_the_java_consumer_with_kip_848s_protocol(tmp_path: Path) -> None:
    """The 4.0-consumer target is a runnable scenario mode: its members (the Java consumer with
    group.protocol=consumer) converge, the broker assigns (no leader), and every check passes."""
    skip_unless_built(kafka_target("4.0-consumer"))  # also the Java members
    scenario = tmp_path / "consumer-protocol.yaml"
    scenario.write_text(
        "name: consumer-protocol\n"
        "cluster: {zk_nodes: 1, brokers: 1}\n"
        "groups: {count: 1, members: 2, topics: {orders: 6}, members_per_process: 2}\n"
        "modes: [{mode: kafka, variant: 4.0-consumer}]\n"
        "profile: fast\n"
        "repetitions: 1\n"
        "timeline: [{action: start_members}, {action: add_members, count: 1}, {action: stop}]\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "REBALANCE_LAB_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "bench", "run", str(scenario), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"]["state"] == "completed"
    assert summary["checks"]["passed"], summary["checks"]["failures"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assigned = [e for e in events if e.get("event") == "assigned"]
    assert assigned and all(e.get("leader") is None for e in assigned)
    load = pd.read_csv(run_dir / "broker_load.csv")
    # KIP-848's members heartbeat with ConsumerGroupHeartbeat, not JoinGroup
    assert "ConsumerGroupHeartbeat" in set(load["api"]) and "JoinGroup" not in set(load["api"])


def test_validation_writes_the_table_with_ours_beside_kafka_3_9(tmp_path: Path) -> None:
    """``rebalance-lab validation`` on one situation, one size, one repetition: the table holds the
    pair of our members on our brokers and on Kafka 3.9, each figure with both sides."""
    skip_unless_built(kafka_target("3.9-classic"))
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        "name: tiny\n"
        "cluster: {zk_nodes: 1, brokers: 1}\n"
        "groups: {count: 1, members: 2, topics: {orders: 4}, members_per_process: 2}\n"
        "modes: [{mode: coordinator, variant: classic}, {mode: kafka, variant: 3.9-classic}]\n"
        "profile: fast\n"
        "repetitions: 1\n"
        "timeline: [{action: start_members}, {action: stop}]\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "REBALANCE_LAB_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "bench", "validation", "--scenario", str(scenario), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    table = pd.read_csv(out / "validation.csv")
    assert set(table["clients"]) == {"classic"} and set(table["situation"]) == {"start_members"}
    by_metric = table.set_index("metric")
    for metric in ("detection_s", "convergence_s"):
        assert by_metric.loc[metric, "ours"] > 0 and by_metric.loc[metric, "real"] > 0, metric
    # request counts on both sides (a sample may fall after a short episode's end, so not > 0)
    assert by_metric.loc["JoinGroup", ["ours", "real"]].notna().all()
    assert by_metric.loc["JoinGroup", ["ours", "real"]].sum() > 0
    # both count their offsets-topic appends (ours: the ledger; Kafka: Jolokia)
    appended = by_metric.loc["offsets records appended"]
    assert pd.notna(appended["real"]) and pd.notna(appended["ours"])
    assert "| start_members | 2 | classic | JoinGroup |" in (out / "validation.md").read_text()

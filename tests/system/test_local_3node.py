"""The compose topology, locally: a 3-node ZooKeeper ensemble and three brokers, losing one ZooKeeper node.

Both modes run the same scenario through the runner (real servers, real member processes): a group
forms, the ensemble's leader stops, a member joins while it is down, the node comes back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.experiment.loading import load_scenario
from bench.experiment.runner import run_scenarios

SCENARIO = """
name: zk-node-loss-3x3
description: lose the ZooKeeper leader of a 3-node ensemble under three brokers, join meanwhile
cluster: {zk_nodes: 3, brokers: 3}
groups: {count: 1, members: 3, topics: {orders: 6}}
modes:
  - {mode: coordinator, variant: classic}
  - {mode: zk, variant: chain}
profile: fast
repetitions: 1
timeline:
  - action: start_members
  - {action: stop_zk, server: leader}
  - {action: add_members, count: 1}
  - {action: restart_zk, server: stopped}
  - action: stop
"""
PARTITIONS = {("orders", p) for p in range(6)}


def owned_before_stop(records: list[dict]) -> set[tuple[str, int]]:
    """Every partition some member owned (by its last assignment) when the final stop began."""
    stop = next(
        r for r in records if r["event"] == "action" and r["action"] == "stop" and r["phase"] == "start"
    )
    latest: dict[str, set[tuple[str, int]]] = {}
    for r in records:
        if r["mono_ns"] < stop["mono_ns"] and r["event"] in ("assigned", "revoked", "session_lost", "left"):
            parts = {(t, p) for t, p in r.get("partitions") or []}
            latest[r["member"]] = (
                parts if r["event"] == "assigned" else latest.get(r["member"], set()) - parts
            )
    return set().union(*latest.values())


def test_losing_a_zookeeper_node_under_three_brokers_in_both_modes(tmp_path: Path) -> None:
    path = tmp_path / "zk-node-loss-3x3.yaml"
    path.write_text(SCENARIO)
    done, failed = run_scenarios([load_scenario(path)], tmp_path / "out", progress=lambda _: None)
    assert not failed, failed
    assert sorted(d.parent.name for d in done) == ["coordinator-classic", "zk-chain"]
    for run_dir in done:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["checks"]["passed"], summary["checks"]["failures"]
        records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        stopped = [
            r for r in records if r["event"] == "action" and r["action"] == "stop_zk" and r["phase"] == "end"
        ]
        restarted = [r for r in records if r["event"] == "action" and r["action"] == "restart_zk"]
        assert len(stopped) == 1 and restarted and restarted[0]["targets"] == stopped[0]["targets"]
        # The join while a node was down converged, and the group owned everything at the end.
        episodes = pd.read_csv(run_dir / "rebalances.csv")
        joins = episodes[(episodes["phase"] == "start") & (episodes["action"] == "add_members")]
        assert list(joins["outcome"]) == ["converged"], joins
        assert owned_before_stop(records) == PARTITIONS

"""``rebalance-lab member`` configured from ``REBALANCE_LAB_*`` variables (compose's member service)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from bench.experiment.history import History
from bench.services.member_host import member
from bench.services.members import MemberProcess
from bench.services.zookeeper import ZooKeeperEnsemble
from group_api import EventKind
from tests.conftest import wait_until


def params(args: list[str]) -> dict[str, object]:
    """What ``rebalance-lab member ARGS`` would run with, in this process's environment."""
    with member.make_context("member", args) as ctx:
        return ctx.params


@pytest.mark.parametrize("topics", ["orders payments", "orders,payments", " orders , payments "])
def test_topics_come_space_or_comma_separated(monkeypatch: pytest.MonkeyPatch, topics: str) -> None:
    monkeypatch.setenv("REBALANCE_LAB_TOPICS", topics)
    monkeypatch.setenv("REBALANCE_LAB_GROUP", "g")
    assert params([])["topics"] == ("orders", "payments")


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "MODE": "coordinator",
        "GROUP": "from-env",
        "TOPICS": "a",
        "BOOTSTRAP": "broker1:9092",
        "SESSION_TIMEOUT_MS": "6000",
        "COUNT": "3",
    }.items():
        monkeypatch.setenv(f"REBALANCE_LAB_{name}", value)
    p = params(["--group", "g", "--topic", "b", "--topic", "c", "--count", "1"])
    assert p["group"] == "g" and p["topics"] == ("b", "c") and p["count"] == 1
    # What no flag set still comes from the environment.
    assert p["mode"] == "coordinator" and p["bootstrap"] == "broker1:9092" and p["session_timeout_ms"] == 6000


def test_a_member_configured_only_by_the_environment_joins(
    zk_server: ZooKeeperEnsemble,
    kazoo_client: KazooClient,
    zk_root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zk_mode.catalog import write_topics

    write_topics(kazoo_client, zk_root, {"orders": 4, "payments": 2})
    env = {
        "MODE": "zk",
        "VARIANT": "herd",
        "GROUP": "env-group",
        "TOPICS": "orders,payments",
        "ZK": zk_server.connect_string,
        "ZK_ROOT": zk_root,
        "SESSION_TIMEOUT_MS": "4000",
        "COUNT": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"REBALANCE_LAB_{name}", value)  # the child inherits them
    history = History()
    proc = MemberProcess(["member"], history, tmp_path / "member.log")
    try:

        def owned() -> set[tuple[str, int]]:
            latest: dict[str, set[tuple[str, int]]] = {}
            for e in history.snapshot():
                if e.kind == EventKind.ASSIGNED:
                    latest[e.member] = set(e.partitions)
            return set().union(*latest.values()) if len(latest) == 2 else set()

        wait_until(
            lambda: len(owned()) == 6,
            what="two members from the environment owning orders and payments",
        )
        events = history.snapshot()
        assert {(e.group, e.mode, e.variant) for e in events} == {("env-group", "zk", "herd")}
        assert len(proc.member_ids) == 2
    finally:
        proc.close()
        history.close()

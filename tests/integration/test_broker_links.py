"""Members' broker links: brokers advertise another address, and the local topology proxies them.

Real ZooKeeper, real broker processes, real members; the proxies are :mod:`bench.services.proxy`'s.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest

from bench.backends import ClusterSpec
from bench.backends.local import LocalTopology
from bench.experiment.history import History
from bench.experiment.loading import load_scenario
from bench.experiment.runner import run_scenarios
from bench.services.brokers import BrokerCluster, send_request
from bench.services.proxy import Proxy
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.config import BrokerConfig
from group_api import EventKind
from tests.conftest import wait_until

TOPICS = {"orders": 4}
FAST_MEMBER = ["--session-timeout-ms", "6000", "--heartbeat-interval-ms", "500"]


def test_a_broker_advertises_its_listen_address_unless_told_otherwise() -> None:
    config = BrokerConfig(broker_id=1, zk_connect="zk:2181", port=9092, log_dir=Path("logs"))
    assert config.advertised == ("127.0.0.1", 9092)
    config = BrokerConfig(
        broker_id=1,
        zk_connect="zk:2181",
        port=9092,
        log_dir=Path("logs"),
        host="0.0.0.0",
        advertised_host="broker1",
    )
    assert config.advertised == ("broker1", 9092)


def test_clients_follow_the_advertised_address(zk_server: ZooKeeperEnsemble, tmp_path: Path) -> None:
    proxies: list[Proxy] = []

    def through_a_proxy(broker_id: int, port: int) -> int:
        proxy = Proxy(("127.0.0.1", port))
        proxies.append(proxy)
        return proxy.start().port

    cluster = BrokerCluster(
        zk_server.connect_string,
        1,
        tmp_path,
        topics=TOPICS,
        initial_rebalance_delay_ms=0,
        zk_root=f"/kafka-{uuid.uuid4().hex[:8]}",
        extra_args=("--advertised-host", "localhost"),
        advertise=through_a_proxy,
    )
    try:
        cluster.start()
        (proxy,) = proxies
        (registered,) = cluster.view().brokers.values()
        assert (registered.host, registered.port) == ("localhost", proxy.port)
        # Asked directly, the broker names its advertised address in Metadata and FindCoordinator.
        direct = cluster.broker(1).address
        metadata = send_request(direct, MetadataRequest(version=1, topics=None))
        assert [(b.host, b.port) for b in metadata.brokers] == [("localhost", proxy.port)]
        found = send_request(direct, FindCoordinatorRequest(version=1, key="g", key_type=0))
        assert (found.error_code, found.host, found.port) == (0, "localhost", proxy.port)
        before = proxy.stats().bytes_up
        assert send_request(f"localhost:{proxy.port}", ApiVersionsRequest(version=3)).error_code == 0
        assert proxy.stats().bytes_up > before
    finally:
        cluster.stop()
        for p in proxies:
            p.stop()


def owned(history: History) -> set[tuple[str, int]]:
    latest: dict[str, set[tuple[str, int]]] = {}
    for e in history.snapshot():
        if e.kind == EventKind.ASSIGNED:
            latest[e.member] = set(e.partitions or ())
    return set().union(*latest.values()) if latest else set()


def round_trip_s(address: str) -> float:
    started = time.monotonic()
    assert send_request(address, ApiVersionsRequest(version=3)).error_code == 0
    return time.monotonic() - started


def test_proxied_topology_puts_every_member_broker_link_behind_a_proxy(tmp_path: Path) -> None:
    spec = ClusterSpec(
        zk_nodes=1,
        brokers=2,
        base_dir=tmp_path / "servers",
        topics=TOPICS,
        zk_root=f"/zkmode/t-{uuid.uuid4().hex[:8]}",
        initial_rebalance_delay_ms=0,
        proxied=True,
    )
    topology = LocalTopology(spec)
    history = History()
    proc = None
    try:
        topology.start()
        assert topology.links("brokers") == ["broker-0", "broker-1"]
        assert topology.links("all") == ["zk-0", "broker-0", "broker-1"]
        assert topology.links("broker-1") == ["broker-1"]
        # What the brokers registered (and so what Metadata and FindCoordinator name) is the proxies.
        bootstrap = topology.member_args("coordinator")[1].split(",")
        registered = topology.broker_cluster.view().brokers
        assert sorted(f"{b.host}:{b.port}" for b in registered.values()) == sorted(bootstrap)
        assert not {b.address for b in topology.broker_cluster.brokers} & set(bootstrap)

        args = ["member", *topology.member_args("coordinator"), "--mode", "coordinator", "--group", "g"]
        proc = topology.spawn_member([*args, "--topic", "orders", *FAST_MEMBER], history, tmp_path / "m.log")
        wait_until(
            lambda: len(owned(history)) == 4, what="the member to own every partition through the proxies"
        )

        topology.set_rtt("brokers", 20, 0)
        for address in bootstrap:
            assert round_trip_s(address) >= 0.020

        topology.cut("broker-0", reset=True)
        # A reset, not a timeout (TimeoutError is an OSError too) nor a clean close.
        with pytest.raises(ConnectionResetError):
            send_request(bootstrap[0], ApiVersionsRequest(version=3), timeout=5)
        assert round_trip_s(bootstrap[1]) >= 0.020  # the other link is only delayed
        topology.heal("broker-0")
        assert round_trip_s(bootstrap[0]) >= 0.020
    finally:
        if proc is not None:
            proc.close()
        topology.stop()
        history.close()


DELAYED_RUN = """
name: broker-delay
description: every member-broker link 20 ms long from the start
cluster: {zk_nodes: 1, brokers: 1}
groups: {count: 1, members: 2, topics: {orders: 4}}
modes: [{mode: coordinator, variant: classic}]
profile: fast
repetitions: 1
timeline:
  - {action: set_delay, target: brokers, rtt_ms: 20, wait: 0}
  - action: start_members
  - {action: add_members, count: 1}
  - action: stop
"""


def test_a_coordinator_run_with_delayed_broker_links(tmp_path: Path) -> None:
    path = tmp_path / "broker-delay.yaml"
    path.write_text(DELAYED_RUN)
    done, failed = run_scenarios([load_scenario(path)], tmp_path / "out", progress=lambda _: None)
    assert not failed, failed
    (run_dir,) = done
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["checks"]["passed"], summary["checks"]["failures"]
    records = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    (delay,) = [
        r for r in records if r["event"] == "action" and r["action"] == "set_delay" and r["phase"] == "end"
    ]
    assert delay["targets"] == ["broker-0"]
    joins = [r for r in records if r["event"] == "joined"]
    assert len(joins) >= 3
    # Every JoinGroup went through the 20 ms link: none came back sooner.
    assert all(r["mono_ns"] - r["join_started_ns"] >= 20_000_000 for r in joins), joins

"""The mapping from ZooKeeper 3.8 counters to reads, writes and watch notifications, on real servers
(parsing on hand-written readings: tests/unit/test_mntr_parsing.py).

The exact numbers below were observed on Debian's ZooKeeper 3.8.0; see bench/services/mntr.py's docstring.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import WatchedEvent

from bench.services.mntr import zk_load
from bench.services.zookeeper import ZooKeeperEnsemble
from tests.conftest import EnsembleFactory, wait_until


def _probe(writer: KazooClient, watcher: KazooClient, root: str) -> threading.Event:
    """A known mix of requests under ``root``; returns an event set once all 4 notifications arrived."""
    writer.create(root)  # 1 write
    for i in range(4):
        writer.create(f"{root}/c{i}", b"x")  # 4 writes
    tx = writer.transaction()
    tx.create(f"{root}/m1")
    tx.create(f"{root}/m2")
    tx.commit()  # 2 namespace writes, 1 request
    with pytest.raises(NodeExistsError):
        writer.create(f"{root}/c0")  # a failed write: a request, no namespace write
    for _ in range(6):
        writer.get(f"{root}/c0")  # 6 reads
    for _ in range(2):
        assert writer.exists(f"{root}/missing") is None  # not a namespace read
    for _ in range(2):
        writer.get_children(root)  # 2 reads

    fired: list[WatchedEvent] = []
    all_fired = threading.Event()

    def on_watch(event: WatchedEvent) -> None:
        fired.append(event)
        if len(fired) == 4:
            all_fired.set()

    for i in range(3):
        watcher.get(f"{root}/c{i}", watch=on_watch)  # 3 reads, 3 data watches
    watcher.exists(f"{root}/new", watch=on_watch)  # an exists watch on a missing node: no namespace read
    for i in range(3):
        writer.set(f"{root}/c{i}", b"y")  # 3 writes, 3 changed notifications
    writer.create(f"{root}/new")  # 1 write, 1 created notification
    return all_fired


def test_load_counts_a_known_mix_exactly(zk_ensemble_factory: EnsembleFactory) -> None:
    """On a server of its own nothing else runs, so every count is exact."""
    ensemble = zk_ensemble_factory(1)
    idle_before, idle_after = ensemble.mntr(), ensemble.mntr()
    idle = zk_load(idle_before, idle_after)
    assert (idle.packets_received, idle.bytes_received) == (0, 0)  # our own readings are left out

    ns = f"nsprobe{uuid.uuid4().hex[:6]}"
    writer = KazooClient(hosts=ensemble.connect_string, timeout=30.0)
    watcher = KazooClient(hosts=ensemble.connect_string, timeout=30.0)  # 30 s: no pings within the test
    try:
        writer.start(timeout=30)
        watcher.start(timeout=30)
        before = ensemble.mntr()
        all_fired = _probe(writer, watcher, f"/{ns}")
        assert all_fired.wait(30), "watch notifications did not arrive"
        after = ensemble.mntr()
    finally:
        for client in (writer, watcher):
            client.stop()
            client.close()

    load = zk_load(before, after, namespace=ns)
    assert load.writes == 1 + 4 + 2 + 3 + 1
    assert load.reads == 6 + 2 + 3
    assert load.watch_notifications == 4
    assert load.watch_events == 4
    assert load.znodes == 1 + 4 + 2 + 1
    assert load.sessions == 0
    assert load.connections == 0
    assert load.writes_incl_sessions == 1 + 4 + 1 + 1 + 3 + 1  # multi = 1 request, failed create counts
    requests_without_txn = 6 + 2 + 2 + 3 + 1
    assert load.reads_incl_pings >= requests_without_txn
    requests = requests_without_txn + load.writes_incl_sessions
    assert load.packets_received >= requests
    # Every answer plus 4 notifications, less what the server had yet to count of its mntr answers.
    assert load.packets_sent >= requests

    # Without a namespace, reads/writes are the request counts (incl. pings, session create/close).
    assert zk_load(before, after).reads == load.reads_incl_pings
    assert zk_load(before, after).writes == load.writes_incl_sessions


def test_session_server_counts_namespace_traffic(
    zk_server: ZooKeeperEnsemble, kazoo_client: KazooClient, zk_root: str
) -> None:
    """On the shared server other tests may leave sessions behind: only namespace counts are exact."""
    kazoo_client.ensure_path(zk_root)
    ns = f"nsprobe{uuid.uuid4().hex[:6]}"
    before = zk_server.mntr()
    kazoo_client.create(f"/{ns}")
    kazoo_client.create(f"/{ns}/a", ephemeral=True)
    for _ in range(5):
        kazoo_client.get(f"/{ns}/a")
    after = zk_server.mntr()
    load = zk_load(before, after, namespace=ns)
    assert (load.writes, load.reads) == (2, 5)
    assert load.writes_incl_sessions >= 2
    assert load.reads_incl_pings >= 5


def test_ensemble_load_sums_reads_and_counts_replicated_writes_once(
    zk_ensemble_factory: EnsembleFactory,
) -> None:
    ensemble = zk_ensemble_factory(3)
    ns = f"nsprobe{uuid.uuid4().hex[:6]}"
    # One client pinned to each of two servers: reads and watches are counted where the client is.
    first = KazooClient(hosts=ensemble.servers[0].address, timeout=30.0)
    second = KazooClient(hosts=ensemble.servers[1].address, timeout=30.0)
    try:
        first.start(timeout=30)
        second.start(timeout=30)
        before = ensemble.mntr()
        sessions_before = before[0].get("zk_global_sessions")
        first.create(f"/{ns}")
        first.create(f"/{ns}/a")
        for _ in range(4):
            first.get(f"/{ns}/a")
        second.sync(f"/{ns}")  # its follower may not have applied the creates yet (not a namespace read)
        for _ in range(3):
            second.get(f"/{ns}/a")
        got = threading.Event()
        second.get(f"/{ns}/a", watch=lambda event: got.set())  # 1 read, 1 watch on the second server
        first.set(f"/{ns}/a", b"z")  # 1 write
        assert got.wait(30), "watch notification did not arrive"
        # Followers apply a commit after the leader, and a server may count a notification only after
        # sending it: wait until the counters agree with what the clients saw.
        wait_until(
            lambda: (
                all(m.get(f"zk_cnt_{ns}_write_per_namespace") == 3 for m in ensemble.mntr())
                and zk_load(before, ensemble.mntr()).watch_notifications == 1
            ),
            what="every replica to apply the 3 writes and count the notification",
        )
        after = ensemble.mntr()
    finally:
        for client in (first, second):
            client.stop()
            client.close()

    load = zk_load(before, after, namespace=f"/{ns}/a")
    assert load.servers == 3
    assert load.writes == 3  # not 9: every replica applies each write
    assert load.reads == 4 + 3 + 1
    assert load.watch_notifications == 1
    assert load.writes_incl_sessions == 3  # counted only on the server that took the request
    assert load.znodes == 2
    assert sessions_before >= 2  # quorum mode: each server reports the ensemble's sessions

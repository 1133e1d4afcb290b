"""Fencing, proven: a deposed leader, coordinator or controller that has not noticed yet cannot
write over its successor.

* zk chain/herd: a leader whose session expired while it was stuck (its worker held, as a paused
  process would be) publishes through its ``multi``; the check on its own, now deleted, member
  znode fails the whole transaction and the successor's assignment stands.
* the coordinator's offsets log: the old leader of an offsets partition keeps appending at its leader
  epoch; the new leader's replica never takes those records (a fetch across epochs is refused with
  FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), the write is never acknowledged (acks=all times out),
  and the old leader cuts it from its log when it learns it is a follower.
* the controller: a deposed controller's writes go through the same transaction as its live ones
  (:meth:`~coordinator_mode.broker.controller.BrokerZk.fenced_transaction`), which checks the
  controller epoch's zkVersion; after its successor's election bumped it, the write fails whole.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from bench.analysis.ownership import GroupOwnership
from bench.services.ports import free_port
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import BrokerZk, PartitionLeader, ZkPaths
from coordinator_mode.broker.offsets_log import OffsetsLog
from coordinator_mode.broker.replication import ReplicaManager, ReplicationConfig
from coordinator_mode.broker.stats import BrokerStats
from coordinator_mode.group.errors import ErrorCode
from coordinator_mode.group.records import OffsetCommitRecord
from group_api import ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import wait_until
from zk_mode.catalog import write_topics
from zk_mode.paths import GroupPaths

PARTITIONS = {("t", p) for p in range(4)}


def expire(zk_server: ZooKeeperEnsemble, client: KazooClient) -> None:
    """Expire ``client``'s session from the server side: a second client with the same session id
    closes it (the documented way to share a session)."""
    session_id, password = client.client_id
    thief = KazooClient(zk_server.connect_string)
    thief._session_id, thief._session_passwd = session_id, password
    thief.start()
    thief.stop()
    thief.close()


@pytest.mark.parametrize("variant", ["chain", "herd"])
def test_a_leader_whose_session_expired_cannot_publish_over_its_successor(
    zk_server: ZooKeeperEnsemble, kazoo_client: KazooClient, zk_root: str, variant: str
) -> None:
    write_topics(kazoo_client, zk_root, {"t": 4})
    paths = GroupPaths(zk_root, "g")
    sink = ListSink()
    config = MemberConfig(
        group="g", topics=("t",), variant=variant, zk_hosts=zk_server.connect_string, zk_root=zk_root
    )
    leader, successor = (create_member(config.with_(member_name=f"m{i}"), sink) for i in range(2))
    held, release = threading.Event(), threading.Event()
    try:
        leader.start()
        wait_until(lambda: leader.is_leader, 30, what="the first member to lead")
        successor.start()
        ids = [leader.member_id, successor.member_id]
        assert sink.wait_for(lambda _: GroupOwnership(PARTITIONS).apply_all(sink.events).converged(ids), 60)
        # Hold the leader's worker, as a paused process: it will not see its session's end.
        leader._task_hold = lambda: (held.set(), release.wait(60))  # type: ignore[attr-defined]
        leader.submit("hold")
        assert held.wait(10)
        _, seen = kazoo_client.get(paths.assignment)
        expire(zk_server, leader.client)
        wait_until(
            lambda: json.loads(kazoo_client.get(paths.assignment)[0]).get("leader") == successor.member_id,
            30,
            what="the successor's assignment",
        )
        successors, stat = kazoo_client.get(paths.assignment)
        wait_until(lambda: leader.client.connected, 30, what="the old leader's client to reconnect")
        multis = leader.zk_counts().get("multi", 0)
        grab = {"generation": stat.version + 1, "leader": leader.member_id, "members": {leader.member_id: []}}
        # At the version it read before, and even at the current one: its member znode is gone.
        assert not leader._publish(grab, seen.version)
        assert not leader._publish(grab, stat.version)
        assert leader.zk_counts()["multi"] == multis + 2, "the publications were not sent"
        assert kazoo_client.get(paths.assignment) == (successors, stat), (
            "the successor's decision was overwritten"
        )
    finally:
        release.set()
        leader.close()
        successor.close()


# -- the offsets log ---------------------------------------------------------------------------------


def replica(broker_id: int, log_dir: Path) -> ReplicaManager:
    config = ReplicationConfig(offsets_commit_timeout_ms=300)
    return ReplicaManager(broker_id, OffsetsLog(log_dir), BrokerStats(), config, lambda p, s, isr: None)


def commit(offset: int) -> list[OffsetCommitRecord]:
    return [OffsetCommitRecord("g", "t", 0, offset)]


def test_a_deposed_offsets_leader_cannot_get_a_write_in(tmp_path: Path) -> None:
    async def scenario() -> None:
        old, new = replica(1, tmp_path / "b1"), replica(2, tmp_path / "b2")
        epoch0 = PartitionLeader(1, 0, (1, 2), (1, 2), version=0)
        old.become_leader(0, epoch0)
        new.become_follower(0, epoch0)
        # One acknowledged commit: the follower fetched it, and then fetched again past it.
        end = old.append(0, commit(5))
        fetched = old.serve_fetch(2, 0, 0, 0, 1 << 20)
        new.on_fetched(0, epoch0, fetched.records, fetched.high_watermark)
        old.serve_fetch(2, 0, new.fetch_offset(0), 0, 1 << 20)
        assert await old.wait_replicated(0, end) == ErrorCode.NONE
        new.on_fetched(0, epoch0, b"", old.serve_fetch(2, 0, end, 0, 1 << 20).high_watermark)
        # The controller moves the partition to broker 2 at epoch 1; broker 1 has not heard yet.
        epoch1 = PartitionLeader(2, 1, (1, 2), (2,), version=1)
        new.become_leader(0, epoch1)
        zombie_end = old.append(0, commit(6))
        assert await old.wait_replicated(0, zombie_end) == ErrorCode.REQUEST_TIMED_OUT
        # Neither side takes the other's records across epochs.
        assert old.serve_fetch(2, 0, end, 1, 1 << 20).error == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert new.serve_fetch(1, 0, zombie_end, 0, 1 << 20).error == ErrorCode.FENCED_LEADER_EPOCH
        # The new leader's write stands; the old one, told at last, cuts its unacknowledged record.
        new_end = new.append(0, commit(7))
        old.become_follower(0, epoch1)
        assert old.fetch_offset(0) == end
        answer = new.serve_fetch(1, 0, old.fetch_offset(0), 1, 1 << 20)
        assert answer.error == ErrorCode.NONE
        old.on_fetched(0, epoch1, answer.records, answer.high_watermark)
        assert old.log.read_from(0, 0, 1 << 20) == new.log.read_from(0, 0, 1 << 20)
        assert old.fetch_offset(0) == new_end
        assert b'"o":6' not in old.log.read_from(0, 0, 1 << 20)

    asyncio.run(scenario())


# -- the controller ----------------------------------------------------------------------------------


def agent(zk_server: ZooKeeperEnsemble, root: str, broker_id: int) -> BrokerZk:
    return BrokerZk(
        zk_server.connect_string,
        broker_id,
        "127.0.0.1",
        free_port(),
        root=root,
        offsets_partitions=1,
        session_timeout_ms=4_000,
    )


def test_a_deposed_controller_cannot_write_over_its_successor(
    zk_server: ZooKeeperEnsemble, kazoo_client: KazooClient, zk_root: str
) -> None:
    root = zk_root.replace("/zkmode/", "/kafka-")
    paths = ZkPaths(root)
    first, second = agent(zk_server, root, 1), agent(zk_server, root, 2)
    try:
        first.start()
        wait_until(lambda: first.is_controller, 30, what="broker 1 to become the controller")
        second.start()
        deposed_version = first._controller_epoch_version
        expire(zk_server, first.client)
        # Broker 2's watch fires as the server ends the session; broker 1 only learns on reconnecting.
        wait_until(lambda: second.is_controller, 30, what="broker 2 to take over")
        _, stat = kazoo_client.get(paths.controller_epoch)
        assert stat.version != deposed_version
        wait_until(lambda: first.client.connected, 30, what="broker 1's client to reconnect")
        # Broker 1 writes as it did before its session expired: with the epoch version it was elected at.
        assert first._controller_epoch_version == deposed_version
        tx = first.fenced_transaction()
        tx.create(paths.topic_state("seized"), b'{"partitions": {"0": {"leader": 1, "leader_epoch": 0}}}')
        results = tx.commit()
        assert any(isinstance(r, Exception) for r in results), results
        assert kazoo_client.exists(paths.topic_state("seized")) is None
        # The successor's own writes, through the same fence at its version, go through.
        tx = second.fenced_transaction()
        tx.create(paths.topic_state("granted"), b'{"partitions": {}}')
        assert all(not isinstance(r, Exception) for r in tx.commit())
    finally:
        first.stop()
        second.stop()

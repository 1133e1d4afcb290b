"""Coordinator failover on a 3-broker cluster: SIGKILL the broker that coordinates a group.

The group must become Stable again on another broker (which loads the offsets partition from its
own replica: it was in the ISR) and every offset committed before the kill must read back unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from bench.services.brokers import BrokerCluster
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import OFFSETS_TOPIC
from coordinator_mode.broker.offsets_log import OffsetsLog, parse_line
from coordinator_mode.group.records import GroupMetadataRecord, MemberRecord, OffsetCommitRecord
from tests.conftest import EnsembleFactory, committed_offsets, running_brokers, wait_until
from tests.kp_consumer import PolledConsumer

TOPIC = "payments"
PARTITIONS = 6
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
OFFSETS_PARTITIONS = 12
ZK_SESSION_MS = 4_000  # how long a killed broker stays registered


@pytest.fixture
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        3,
        tmp_path_factory.mktemp("failover"),
        topics={TOPIC: PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
        zk_session_timeout_ms=ZK_SESSION_MS,
        # The periodic preferred-leader check, so that a restarted broker leads its partitions again soon.
        extra_args=("--leader-imbalance-check-interval-s", "1"),
    ) as c:
        yield c


def consumer_for(cluster: BrokerCluster, group: str) -> PolledConsumer:
    return PolledConsumer(
        [TOPIC],
        bootstrap_servers=cluster.bootstrap,
        group_id=group,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        reconnect_backoff_max_ms=500,
    )


def assignment(consumer: PolledConsumer) -> set[tuple[str, int]]:
    return consumer.assignment()


def describe(cluster: BrokerCluster, group: str):  # noqa: ANN201 - a DescribedGroup
    try:
        return cluster.describe_group(group, timeout=5)
    except OSError:
        return None  # the coordinator in ZooKeeper may be the dead broker, for a while


def test_sigkill_of_the_coordinator(cluster: BrokerCluster) -> None:
    group = f"fo-{uuid.uuid4().hex[:8]}"
    consumer = consumer_for(cluster, group)
    try:
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer's assignment")
        before = wait_until(lambda: (d := describe(cluster, group)) and d.group_state == "Stable" and d, 30)
        members_before = {m.member_id for m in before.members}
        old = cluster.coordinator_for(group)
        assert old is not None

        expected = {p: 1_000 + 17 * p for p in range(PARTITIONS)}
        offsets = {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "before", -1) for p, o in expected.items()}
        consumer.call(lambda k: k.commit(offsets))
        # Killed as soon as the commit is acknowledged: only a coordinator that wrote it durably
        # before answering can hand it to its successor.
        old.kill()

        new = wait_until(
            lambda: (c := cluster.coordinator_for(group)) is not None and c.id != old.id and c,
            60,
            what="another broker to lead the group's offsets partition",
        )
        after = wait_until(
            lambda: (d := describe(cluster, group)) and d.error_code == 0 and d.group_state == "Stable" and d,
            60,
            what=f"the group to be Stable on broker {new.id}",
        )
        assert (
            wait_until(lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS), 30, what="offsets")
            == expected
        )
        # The failover completed within the members' sessions: same members, no rebalance.
        assert {m.member_id for m in after.members} == members_before
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer to stay assigned")
        # The survivor keeps serving the group: a new commit lands on the new coordinator.
        consumer.call(lambda k: k.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(5_000, "after", -1)}))
        assert wait_until(lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS), 30)[0] == 5_000
    finally:
        consumer.close()


def test_offsets_of_a_group_without_members_survive_the_kill(cluster: BrokerCluster) -> None:
    """Simple commits (generation -1, no group management) are replayed by the new leader too."""
    group = f"solo-{uuid.uuid4().hex[:8]}"
    committer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        expected = {p: 42 + p for p in range(PARTITIONS)}
        committer.commit(
            {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1) for p, o in expected.items()}
        )
    finally:
        committer.close()
    old = cluster.coordinator_for(group)
    assert old is not None
    old.kill()
    wait_until(
        lambda: (c := cluster.coordinator_for(group)) is not None and c.id != old.id,
        60,
        what="a new coordinator",
    )
    assert (
        wait_until(lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS), 30, what="offsets")
        == expected
    )


def test_controller_failover_and_restart(cluster: BrokerCluster) -> None:
    view = cluster.view()
    controller = cluster.broker(view.controller_id)
    controller.kill()

    def new_controller_placed_everything() -> bool:
        v = cluster.view()
        if v.controller_id in (-1, controller.id) or controller.id in v.brokers:
            return False
        return all(
            (state := v.live_leader(topic, p)) is not None and state.broker_id != controller.id
            for topic, n in v.topics.items()
            for p in range(n)
        )

    wait_until(new_controller_placed_everything, 60, what="a new controller to move every partition")
    controller.start()  # same id and port: it waits out its old znode, then gets a share back

    def balanced() -> bool:
        v = cluster.view()
        leaders = [s.leader for s in v.leaders.get(OFFSETS_TOPIC, {}).values()]
        return set(v.brokers) == {1, 2, 3} and {1, 2, 3} <= set(leaders)

    wait_until(balanced, 60, what="the restarted broker to lead offsets partitions again")


# -- one broker's replica of an offsets partition, without brokers --------------------------------


def test_a_follower_replica_holds_the_leaders_lines_at_the_same_offsets(tmp_path: Path) -> None:
    group = GroupMetadataRecord(
        "g",
        3,
        "consumer",
        "range",
        "m1",
        (MemberRecord("m1", None, "c", "/127.0.0.1", 300_000, 6_000, (("range", b"\x00sub"),), b"\x01asg"),),
    )
    commits = [OffsetCommitRecord("g", "t", p, 10 * p, -1, "meta", 1234) for p in range(3)]
    leader, follower = OffsetsLog(tmp_path / "leader"), OffsetsLog(tmp_path / "follower")
    assert leader.append(7, [group, *commits], epoch=0) == 4
    assert follower.append_lines(7, leader.read_from(7, 0, max_bytes=1)) == 1  # at least one line
    assert follower.append_lines(7, leader.read_from(7, 0, max_bytes=1 << 20)) == 4  # the rest only
    assert follower.log_path(7).read_bytes() == leader.log_path(7).read_bytes()
    assert OffsetsLog(tmp_path / "follower").read(7) == [group, *commits]
    assert follower.counters[7].leader_records == 0 and follower.counters[7].offset_commit_records == 3
    assert leader.counters[7].leader_records == 4 and leader.counters[7].fsyncs == 0  # no fsync per append
    with pytest.raises(ValueError):
        follower.append_lines(7, b"garbage\n")


def test_offsets_log_cuts_a_torn_last_line_and_a_follower_truncates(tmp_path: Path) -> None:
    log = OffsetsLog(tmp_path)
    log.append(0, [OffsetCommitRecord("g", "t", 0, 5), OffsetCommitRecord("g", "t", 0, 6)], epoch=0)
    log.close()
    with open(log.log_path(0), "ab") as f:
        f.write(b'0badc0de {"lo":2,"e":0,"k":"offset","g":"g","t":"t","p":0,"o":9')  # SIGKILL mid-write
    reopened = OffsetsLog(tmp_path)
    assert reopened.end_offset(0) == 2
    reopened.truncate_to(0, 1)
    assert reopened.read(0) == [OffsetCommitRecord("g", "t", 0, 5)]
    assert reopened.append(0, [OffsetCommitRecord("g", "t", 0, 7)], epoch=1) == 2
    assert OffsetsLog(tmp_path).read(0) == [
        OffsetCommitRecord("g", "t", 0, 5),
        OffsetCommitRecord("g", "t", 0, 7),
    ]


def test_offsets_log_flushes_every_n_messages_when_asked(tmp_path: Path) -> None:
    log = OffsetsLog(tmp_path, flush_interval_messages=3)
    for i in range(7):
        log.append(0, [OffsetCommitRecord("g", "t", 0, i)], epoch=0)
    assert log.counters[0].fsyncs == 2
    log.close()  # a clean shutdown flushes the rest
    assert log.counters[0].fsyncs == 3


def test_offsets_log_compacts_on_open_keeping_offsets(tmp_path: Path) -> None:
    log = OffsetsLog(tmp_path, compact_bytes=2_000)
    for i in range(100):
        log.append(1, [OffsetCommitRecord("g", "t", i % 2, i)], epoch=0)
    log.append(1, [GroupMetadataRecord("gone", 1, "consumer", None, None)], epoch=0)
    log.append(1, [GroupMetadataRecord("gone", 1, None, None, None, deleted=True)], epoch=0)
    log.close()
    size = log.log_path(1).stat().st_size
    compacted = OffsetsLog(tmp_path, compact_bytes=2_000)
    assert compacted.end_offset(1) == 102 and log.log_path(1).stat().st_size < size
    assert compacted.read(1) == [
        OffsetCommitRecord("g", "t", 0, 98),
        OffsetCommitRecord("g", "t", 1, 99),
        GroupMetadataRecord("gone", 1, None, None, None, deleted=True),  # the last record stays
    ]
    # A follower at offset 99 gets what follows it, across the gap.
    assert [e.offset for e in map(parse_line, compacted.read_from(1, 99, 1 << 20).splitlines(True))] == [
        99,
        101,
    ]


def test_brokers_recover_from_zookeeper_session_loss(
    zk_ensemble_factory: EnsembleFactory, tmp_path: Path
) -> None:
    """Every broker silent past its ZooKeeper session timeout (frozen, as in a long GC pause): ZooKeeper
    expires their sessions, they register again, the controller places the partitions again, and the
    group carries on with its member.

    The brokers are frozen rather than ZooKeeper: a frozen server's session tracker stops too, and on
    resuming it may revalidate a reconnecting session before it expires it, so nothing would be lost.
    """
    zk = zk_ensemble_factory(1)
    cluster = BrokerCluster(
        zk.connect_string,
        2,
        tmp_path / "brokers",
        topics={TOPIC: PARTITIONS},
        offsets_partitions=6,
        initial_rebalance_delay_ms=0,
        zk_session_timeout_ms=ZK_SESSION_MS,
    )
    group = f"zkloss-{uuid.uuid4().hex[:8]}"
    consumer = None
    try:
        cluster.start()
        # A consumer session far longer than the outage: the group should not need a rebalance.
        consumer = PolledConsumer(
            [TOPIC],
            bootstrap_servers=cluster.bootstrap,
            group_id=group,
            session_timeout_ms=60_000,
            heartbeat_interval_ms=1_000,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer's assignment")
        expected = {p: 300 + p for p in range(PARTITIONS)}
        offsets = {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1) for p, o in expected.items()}
        consumer.call(lambda k: k.commit(offsets))
        before = wait_until(lambda: (d := describe(cluster, group)) and d.group_state == "Stable" and d, 30)

        for broker in cluster.brokers:
            broker.pause()
        try:
            # The fault itself: ZooKeeper drops both registrations once their sessions expire.
            wait_until(
                lambda: not cluster.view().brokers, 30, what="ZooKeeper to expire the brokers' sessions"
            )
        finally:
            for broker in cluster.brokers:
                broker.resume()

        wait_until(
            lambda: all("session lost" in b.log_path.read_text() for b in cluster.brokers),
            30,
            what="both brokers to notice their expired sessions",
        )
        cluster.wait_ready(60)
        after = wait_until(
            lambda: (d := describe(cluster, group)) and d.error_code == 0 and d.group_state == "Stable" and d,
            60,
            what="the group to be Stable again",
        )
        assert {m.member_id for m in after.members} == {m.member_id for m in before.members}
        assert (
            wait_until(lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS), 30, what="offsets")
            == expected
        )
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer to stay assigned")
    finally:
        if consumer is not None:
            consumer.close()
        cluster.stop()

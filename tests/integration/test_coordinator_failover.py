"""Coordinator failover on a 3-broker cluster: SIGKILL the broker that coordinates a group.

The group must become Stable again on another broker (which loads the offsets partition's log from
the shared log directory) and every offset committed before the kill must read back unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.protocol.consumer import OffsetCommitRequest, OffsetFetchRequest
from kafka.structs import OffsetAndMetadata

from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import OFFSETS_TOPIC
from coordinator_mode.broker.offsets_log import OffsetsLog, encode_line
from coordinator_mode.group.errors import ErrorCode, PersistError
from coordinator_mode.group.records import GroupMetadataRecord, MemberRecord, OffsetCommitRecord
from coordinator_mode.hashing import partition_for
from tests.conftest import EnsembleFactory, running_brokers, wait_until
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


def committed_offsets(cluster: BrokerCluster, group: str) -> dict[int, int] | None:
    """OffsetFetch (v7) from the group's current coordinator; None while it cannot answer."""
    coordinator = cluster.coordinator_for(group)
    if coordinator is None:
        return None
    request = OffsetFetchRequest(
        version=7,
        group_id=group,
        topics=[
            OffsetFetchRequest.OffsetFetchRequestTopic(name=TOPIC, partition_indexes=list(range(PARTITIONS)))
        ],
        require_stable=False,
    )
    try:
        response = send_request(coordinator.address, request, timeout=5)
    except OSError:
        return None
    if response.error_code != 0:
        return None  # NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS: ask again
    return {p.partition_index: p.committed_offset for t in response.topics for p in t.partitions}


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
        assert wait_until(lambda: committed_offsets(cluster, group), 30, what="offsets") == expected
        # The failover completed within the members' sessions: same members, no rebalance.
        assert {m.member_id for m in after.members} == members_before
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer to stay assigned")
        # The survivor keeps serving the group: a new commit lands on the new coordinator.
        consumer.call(lambda k: k.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(5_000, "after", -1)}))
        assert wait_until(lambda: committed_offsets(cluster, group), 30)[0] == 5_000
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
    assert wait_until(lambda: committed_offsets(cluster, group), 30, what="offsets") == expected


def commit_simple(address: tuple[str, int], group: str, offset: int) -> int:
    """A simple commit (generation -1, no member) of ``offset`` for partition 0; its error code."""
    partition = OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
        partition_index=0, committed_offset=offset, committed_leader_epoch=-1, committed_metadata=""
    )
    request = OffsetCommitRequest(
        version=8,
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=[OffsetCommitRequest.OffsetCommitRequestTopic(name=TOPIC, partitions=[partition])],
    )
    response = send_request(address, request, timeout=5)
    return response.topics[0].partitions[0].error_code


def test_a_commit_whose_persist_fails_is_not_acknowledged(
    zk_server: ZooKeeperEnsemble, tmp_path: Path
) -> None:
    with running_brokers(
        zk_server.connect_string,
        1,
        tmp_path,
        topics={TOPIC: PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
    ) as cluster:
        group = f"persist-{uuid.uuid4().hex[:8]}"
        coordinator = wait_until(lambda: cluster.coordinator_for(group), 30, what="a coordinator")
        wait_until(lambda: commit_simple(coordinator.address, group, 10) == 0, 30, what="a first commit")
        # Fence the broker at its offsets log, as a newer leader of the partition would: the next
        # append is refused, so the commit must be answered with an error, never acknowledged.
        log = OffsetsLog(cluster.log_dir)
        epoch_file = log.partition_dir(partition_for(group, OFFSETS_PARTITIONS)) / "leader-epoch"
        epoch_file.write_text(str(int(epoch_file.read_text()) + 1))
        assert commit_simple(coordinator.address, group, 20) == ErrorCode.NOT_COORDINATOR
        # Nor is the refused offset served from memory.
        assert committed_offsets(cluster, group) == {p: 10 if p == 0 else -1 for p in range(PARTITIONS)}


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


# -- how the log reaches the new leader: the shared offsets log, without brokers -----------------


def test_offsets_log_round_trip_across_leaders(tmp_path: Path) -> None:
    group = GroupMetadataRecord(
        "g",
        3,
        "consumer",
        "range",
        "m1",
        (MemberRecord("m1", None, "c", "/127.0.0.1", 300_000, 6_000, (("range", b"\x00sub"),), b"\x01asg"),),
    )
    commits = [OffsetCommitRecord("g", "t", p, 10 * p, -1, "meta", 1234) for p in range(3)]
    first = OffsetsLog(tmp_path)
    first.load(7, epoch=0)
    first.append(7, [group, *commits])
    second = OffsetsLog(tmp_path)  # another broker, same directory
    assert second.load(7, epoch=1).records == [group, *commits]


def test_offsets_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    log = OffsetsLog(tmp_path)
    log.load(0, epoch=0)
    log.append(0, [OffsetCommitRecord("g", "t", 0, 5)])
    with open(log.log_path(0), "ab") as f:
        f.write(b'0badc0de {"e":0,"k":"offset","g":"g","t":"t","p":0,"o":9')  # SIGKILL mid-write
    result = OffsetsLog(tmp_path).load(0, epoch=1)
    assert result.records == [OffsetCommitRecord("g", "t", 0, 5)]
    assert result.skipped_corrupt == 1


def test_offsets_log_fences_a_deposed_leader(tmp_path: Path) -> None:
    old, new = OffsetsLog(tmp_path), OffsetsLog(tmp_path)
    old.load(0, epoch=4)
    old.append(0, [OffsetCommitRecord("g", "t", 0, 1)])
    new.load(0, epoch=5)
    with pytest.raises(PersistError) as raised:
        old.append(0, [OffsetCommitRecord("g", "t", 0, 2)])
    assert raised.value.code is ErrorCode.NOT_COORDINATOR
    # A write the deposed leader slipped in after its successor's marker is void on every later load.
    with open(new.log_path(0), "ab") as f:
        f.write(encode_line(OffsetCommitRecord("g", "t", 0, 3), 4))
    new.append(0, [OffsetCommitRecord("g", "t", 1, 7)])
    result = OffsetsLog(tmp_path).load(0, epoch=6)
    assert result.records == [OffsetCommitRecord("g", "t", 0, 1), OffsetCommitRecord("g", "t", 1, 7)]
    assert result.skipped_fenced == 1
    with pytest.raises(PersistError):
        OffsetsLog(tmp_path).load(0, epoch=5)  # an older epoch cannot take over again


def test_offsets_log_compacts_on_load(tmp_path: Path) -> None:
    log = OffsetsLog(tmp_path, compact_bytes=2_000)
    log.load(1, epoch=0)
    for i in range(100):
        log.append(1, [OffsetCommitRecord("g", "t", i % 2, i)])
    log.append(1, [GroupMetadataRecord("gone", 1, "consumer", None, None)])
    log.append(1, [GroupMetadataRecord("gone", 1, None, None, None, deleted=True)])
    size = log.log_path(1).stat().st_size
    result = OffsetsLog(tmp_path, compact_bytes=2_000).load(1, epoch=1)
    assert result.compacted and log.log_path(1).stat().st_size < size
    assert OffsetsLog(tmp_path).read(1) == [
        OffsetCommitRecord("g", "t", 0, 98),
        OffsetCommitRecord("g", "t", 1, 99),
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
        assert wait_until(lambda: committed_offsets(cluster, group), 30, what="offsets") == expected
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the consumer to stay assigned")
    finally:
        if consumer is not None:
            consumer.close()
        cluster.stop()

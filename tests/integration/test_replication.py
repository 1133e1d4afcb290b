"""The replicated offsets topic on three brokers, each with its own log directory.

A group's commits are acknowledged only once every in-sync replica has them, so a SIGKILL of the
coordinator's broker loses none: the controller elects a new leader from the ISR, which loads the
group from its own replica. A follower that fell out of the ISR is never elected.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka.protocol.consumer import OffsetCommitRequest

from bench.services.brokers import BrokerCluster, BrokerProcess, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import NO_LEADER, OFFSETS_TOPIC, PartitionLeader
from coordinator_mode.broker.offsets_log import OffsetsLog
from coordinator_mode.group.errors import ErrorCode
from coordinator_mode.group.records import OffsetCommitRecord
from coordinator_mode.hashing import partition_for
from tests.conftest import committed_offsets, running_brokers, wait_until

TOPIC = "ledger"
PARTITIONS = 4
OFFSETS_PARTITIONS = 6
ZK_SESSION_MS = 4_000  # how long a killed broker stays registered
LAG_MS = 2_500  # replica.lag.time.max.ms: a paused follower leaves the ISR after this, before its
# ZooKeeper session (ZK_SESSION_MS) expires, so it is the leader that drops it
COMMIT_TIMEOUT_MS = 1_500  # offsets.commit.timeout.ms: shorter, so a commit can time out first


@pytest.fixture
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        3,
        tmp_path_factory.mktemp("replication"),
        topics={TOPIC: PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
        zk_session_timeout_ms=ZK_SESSION_MS,
        extra_args=(
            "--replica-lag-time-max-ms",
            str(LAG_MS),
            "--offsets-commit-timeout-ms",
            str(COMMIT_TIMEOUT_MS),
        ),
    ) as c:
        yield c


def state_of(cluster: BrokerCluster, group: str) -> PartitionLeader:
    return cluster.view().leaders[OFFSETS_TOPIC][partition_for(group, OFFSETS_PARTITIONS)]


def commit(address: str, group: str, offsets: dict[int, int]) -> set[int]:
    """A simple commit (generation -1) of ``offsets``; the error codes of its partitions."""
    pcls = OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    request = OffsetCommitRequest(
        version=8,
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=[
            OffsetCommitRequest.OffsetCommitRequestTopic(
                name=TOPIC,
                partitions=[
                    pcls(
                        partition_index=p,
                        committed_offset=o,
                        committed_leader_epoch=-1,
                        committed_metadata="",
                    )
                    for p, o in offsets.items()
                ],
            )
        ],
    )
    response = send_request(address, request, timeout=15)
    return {p.error_code for t in response.topics for p in t.partitions}


def test_each_broker_has_its_own_log_and_the_replicas_hold_the_same_records(cluster: BrokerCluster) -> None:
    group = f"rep-{uuid.uuid4().hex[:8]}"
    state = state_of(cluster, group)
    assert len(state.replicas) == 3 and set(state.isr) == {1, 2, 3}
    assert len({b.log_dir for b in cluster.brokers}) == 3
    leader = cluster.broker(state.leader)
    assert commit(leader.address, group, {0: 11, 1: 12}) == {0}
    partition = partition_for(group, OFFSETS_PARTITIONS)
    expected = {(TOPIC, 0, 11), (TOPIC, 1, 12)}

    def replica_offsets(broker: BrokerProcess) -> set[tuple[str, int, int | None]]:
        return {
            (r.topic, r.partition, r.offset)
            for r in OffsetsLog(broker.log_dir).read(partition)
            if isinstance(r, OffsetCommitRecord) and r.group_id == group
        }

    # Acknowledged means on every ISR member already (acks=all), not only on the leader.
    for broker in cluster.brokers:
        assert replica_offsets(broker) == expected, f"broker {broker.id}"


def test_sigkill_of_the_coordinator_loses_no_acknowledged_commit(cluster: BrokerCluster) -> None:
    group = f"kill-{uuid.uuid4().hex[:8]}"
    old = cluster.coordinator_for(group)
    assert old is not None
    acknowledged: dict[int, int] = {}
    for round_ in range(5):
        offsets = {p: 100 * round_ + p for p in range(PARTITIONS)}
        assert commit(old.address, group, offsets) == {0}
        acknowledged.update(offsets)
    old.kill()
    new = wait_until(
        lambda: (c := cluster.coordinator_for(group)) is not None and c.id != old.id and c,
        60,
        what="a new leader from the ISR",
    )
    assert new.id in state_of(cluster, group).isr
    assert (
        wait_until(
            lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS),
            30,
            what="the new coordinator's offsets",
        )
        == acknowledged
    )


def test_a_follower_out_of_the_isr_is_never_elected(cluster: BrokerCluster) -> None:
    group = f"isr-{uuid.uuid4().hex[:8]}"
    state = state_of(cluster, group)
    leader, first, lagging = (cluster.broker(b) for b in state.replicas)
    assert leader.id == state.leader
    lagging.pause()  # stops fetching: after replica.lag.time.max.ms the leader drops it from the ISR
    try:
        wait_until(
            lambda: set(state_of(cluster, group).isr) == {leader.id, first.id},
            60,
            what=f"broker {lagging.id} to leave the ISR",
        )
        # Committed while the lagging follower is out: only the ISR (leader and first) has it.
        assert commit(leader.address, group, {0: 7, 1: 8}) == {0}
        leader.kill()
        wait_until(
            lambda: state_of(cluster, group).leader == first.id, 60, what="the in-sync follower to lead"
        )
        first.kill()
    finally:
        # Still out of the ISR (it could not catch up: nobody leads), it is now the only live broker,
        # so it becomes the controller and must decide about the partition itself.
        lagging.resume()
    offline = wait_until(
        lambda: (s := state_of(cluster, group)).leader == NO_LEADER and s,
        60,
        what="the partition to go offline rather than to the lagging follower",
    )
    assert offline.isr == (first.id,) and cluster.view().controller_id == lagging.id
    assert cluster.coordinator_for(group) is None
    first.start()  # the last ISR member comes back, with its log: it leads again, commit intact
    wait_until(lambda: state_of(cluster, group).leader == first.id, 60, what="the ISR member to lead again")
    assert wait_until(lambda: committed_offsets(cluster, group, TOPIC, PARTITIONS), 30, what="offsets") == {
        0: 7,
        1: 8,
        2: -1,
        3: -1,
    }


def test_a_commit_the_isr_does_not_get_is_neither_acknowledged_nor_served(cluster: BrokerCluster) -> None:
    group = f"acks-{uuid.uuid4().hex[:8]}"
    state = state_of(cluster, group)
    leader = cluster.broker(state.leader)
    followers = [cluster.broker(b) for b in state.replicas if b != state.leader]
    assert commit(leader.address, group, {0: 1}) == {0}
    for f in followers:
        f.pause()
    try:
        # Both followers are still in the ISR (they have not lagged replica.lag.time.max.ms yet), so
        # acks=all cannot be met before offsets.commit.timeout.ms.
        assert commit(leader.address, group, {0: 2}) == {ErrorCode.REQUEST_TIMED_OUT}
        assert committed_offsets(cluster, group, TOPIC, PARTITIONS) == {0: 1, 1: -1, 2: -1, 3: -1}
    finally:
        for f in followers:
            f.resume()

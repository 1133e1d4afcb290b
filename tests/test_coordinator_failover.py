"""Coordinator failover on a 3-broker cluster: SIGKILL the broker that coordinates a group.

The group must become Stable again on another broker (which loads the offsets partition's log from
the shared log directory) and every offset committed before the kill must read back unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.protocol.consumer import OffsetFetchRequest
from kafka.structs import OffsetAndMetadata

from bench.zookeeper import ZooKeeperEnsemble
from coordinator_mode.controller import OFFSETS_TOPIC
from coordinator_mode.launcher import BrokerCluster, send_request
from tests.conftest import wait_until

TOPIC = "payments"
PARTITIONS = 6
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
OFFSETS_PARTITIONS = 12
ZK_SESSION_MS = 4_000  # how long a killed broker stays registered


@pytest.fixture
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    c = BrokerCluster(
        zk_server.connect_string,
        3,
        tmp_path_factory.mktemp("failover"),
        topics={TOPIC: PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
        initial_rebalance_delay_ms=0,
        zk_root=f"/kafka-{uuid.uuid4().hex[:8]}",
        zk_session_timeout_ms=ZK_SESSION_MS,
    )
    try:
        c.start()
        yield c
    finally:
        c.stop()


def consumer_for(cluster: BrokerCluster, group: str) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap,
        group_id=group,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        reconnect_backoff_max_ms=500,
    )
    consumer.subscribe([TOPIC])
    return consumer


def assignment(consumer: KafkaConsumer) -> set[tuple[str, int]]:
    consumer.poll(timeout_ms=1000)  # long polls: see tests/test_broker.py::kp_assignment
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


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
        expected = {p: 1_000 + 17 * p for p in range(PARTITIONS)}
        consumer.commit(
            {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "before", -1) for p, o in expected.items()}
        )
        assert committed_offsets(cluster, group) == expected
        before = wait_until(lambda: (d := describe(cluster, group)) and d.group_state == "Stable" and d, 30)
        members_before = {m.member_id for m in before.members}

        old = cluster.coordinator_for(group)
        assert old is not None
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
        consumer.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(5_000, "after", -1)})
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

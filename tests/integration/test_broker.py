"""A 1-broker cluster (real processes, real ZooKeeper) serving real Kafka clients.

kafka-python's ``KafkaConsumer`` and confluent-kafka's (librdkafka) ``Consumer`` join groups on our
broker, share one, commit offsets and read them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import TopicPartition as CKTopicPartition
from kafka import KafkaConsumer, TopicPartition
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest
from kafka.structs import OffsetAndMetadata

from bench.services.brokers import BrokerCluster, send_request
from bench.services.mntr import Mntr, read_mntr, zk_load
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import OFFSETS_TOPIC
from coordinator_mode.broker.offsets_log import OffsetsLog
from coordinator_mode.broker.protocol import API_VERSIONS
from coordinator_mode.group.records import GroupMetadataRecord
from coordinator_mode.hashing import partition_for
from tests.conftest import running_brokers, wait_until
from tests.kp_consumer import PolledConsumer

TOPIC = "orders"
PARTITIONS = 6
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
OFFSETS_PARTITIONS = 10
# Small timeouts keep the tests quick: 6 s is the broker's minimum session timeout.
SESSION_MS = 6_000
HEARTBEAT_MS = 1_000


@pytest.fixture(scope="module")
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        1,
        tmp_path_factory.mktemp("cluster1"),
        topics={TOPIC: PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
    ) as c:
        yield c


def group_name() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def kafka_python(cluster: BrokerCluster, group: str, **kw: object) -> PolledConsumer:
    config: dict[str, object] = dict(
        bootstrap_servers=cluster.bootstrap,
        group_id=group,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    return PolledConsumer([TOPIC], **{**config, **kw})


def kp_assignment(consumer: PolledConsumer) -> set[tuple[str, int]]:
    return consumer.assignment()


class Librdkafka:
    """A confluent-kafka consumer and the assignment its callbacks report."""

    def __init__(self, cluster: BrokerCluster, group: str) -> None:
        self.assigned: set[tuple[str, int]] = set()
        self.consumer = CKConsumer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "group.id": group,
                "session.timeout.ms": SESSION_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "partition.assignment.strategy": "range",
            }
        )
        self.consumer.subscribe([TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: CKConsumer, partitions: list[CKTopicPartition]) -> None:
        self.assigned = {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: CKConsumer, partitions: list[CKTopicPartition]) -> None:
        self.assigned = set()

    def assignment(self) -> set[tuple[str, int]]:
        self.consumer.poll(0.1)
        return self.assigned

    def close(self) -> None:
        self.consumer.close()


def latest_group_record(cluster: BrokerCluster, group: str) -> GroupMetadataRecord | None:
    """What the coordinator last persisted for ``group`` (read from its broker's own replica)."""
    coordinator = cluster.coordinator_for(group)
    if coordinator is None:
        return None
    records = OffsetsLog(coordinator.log_dir).read(partition_for(group, OFFSETS_PARTITIONS))
    found = [r for r in records if isinstance(r, GroupMetadataRecord) and r.group_id == group]
    return found[-1] if found else None


def test_cluster_is_ready_and_advertises_itself(cluster: BrokerCluster) -> None:
    view = cluster.view()
    assert set(view.brokers) == {1} and view.controller_id == 1
    assert view.topics == {TOPIC: PARTITIONS, OFFSETS_TOPIC: OFFSETS_PARTITIONS}
    assert cluster.coordinator_for("anything") is cluster.broker(1)


def test_a_run_finds_the_coordinator_as_a_client_does_without_reading_zookeeper(
    cluster: BrokerCluster, zk_server: ZooKeeperEnsemble
) -> None:
    """FindCoordinator (what kill_coordinator asks, as of real Kafka): no read in the brokers'
    namespace, where the ZooKeeper view of the cluster reads every partition's state."""
    port = zk_server.servers[0].client_port

    def reads_since(before: Mntr) -> int:
        return zk_load([before], [read_mntr("127.0.0.1", port)], namespace=cluster.zk_root).reads

    before = read_mntr("127.0.0.1", port)
    assert cluster.find_coordinator("anything") is cluster.broker(1)
    assert reads_since(before) == 0
    before = read_mntr("127.0.0.1", port)
    assert cluster.coordinator_for("anything") is cluster.broker(1)
    assert reads_since(before) > OFFSETS_PARTITIONS, "the view reads each offsets partition's state"


def test_api_versions_advertises_exactly_the_implemented_ranges(cluster: BrokerCluster) -> None:
    response = send_request(cluster.broker(1).address, ApiVersionsRequest(version=3))
    assert response.error_code == 0
    assert {k.api_key: (k.min_version, k.max_version) for k in response.api_keys} == {
        int(k): v for k, v in API_VERSIONS.items()
    }


def test_kafka_python_consumer_joins_and_gets_everything(cluster: BrokerCluster) -> None:
    consumer = kafka_python(cluster, group_name())
    try:
        wait_until(lambda: kp_assignment(consumer) == ALL, 30, what="kafka-python assignment")
    finally:
        consumer.close()


def test_librdkafka_consumer_joins_and_gets_everything(cluster: BrokerCluster) -> None:
    consumer = Librdkafka(cluster, group_name())
    try:
        wait_until(lambda: consumer.assignment() == ALL, 30, what="librdkafka assignment")
        assert set((tp.topic, tp.partition) for tp in consumer.consumer.assignment()) == ALL
    finally:
        consumer.close()


def test_mixed_group_is_complete_and_disjoint_and_survivor_takes_all(cluster: BrokerCluster) -> None:
    group = group_name()
    kp = kafka_python(cluster, group)
    rd = Librdkafka(cluster, group)
    try:

        def split() -> bool:
            a, b = kp_assignment(kp), rd.assignment()
            return bool(a) and bool(b) and a | b == ALL and not a & b

        wait_until(split, 60, what="a complete, disjoint assignment over both clients")
        before = latest_group_record(cluster, group)
        assert before is not None and len(before.members) == 2
        kp.close()  # sends LeaveGroup
        wait_until(lambda: rd.assignment() == ALL, 60, what="librdkafka to take every partition")
        after = latest_group_record(cluster, group)
        assert after is not None and after.generation_id > before.generation_id
        assert len(after.members) == 1
        description = cluster.describe_group(group)
        assert description.group_state == "Stable" and len(description.members) == 1
    finally:
        kp.close()
        rd.close()


def test_kafka_python_commits_and_reads_back(cluster: BrokerCluster) -> None:
    group = group_name()
    consumer = kafka_python(cluster, group)
    try:
        wait_until(lambda: kp_assignment(consumer) == ALL, 30, what="assignment")
        offsets = {
            TopicPartition(TOPIC, p): OffsetAndMetadata(100 + p, f"m{p}", -1) for p in range(PARTITIONS)
        }
        committed = consumer.call(lambda k: (k.commit(offsets), {tp: k.committed(tp) for tp in offsets})[1])
        assert committed == {tp: om.offset for tp, om in offsets.items()}
    finally:
        consumer.close()
    # A fresh consumer of the same group (another connection) sees the same offsets.
    reader = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert reader.committed(TopicPartition(TOPIC, 3)) == 103
    finally:
        reader.close()


def test_librdkafka_commits_and_reads_back(cluster: BrokerCluster) -> None:
    group = group_name()
    consumer = Librdkafka(cluster, group)
    try:
        wait_until(lambda: consumer.assignment() == ALL, 30, what="assignment")
        commits = [CKTopicPartition(TOPIC, p, 7 * p + 1) for p in range(PARTITIONS)]
        consumer.consumer.commit(offsets=commits, asynchronous=False)
        committed = consumer.consumer.committed(
            [CKTopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10
        )
        assert {tp.partition: tp.offset for tp in committed} == {p: 7 * p + 1 for p in range(PARTITIONS)}
    finally:
        consumer.close()


def test_broker_stats_count_requests_per_api(cluster: BrokerCluster) -> None:
    send_request(cluster.broker(1).address, ApiVersionsRequest(version=0))

    def counted() -> dict[str, object] | None:
        stats = cluster.stats()[1]
        return stats if stats and stats["apis"].get("ApiVersions", {}).get("requests", 0) > 0 else None

    stats = wait_until(counted, 10, what="broker_stats.json with ApiVersions counted")
    api = stats["apis"]["ApiVersions"]
    assert api["bytes_in"] > 0 and api["bytes_out"] > 0
    assert stats["broker_id"] == 1 and stats["offsets_partitions_led"] == list(range(OFFSETS_PARTITIONS))


def test_a_fresh_reading_counts_every_request_answered_before_it(cluster: BrokerCluster) -> None:
    """The sampler's reading at an action (``stats(fresh=True)``, SIGUSR1) counts the requests
    answered just before it, where the periodic file can be a second old: the episode that starts
    there must not be charged with them."""
    before = cluster.stats(fresh=True)[1]
    assert before is not None
    for _ in range(3):
        send_request(cluster.broker(1).address, ApiVersionsRequest(version=0))
    after = cluster.stats(fresh=True)[1]
    assert after is not None and after["time"] > before["time"]
    answered = [s["apis"].get("ApiVersions", {}).get("requests", 0) for s in (before, after)]
    assert answered[1] - answered[0] >= 3, answered


def test_unsupported_api_versions_version_gets_v0_answer_with_our_ranges(cluster: BrokerCluster) -> None:
    import socket
    import struct

    # ApiVersions v127 that we cannot parse: header v2 (flexible) with garbage after it.
    body = struct.pack(">hhi", 18, 127, 42) + struct.pack(">h", 3) + b"abc" + b"\x00" + b"\xff\xfe"
    with socket.create_connection(("127.0.0.1", cluster.broker(1).port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", sock.recv(4))[0]
        payload = b""
        while len(payload) < size:
            payload += sock.recv(size - len(payload))
    response = ApiVersionsResponse.decode(payload, version=0, header=True)
    assert response.header.correlation_id == 42
    assert response.error_code == 35  # UNSUPPORTED_VERSION
    assert {k.api_key for k in response.api_keys} == {int(k) for k in API_VERSIONS}


def test_stop_recorded_stops_brokers_of_another_process(zk_server: ZooKeeperEnsemble, tmp_path: Path) -> None:
    from bench.services.brokers import stop_recorded
    from bench.services.process import pid_alive

    c = BrokerCluster(zk_server.connect_string, 1, tmp_path, zk_root=f"/kafka-{uuid.uuid4().hex[:8]}")
    try:
        c.start()
        pid = c.broker(1).pid
        assert pid is not None and (tmp_path / "brokers.json").exists()
        assert stop_recorded(tmp_path) == [pid]
        wait_until(lambda: not pid_alive(pid), 10, what="the broker to exit")
    finally:
        c.stop()


def test_static_member_restart_causes_no_rebalance(cluster: BrokerCluster) -> None:
    """KIP-345: a static member that comes back within its session keeps the generation."""
    group = group_name()
    static = dict(session_timeout_ms=30_000)  # plenty of time to come back; no LeaveGroup on close
    a = kafka_python(cluster, group, group_instance_id="inst-a", **static)
    b = kafka_python(cluster, group, group_instance_id="inst-b", **static)
    try:

        def split() -> tuple[set[tuple[str, int]], set[tuple[str, int]]] | None:
            sa, sb = kp_assignment(a), kp_assignment(b)
            return (sa, sb) if sa and sb and sa | sb == ALL and not sa & sb else None

        share_a, share_b = wait_until(split, 60, what="two static members sharing the topic")
        before = wait_until(
            lambda: (r := latest_group_record(cluster, group)) and len(r.members) == 2 and r, 10
        )
        b.close()  # a static member sends no LeaveGroup: the group stays as it is
        assert cluster.describe_group(group).group_state == "Stable"
        b = kafka_python(cluster, group, group_instance_id="inst-b", **static)
        wait_until(lambda: kp_assignment(b) == share_b, 60, what="the restarted static member's old share")
        after = latest_group_record(cluster, group)
        assert after is not None and after.generation_id == before.generation_id
        ids = {m.group_instance_id: m.member_id for m in after.members}
        old_ids = {m.group_instance_id: m.member_id for m in before.members}
        assert ids["inst-a"] == old_ids["inst-a"] and ids["inst-b"] != old_ids["inst-b"]
        assert kp_assignment(a) == share_a
    finally:
        a.close()
        b.close()


def test_metadata_versions_and_topic_ids(cluster: BrokerCluster) -> None:
    address = cluster.broker(1).address
    all_v0 = send_request(address, MetadataRequest(version=0, topics=[]))
    assert {t.name for t in all_v0.topics} == {TOPIC, OFFSETS_TOPIC}
    none_v1 = send_request(address, MetadataRequest(version=1, topics=[]))
    assert none_v1.topics == [] and none_v1.controller_id == 1
    all_v12 = send_request(address, MetadataRequest(version=12, topics=None))
    by_name = {t.name: t for t in all_v12.topics}
    assert by_name[OFFSETS_TOPIC].is_internal and not by_name[TOPIC].is_internal
    orders = by_name[TOPIC]
    assert [p.leader_id for p in orders.partitions] == [1] * PARTITIONS
    assert all(p.error_code == 0 and p.isr_nodes == [1] for p in orders.partitions)
    by_id = send_request(
        address,
        MetadataRequest(
            version=12, topics=[MetadataRequest.MetadataRequestTopic(name=None, topic_id=orders.topic_id)]
        ),
    )
    assert by_id.topics[0].name == TOPIC and len(by_id.topics[0].partitions) == PARTITIONS
    assert [(b.node_id, b.port) for b in all_v12.brokers] == [(1, cluster.broker(1).port)]

"""Our coordinator-mode members, unchanged, against real Apache Kafka brokers (the reference targets).

One 2-broker Kafka 3.9 cluster (ZooKeeper mode, on the session's ZooKeeper under a chroot of its
own) is shared by the module's 3.9 tests; Kafka 4.0 (KRaft) gets one broker of its own. Members are
``rebalance-lab member`` processes, so a SIGKILL is real; the group is judged by their events
(:class:`bench.experiment.groups.MemberGroup`: one generation, every partition owned exactly once).
Skipped, with the reason, where Java 17 or Maven (``make setup``) is missing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupType
from confluent_kafka.admin import AdminClient

from bench.experiment.groups import MemberGroup
from bench.experiment.history import History
from bench.services.java import java_module
from bench.services.jolokia import read_counters
from bench.services.kafka import KafkaCluster
from bench.services.kafka_config import KafkaSettings, kafka_target
from bench.services.members import MemberProcess
from bench.services.zookeeper import ZooKeeperEnsemble
from group_api import EventKind
from tests.conftest import wait_until
from tests.integration import test_interop as interop
from tests.integration.test_coordinator_member import TOPICS as INTEROP_TOPICS
from tests.kafka_targets import skip_unless_built

pytestmark = pytest.mark.kafka

TOPICS = {"orders": 6}
SESSION_MS = 6_000  # Kafka's group.min.session.timeout.ms
#: The ``fast`` profile's broker side: no initial delay, the minimum session our members ask for.
SETTINGS = KafkaSettings(initial_rebalance_delay_ms=0, zk_session_timeout_ms=6_000)
MEMBER_ARGS = [
    "--mode",
    "coordinator",
    "--topic",
    "orders",
    "--session-timeout-ms",
    str(SESSION_MS),
    "--heartbeat-interval-ms",
    "500",
    "--rebalance-timeout-ms",
    "10000",
    "--option",
    "auto_commit_interval_ms=1000",
]
STABLE_S = 90.0  # a crash waits out a session, then a rebalance, on two busy cores


@pytest.fixture(scope="module")
def kafka39(zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    target = kafka_target("3.9-classic")
    skip_unless_built(target)
    cluster = KafkaCluster(
        target,
        2,
        tmp_path_factory.mktemp("kafka39"),
        SETTINGS,
        zk_connect=zk_server.connect_string,
        topics=TOPICS | INTEROP_TOPICS,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class Group:
    """A :class:`MemberGroup` of member processes on ``bootstrap``; every process killed at the end."""

    def __init__(self, bootstrap: str, log_dir: Path, client_args: tuple[str, ...] = ()) -> None:
        self.history = History()
        self.members = MemberGroup(
            f"g-{uuid.uuid4().hex[:6]}",
            TOPICS,
            1,
            ["--bootstrap", bootstrap, *MEMBER_ARGS, *client_args],
            self.history,
            log_dir,
            MemberProcess,
        )

    def wait_stable(self, newer_than: int | None, what: str) -> int:
        wait_until(lambda: self.members.stable(newer_than), STABLE_S, 0.1, f"{self.members.name}: {what}")
        generation = self.members.generation()
        assert generation is not None
        leaders = self.members.view().leaders(self.members.live_ids())
        assert len(leaders - {None}) == 1, f"{what}: leaders {leaders}"
        return generation

    def close(self) -> None:
        for proc in self.members.procs:
            proc.close()


#: The members a ``group`` parameter names after its cluster: ours, or Kafka's Java consumer
#: (java/member) with the classic protocol or KIP-848's.
CLIENTS = {
    "": (),
    "java": ("--client", "java"),
    "java-848": ("--client", "java", "--option", "protocol=consumer"),
}


@pytest.fixture
def group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Group]:
    """``request.param``: a cluster fixture's name, then ``:`` and a :data:`CLIENTS` key for Java members."""
    name, _, client = request.param.partition(":")
    if client:
        module = java_module("member")
        if not module.available:
            pytest.skip(f"the Java members: {module.reason}")
    cluster = request.getfixturevalue(name)
    g = Group(cluster.bootstrap, tmp_path, CLIENTS[client])
    try:
        yield g
    finally:
        g.close()


@pytest.mark.parametrize(
    "group", ["kafka39", pytest.param("kafka39:java", marks=pytest.mark.java)], indirect=True
)
def test_members_form_a_group_rebalance_on_a_join_and_survive_the_leaders_sigkill(group: Group) -> None:
    group.members.spawn(3)
    first = group.wait_stable(None, "three members converge")
    group.members.spawn(1)
    joined = group.wait_stable(first, "a fourth member joins")
    assert len(group.members.live_ids()) == 4
    leader = group.members.leader()
    proc = next(p for p in group.members.procs if leader in p.member_ids)
    group.members.kill(proc)
    after = group.wait_stable(joined, "the leader's SIGKILL is noticed and the rest converge")
    assert leader not in group.members.live_ids()
    assert after > joined


@pytest.mark.parametrize("group", ["kafka39"], indirect=True)
def test_the_group_survives_a_sigkill_of_its_coordinators_broker(kafka39: KafkaCluster, group: Group) -> None:
    group.members.spawn(3)
    group.wait_stable(None, "three members converge")
    coordinator = kafka39.coordinator_for(group.members.name)
    assert coordinator is not None
    coordinator.kill()
    try:
        # The other broker takes over the offsets partition once ZooKeeper expires the dead one's
        # session (and loads the group from it); the members find it with FindCoordinator.
        successor = wait_until(
            lambda: (c := kafka39.coordinator_for(group.members.name)) is not coordinator and c,
            STABLE_S,
            0.2,
            "another broker to coordinate the group",
        )
        took_over_ns = time.monotonic_ns()
        members = set(group.members.live_ids())

        def committed_since() -> set[str]:
            return {
                e.member
                for e in group.history.snapshot()
                if e.kind is EventKind.OFFSETS_COMMITTED and e.mono_ns > took_over_ns
            }

        wait_until(
            lambda: members <= committed_since(),
            STABLE_S,
            0.2,
            "every member to commit to the new coordinator",
        )
        group.wait_stable(None, "the group stable on the new coordinator")
        described = kafka39.describe_group(successor, group.members.name)
        assert described.group_state == "Stable"
        assert len(described.members) == 3
        assert all(p.alive() for p in group.members.procs)
    finally:
        coordinator.start()
        kafka39.wait_ready()


def test_our_members_kafka_python_and_librdkafka_share_a_group_on_kafka_3_9(kafka39: KafkaCluster) -> None:
    """The interop acceptance test of our brokers, unchanged, on real Kafka: one complete, disjoint
    assignment of a mixed group, and again after each real client leaves."""
    interop.test_mixed_group_of_our_members_kafka_python_and_librdkafka(kafka39)


def test_jolokia_request_counts_grow_with_the_requests_sent(kafka39: KafkaCluster) -> None:
    broker = kafka39.brokers[0]
    before = read_counters(broker.jolokia_url).get("Metadata", {}).get("requests", 0)
    sent = 7
    for _ in range(sent):
        kafka39.metadata(None, broker)
    after = read_counters(broker.jolokia_url)["Metadata"]["requests"]
    assert after - before >= sent


@pytest.fixture(scope="module")
def kafka40(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Kafka 4.0 in KRaft mode, serving both group protocols (the 4.0-consumer target)."""
    target = kafka_target("4.0-consumer")
    skip_unless_built(target)
    cluster = KafkaCluster(target, 1, tmp_path_factory.mktemp("kafka40"), SETTINGS, topics=TOPICS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.parametrize("group", ["kafka40"], indirect=True)
def test_our_members_converge_on_kafka_4_0_with_the_classic_protocol(group: Group) -> None:
    group.members.spawn(3)
    first = group.wait_stable(None, "three members converge")
    group.members.spawn(1)
    group.wait_stable(first, "a fourth member joins")


@pytest.mark.java
@pytest.mark.parametrize("group", ["kafka40:java-848"], indirect=True)
def test_java_members_converge_on_kafka_4_0_with_kip_848s_consumer_protocol(group: Group) -> None:
    """The broker assigns (group.remote.assignor); nobody leads, the member epoch is the generation."""
    group.members.spawn(2)
    wait_until(lambda: group.members.stable(None), STABLE_S, 0.1, "two Java members converge")
    first = group.members.generation()
    assert first is not None
    group.members.spawn(1)
    wait_until(lambda: group.members.stable(first), STABLE_S, 0.1, "a third Java member joins")
    assert group.members.view().leaders(group.members.live_ids()) == {None}


def test_a_librdkafka_consumer_joins_with_kip_848s_consumer_protocol(kafka40: KafkaCluster) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka40.bootstrap,
            "group.id": f"c-{uuid.uuid4().hex[:6]}",
            "group.protocol": "consumer",
        }
    )
    try:
        consumer.subscribe(list(TOPICS))

        def assigned() -> set[tuple[str, int]]:
            consumer.poll(0.2)
            return {(tp.topic, tp.partition) for tp in consumer.assignment()}

        owned = wait_until(assigned, 60, 0, "the consumer protocol to assign the partitions")
        wait_until(lambda: len(assigned()) == TOPICS["orders"], 60, 0, "every partition")
        assert owned <= {("orders", p) for p in range(TOPICS["orders"])}
    finally:
        consumer.close()


@pytest.mark.java
@pytest.mark.parametrize("group", ["kafka40"], indirect=True)
def test_a_mixed_group_of_our_members_and_java_members_converges_on_kafka_4_0_as_a_consumer_group(
    kafka40: KafkaCluster, group: Group
) -> None:
    """Kafka 4.0 lets classic-protocol members join a consumer-protocol group
    (``GroupMetadataManager.classicGroupJoinToConsumerGroup``, ``group.consumer.migration.policy``
    bidirectional by default): two Java members with KIP-848's protocol make the group a consumer
    group, two of ours join it with JoinGroup/SyncGroup, and the broker's assignment covers all four.
    Its JoinGroup answers name no leader, so our members lead nobody: no leader is asserted here."""
    module = java_module("member")
    if not module.available:
        pytest.skip(f"the Java members: {module.reason}")
    ours = list(group.members.member_args)
    group.members.member_args = [*ours, *CLIENTS["java-848"]]
    group.members.spawn(2)
    wait_until(lambda: group.members.stable(None), STABLE_S, 0.1, "two Java members converge")
    group.members.member_args = ours
    group.members.spawn(2)
    ids = group.members.live_ids()
    assert len(ids) == 4

    def converged() -> bool:
        # one epoch over all four, every partition owned exactly once, each member assigned
        return group.members.stable(None) and group.members.view().converged(ids)

    wait_until(converged, STABLE_S, 0.1, "our members and the Java members converge in one group")
    view = group.members.view()
    owned = [tp for m in ids for tp in view.members[m].counted]
    assert sorted(owned) == sorted(group.members.partitions)
    assert all(view.members[m].counted for m in ids), "a member got no partition"

    admin = AdminClient({"bootstrap.servers": kafka40.bootstrap})
    listed = admin.list_consumer_groups().result(timeout=30)
    types = {g.group_id: g.type for g in listed.valid}
    assert types.get(group.members.name) == ConsumerGroupType.CONSUMER, types
    described = admin.describe_consumer_groups([group.members.name])[group.members.name].result(timeout=30)
    assert described.type == ConsumerGroupType.CONSUMER
    assert len(described.members) == 4

"""KIP-848's consumer group protocol on our brokers: our ``consumer`` members and librdkafka's.

Real brokers (over the session's real ZooKeeper), our members in process and confluent-kafka with
``group.protocol=consumer``; judged by the members' events folded with
:class:`~bench.analysis.ownership.GroupOwnership` and by the checker on the whole history (no
partition with two owners at any instant, also while partitions move), and by ConsumerGroupDescribe.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bench.analysis.ownership import GroupOwnership
from bench.services.brokers import BrokerCluster, send_request
from coordinator_mode.broker.cluster_apis import topic_id
from coordinator_mode.schemas import ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest
from group_api import EventKind, ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import running_brokers, wait_until
from tests.integration.test_interop import RealClient

log = logging.getLogger(__name__)

TOPICS = {"orders": 6, "clicks": 3}
PARTITIONS = frozenset((t, p) for t, n in TOPICS.items() for p in range(n))
SESSION_MS = 6_000  # group.consumer.session.timeout.ms on these brokers
HEARTBEAT_MS = 500  # group.consumer.heartbeat.interval.ms
CONVERGE_S = 30.0


@pytest.fixture(scope="module")
def cluster(zk_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        1,
        tmp_path_factory.mktemp("kip848"),
        topics=dict(TOPICS),
        extra_args=(
            *("--consumer-session-timeout-ms", str(SESSION_MS)),
            *("--consumer-heartbeat-interval-ms", str(HEARTBEAT_MS)),
        ),
    ) as c:
        yield c


class Group:
    """In-process ``consumer`` members of one group, one sink; all closed at the end."""

    def __init__(self, cluster: BrokerCluster) -> None:
        self.cluster = cluster
        self.name = f"kip848-{uuid.uuid4().hex[:6]}"
        self.sink = ListSink()
        self.members: list[Any] = []

    def add(self, n: int = 1, **config: Any) -> list[Any]:
        new = []
        for _ in range(n):
            cfg = MemberConfig(
                group=self.name,
                topics=tuple(TOPICS),
                mode="coordinator",
                variant="consumer",
                member_name=f"m{len(self.members)}",
                session_timeout_ms=SESSION_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
                rebalance_timeout_ms=SESSION_MS,
                bootstrap=self.cluster.bootstrap,
                **config,
            )
            member = create_member(cfg, self.sink)
            member.start()
            self.members.append(member)
            new.append(member)
        return new

    def view(self) -> GroupOwnership:
        return GroupOwnership(PARTITIONS).apply_all(list(self.sink.events))

    def wait_converged(self, names: list[str], extra: Any = None) -> GroupOwnership:
        """Our ``names`` hold one epoch and, with ``extra`` (other clients' assignments, read from
        them), own every partition exactly once."""

        def done() -> GroupOwnership | None:
            view = self.view()
            if any(n not in view.members or not view.members[n].settled for n in names):
                return None  # every one of them has reported an assignment
            others = extra() if callable(extra) else (extra or {})
            owned = [tp for n in names for tp in view.members.get(n, _EMPTY).counted]
            owned += [tp for parts in others.values() for tp in parts]
            if view.generation(names) is None or sorted(owned) != sorted(PARTITIONS):
                return None
            return view

        try:
            return wait_until(done, CONVERGE_S, interval=0.1, what=f"{names} to converge")
        except TimeoutError:
            view = self.view()
            state = {m: (v.generation, sorted(v.counted)) for m, v in view.members.items()}
            raise AssertionError(f"no convergence of {names}: {state}") from None

    def close(self) -> None:
        for m in self.members:
            m.close()


class _Empty:
    counted: frozenset = frozenset()


_EMPTY = _Empty()


@pytest.fixture
def group(cluster: BrokerCluster) -> Iterator[Group]:
    g = Group(cluster)
    try:
        yield g
    finally:
        g.close()


def describe(cluster: BrokerCluster, group: str) -> Any:
    coordinator = cluster.coordinator_for(group)
    assert coordinator is not None
    response = send_request(
        coordinator.address,
        ConsumerGroupDescribeRequest(version=0, group_ids=[group], include_authorized_operations=False),
        timeout=5,
    )
    (described,) = response.groups
    return described


def double_owned(events: list[Any]) -> list[str]:
    """Every instant at which two members' reports claimed one partition (the checker's fold)."""
    view = GroupOwnership(PARTITIONS)
    clashes = []
    for event in events:
        view.apply(event)
        owners: dict[tuple[str, int], str] = {}
        for name, m in view.members.items():
            for tp in m.counted:
                if tp in owners:
                    clashes.append(
                        f"{tp} owned by {owners[tp]} and {name} after {event.kind} of {event.member}"
                    )
                owners[tp] = name
    return clashes


def test_our_members_converge_and_hand_over_only_after_revocation(
    group: Group, cluster: BrokerCluster
) -> None:
    first = group.add(2, assignor="sticky")  # the uniform server assignor
    group.wait_converged([m.member_id for m in first])
    joined_ns = time.monotonic_ns()
    third = group.add(1, assignor="sticky")
    names = [m.member_id for m in first + third]
    view = group.wait_converged(names)
    assert all(len(view.members[n].counted) == 3 for n in names), {
        n: sorted(view.members[n].counted) for n in names
    }

    described = describe(cluster, group.name)
    assert described.error_code == 0 and described.group_state == "Stable"
    assert described.group_epoch == described.assignment_epoch == 3  # three joins
    assert {m.member_epoch for m in described.members} == {3}
    for m in described.members:

        def parts(a: Any) -> list[tuple[str, list[int]]]:
            return [(tp.topic_name, list(tp.partitions)) for tp in a.topic_partitions]

        assert parts(m.assignment) == parts(m.target_assignment)

    # Nobody gave up everything (no eager revocation): the two first members revoked only what moved.
    revoked = [e for e in group.sink.events if e.kind == EventKind.REVOKED and e.mono_ns >= joined_ns]
    assert sum(len(e.partitions or ()) for e in revoked) == 3  # 5 + 4 -> 3 + 3 + 3
    assert double_owned(list(group.sink.events)) == []

    # A leave (epoch -1) bumps the group epoch; the two left take over its partitions.
    third[0].leave()
    view = group.wait_converged(names[:2])
    assert describe(cluster, group.name).group_epoch == 4
    assert double_owned(list(group.sink.events)) == []


def test_static_member_keeps_its_partitions_across_a_restart(group: Group, cluster: BrokerCluster) -> None:
    a, b = group.add(2, group_instance_id=None), group.add(1, group_instance_id="static-b")[0]
    names = [a[0].member_id, a[1].member_id, b.member_id]
    group.wait_converged(names)
    before = describe(cluster, group.name)
    b_partitions = set(group.view().members[b.member_id].counted)
    b.leave()  # epoch -2: the coordinator keeps its assignment for its return
    left = describe(cluster, group.name)
    assert {m.instance_id: m.member_epoch for m in left.members}["static-b"] == -2
    assert left.group_epoch == before.group_epoch  # no rebalance for a static member's restart

    back = group.add(1, group_instance_id="static-b")[0]
    view = group.wait_converged([*names[:2], back.member_id])
    assert set(view.members[back.member_id].counted) == b_partitions
    assert describe(cluster, group.name).group_epoch == before.group_epoch


def test_fencing_and_refused_mixed_groups(group: Group, cluster: BrokerCluster) -> None:
    (m,) = group.add(1)
    group.wait_converged([m.member_id])
    coordinator = cluster.coordinator_for(group.name)
    assert coordinator is not None

    def heartbeat(**fields: Any) -> Any:
        defaults = {
            "group_id": group.name,
            "member_id": "",
            "member_epoch": 0,
            "rebalance_timeout_ms": 5000,
            "subscribed_topic_names": list(TOPICS),
            "topic_partitions": [],
        }
        return send_request(
            coordinator.address, ConsumerGroupHeartbeatRequest(version=0, **{**defaults, **fields}), timeout=5
        )

    assert (
        heartbeat(member_id="nobody", member_epoch=5, topic_partitions=None).error_code == 25
    )  # UNKNOWN_MEMBER_ID
    assert heartbeat(member_id=m.kafka_member_id, member_epoch=99).error_code == 110  # FENCED_MEMBER_EPOCH
    assert heartbeat(server_assignor="nope").error_code == 112  # UNSUPPORTED_ASSIGNOR
    # A classic JoinGroup to this group gets INCONSISTENT_GROUP_PROTOCOL; a heartbeat to a classic one
    # GROUP_ID_NOT_FOUND.
    from kafka.protocol.consumer import JoinGroupRequest

    join = JoinGroupRequest(
        version=5,
        group_id=group.name,
        session_timeout_ms=6000,
        rebalance_timeout_ms=6000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[("range", b"")],
    )
    assert send_request(coordinator.address, join, timeout=10).error_code == 23
    classic = Group(cluster)
    classic_member = create_member(
        MemberConfig(
            group=classic.name,
            topics=tuple(TOPICS),
            mode="coordinator",
            variant="classic",
            member_name="c0",
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            rebalance_timeout_ms=SESSION_MS,
            bootstrap=cluster.bootstrap,
        ),
        classic.sink,
    )
    try:
        classic_member.start()
        wait_until(lambda: classic_member.assignment(), CONVERGE_S, what="the classic member's assignment")
        c2 = cluster.coordinator_for(classic.name)
        assert c2 is not None
        answer = send_request(
            c2.address,
            ConsumerGroupHeartbeatRequest(
                version=0,
                group_id=classic.name,
                member_id="",
                member_epoch=0,
                rebalance_timeout_ms=5000,
                subscribed_topic_names=list(TOPICS),
                topic_partitions=[],
            ),
            timeout=5,
        )
        assert answer.error_code == 69  # GROUP_ID_NOT_FOUND: "is not a consumer group"
    finally:
        classic_member.close()
    assert topic_id("orders")  # the ids our broker gives are the ones assignments carry


class Kip848Confluent(RealClient):
    """confluent-kafka (librdkafka) with ``group.protocol=consumer``: the broker assigns."""

    kind = "confluent-kafka-consumer"

    def __init__(self, name: str, bootstrap: str, group: str) -> None:
        super().__init__(name)
        self.bootstrap, self.group = bootstrap, group

    def _create(self) -> Any:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "client.id": self.name,
                "group.protocol": "consumer",  # its session and heartbeat are the brokers'
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        consumer.subscribe(list(TOPICS))
        return consumer

    def _poll(self, consumer: Any) -> None:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error():
            log.info("%s: %s", self.name, msg.error())

    def _observe(self, consumer: Any) -> tuple[frozenset, str, int | None]:
        return (
            frozenset((p.topic, p.partition) for p in consumer.assignment()),
            consumer.memberid() or "",
            None,
        )

    def _close(self, consumer: Any) -> None:
        consumer.close()


def test_librdkafka_consumer_protocol_alone_and_with_our_members(
    group: Group, cluster: BrokerCluster
) -> None:
    """confluent-kafka with group.protocol=consumer: two of them share a group on our brokers, then
    one of our members joins; each handover completes with every partition owned exactly once."""
    import confluent_kafka

    assert confluent_kafka.libversion()[1] >= 0x02040000, "group.protocol=consumer needs librdkafka 2.4+"
    real = [Kip848Confluent(f"rdkafka-{i}", cluster.bootstrap, group.name).start() for i in range(2)]
    try:

        def assignments() -> dict[str, frozenset]:
            return {c.name: c.assignment() for c in real}

        def alone() -> bool:
            parts = [tp for a in assignments().values() for tp in a]
            return sorted(parts) == sorted(PARTITIONS) and all(assignments().values())

        wait_until(alone, CONVERGE_S, interval=0.1, what="two librdkafka consumers to share the group")
        described = describe(cluster, group.name)
        assert described.group_state == "Stable" and len(described.members) == 2

        (ours,) = group.add(1)
        group.wait_converged([ours.member_id], extra=assignments)
        wait_until(
            lambda: describe(cluster, group.name).group_state == "Stable",
            CONVERGE_S,
            interval=0.2,
            what="the mixed group to be stable",
        )
        view = group.wait_converged([ours.member_id], extra=assignments)
        assert view.members[ours.member_id].counted and all(assignments().values())
        described = describe(cluster, group.name)
        assert len({m.member_epoch for m in described.members}) == 1 and len(described.members) == 3

        real[0].close()
        assert real[0].error is None
        group.wait_converged([ours.member_id], extra=lambda: {real[1].name: real[1].assignment()})
    finally:
        for c in real:
            c.close()
    assert all(c.error is None for c in real)

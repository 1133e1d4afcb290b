"""KIP-429 on our brokers: cooperative members, alone and with confluent-kafka's and kafka-python's
``cooperative-sticky`` consumers, revoke only the partitions that move.

Real clients report through their rebalance callbacks (``on_revoke`` gets only the revoked
partitions under cooperative-sticky), which the test turns into the same ``assigned``/``revoked``
events our members emit, into one sink; the one ownership fold
(:class:`bench.analysis.ownership.GroupOwnership`) then says, event by event, that no partition was
owned twice, and the events say which partitions each member revoked on each join.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.ownership import GroupOwnership
from bench.services.brokers import BrokerCluster
from coordinator_mode.client.member import CoordinatorMember
from group_api import Event, EventKind, ListSink, stamp
from tests.integration.test_coordinator_member import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TOPICS,
    Members,
    running_cluster,
)
from tests.integration.test_interop import MixedGroup, RealClient

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
COOPERATIVE = {"variant": "cooperative"}


class CallbackEvents:
    """A real client's rebalance callbacks as member events in the shared sink."""

    def __init__(self, sink: ListSink, name: str, group: str, variant: str) -> None:
        self.sink, self.name, self.group, self.variant = sink, name, group, variant
        self.owned: frozenset[TopicPartition] = frozenset()

    def _emit(self, kind: EventKind, partitions: frozenset[TopicPartition]) -> None:
        self.sink(
            stamp(
                kind,
                member=self.name,
                group=self.group,
                mode="client",
                variant=self.variant,
                partitions=partitions,
            )
        )

    def assigned(self, added: frozenset[TopicPartition]) -> None:
        self.owned |= added
        self._emit(EventKind.ASSIGNED, self.owned)

    def revoked(self, revoked: frozenset[TopicPartition]) -> None:
        self.owned -= revoked
        if revoked:
            self._emit(EventKind.REVOKED, revoked)


class CooperativeConfluent(RealClient):
    """confluent-kafka (librdkafka) with ``partition.assignment.strategy=cooperative-sticky``."""

    kind = "confluent-kafka"

    def __init__(self, name: str, bootstrap: str, group: str, sink: ListSink) -> None:
        super().__init__(name)
        self.bootstrap, self.group = bootstrap, group
        self.events = CallbackEvents(sink, name, group, "librdkafka-cooperative-sticky")

    def _create(self) -> Any:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "client.id": self.name,
                "session.timeout.ms": SESSION_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
                "max.poll.interval.ms": SESSION_MS,
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )

        # Incremental under cooperative-sticky: only the added / the revoked partitions; the
        # client applies them itself after the callback (incremental_assign / _unassign).
        def on_assign(c: Any, partitions: list[Any]) -> None:
            self.events.assigned(frozenset((p.topic, p.partition) for p in partitions))

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            self.events.revoked(frozenset((p.topic, p.partition) for p in partitions))

        consumer.subscribe(list(TOPICS), on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        return consumer

    def _poll(self, consumer: Any) -> None:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error():
            log.info("%s: %s", self.name, msg.error())

    def _observe(self, consumer: Any) -> tuple[frozenset[TopicPartition], str, int | None]:
        actual = frozenset((p.topic, p.partition) for p in consumer.assignment())
        assert actual == self.events.owned, (
            f"callbacks say {sorted(self.events.owned)}, assignment() {sorted(actual)}"
        )
        return actual, consumer.memberid() or "", None

    def _close(self, consumer: Any) -> None:
        consumer.close()


class CooperativeKafkaPython(RealClient):
    """kafka-python 3 with its ``CooperativeStickyAssignor``."""

    kind = "kafka-python"

    def __init__(self, name: str, bootstrap: str, group: str, sink: ListSink) -> None:
        super().__init__(name)
        self.bootstrap, self.group = bootstrap, group
        self.events = CallbackEvents(sink, name, group, "kafka-python-cooperative-sticky")

    def _create(self) -> Any:
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

        events = self.events

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                events.revoked(frozenset((tp.topic, tp.partition) for tp in revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                events.assigned(frozenset((tp.topic, tp.partition) for tp in assigned))

            def on_partitions_lost(self, lost: Any) -> None:
                self.on_partitions_revoked(lost)

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=self.name,
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=SESSION_MS,
            partition_assignment_strategy=[CooperativeStickyAssignor],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe(list(TOPICS), listener=Listener())
        return consumer

    def _poll(self, consumer: Any) -> None:
        consumer.poll(timeout_ms=100)

    def _observe(self, consumer: Any) -> tuple[frozenset[TopicPartition], str, int | None]:
        parts = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
        meta = consumer.group_metadata()
        return parts, meta.member_id or "", meta.generation_id if meta.generation_id >= 0 else None

    def _close(self, consumer: Any) -> None:
        consumer.close(autocommit=False)


def never_owned_twice(events: list[Event]) -> None:
    """Replay the history event by event: no partition is ever counted for two members."""
    view = GroupOwnership(PARTITIONS)
    for e in events:
        view.apply(e)
        assert not view.overlapping, f"after {e.to_dict()}: {sorted(view.overlapping)} owned twice"


def revoked_by(events: list[Event]) -> dict[str, set[TopicPartition]]:
    out: dict[str, set[TopicPartition]] = {}
    for e in events:
        if e.kind == EventKind.REVOKED:
            out.setdefault(e.member, set()).update(e.partitions or ())
    return out


def owned_by(ours: list[CoordinatorMember], real: list[RealClient]) -> dict[str, frozenset[TopicPartition]]:
    """Who owns what now, by the names the events use."""
    owned = {m.member_id: frozenset(a.partitions) for m in ours if (a := m.assignment()) is not None}
    owned.update({c.name: c.assignment() for c in real})
    return owned


def assert_only_moved_revoked(
    before: dict[str, frozenset[TopicPartition]],
    after: dict[str, frozenset[TopicPartition]],
    events: list[Event],
) -> int:
    """Each member present before revoked exactly what it owned before and not after; returns how
    many partitions moved."""
    revoked = revoked_by(events)
    for member, owned in before.items():
        assert revoked.get(member, set()) == set(owned - after[member]), (member, revoked, before, after)
    assert set(revoked) <= set(before), f"a newcomer revoked something: {revoked}"
    return sum(len(owned - after[m]) for m, owned in before.items())


@pytest.fixture
def cluster(zk_server, tmp_path: Path) -> Iterator[BrokerCluster]:
    with running_cluster(zk_server.connect_string, tmp_path / "brokers", 1) as c:
        yield c


def test_a_join_revokes_only_what_moves_and_a_second_round_hands_it_over(cluster: BrokerCluster) -> None:
    members = Members(cluster.bootstrap, "coop")
    try:
        group = members.add(2, **COOPERATIVE)
        first = members.wait_converged(group).generation([m.member_id for m in group])
        before = owned_by(group, [])
        mark = len(members.sink.events)
        group += members.add(1, **COOPERATIVE)
        members.wait_converged(group, newer_than=first)
        events = members.sink.events[mark:]
        moved = assert_only_moved_revoked(before, owned_by(group, []), events)
        assert moved == 3  # 5 + 4 of 9 -> 3 + 3 + 3
        # Round 1 withheld the moved partitions (the leader's plan gave the newcomer nothing a
        # member still owned); round 2 handed them over: two generations, each planned once.
        plans = [e for e in events if e.kind == EventKind.ASSIGNMENT_COMPUTED]
        assert len(plans) >= 2
        newcomer = group[-1].kafka_member_id
        assert plans[0].extra["assignment"][newcomer] == [], plans[0].extra
        assert plans[0].extra["protocol"] == "cooperative-sticky"
        never_owned_twice(members.sink.events)
    finally:
        members.close()


def test_a_mixed_cooperative_group_revokes_only_moved_partitions(cluster: BrokerCluster) -> None:
    """Our leader, then a librdkafka and a kafka-python cooperative-sticky consumer, then another
    of ours join one by one; at each join only the partitions that change owner are revoked."""
    members = Members(cluster.bootstrap, "coop-mixed")
    group = MixedGroup(members)
    sink = members.sink
    real: list[RealClient] = []
    try:
        ours = members.add(1, **COOPERATIVE)
        generation = group.wait_converged(ours, [])
        joins = [
            lambda: real.append(
                CooperativeConfluent("librdkafka-coop", cluster.bootstrap, members.group, sink).start()
            ),
            lambda: real.append(
                CooperativeKafkaPython("kafka-python-coop", cluster.bootstrap, members.group, sink).start()
            ),
            lambda: ours.extend(members.add(1, **COOPERATIVE)),
        ]
        moved = []
        for join in joins:
            before = owned_by(ours, real)
            mark = len(sink.events)
            join()
            generation = group.wait_converged(ours, real, newer_than=generation)
            moved.append(assert_only_moved_revoked(before, owned_by(ours, real), sink.events[mark:]))
        assert moved == [4, 3, 2]  # 9 partitions: 9 -> 5+4 -> 3+3+3 -> 3+2+2+2
        assert ours[0].assignment().is_leader
        never_owned_twice(sink.events)
        for c in real:
            assert c.error is None, f"{c.name}: {c.error!r}"
    finally:
        for c in real:
            c.close()
        members.close()

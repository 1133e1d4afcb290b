"""Interop acceptance: our members share a group with kafka-python and librdkafka consumers.

A group of two of our members, one kafka-python ``KafkaConsumer`` and one confluent-kafka
``Consumer`` converges to one complete, disjoint assignment; when a real client closes, the others
follow to a new complete, disjoint generation. Our first member joins alone first, so it is the
leader (the coordinator keeps the first member as leader while it stays): its
``assignment_computed`` events say what every member of each generation must own, keyed by the
coordinator's member ids, which each real client reports too.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.services.brokers import BrokerCluster
from coordinator_mode.client.member import CoordinatorMember
from group_api import EventKind
from tests.conftest import wait_until
from tests.integration.test_coordinator_member import (
    HEARTBEAT_MS,
    PARTITIONS,
    SESSION_MS,
    TOPICS,
    Members,
    running_cluster,
)

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
CONVERGE_S = 40.0


class RealClient(ABC):
    """A real consumer whose poll loop runs in its own thread (the clients are not thread-safe, so
    everything, close included, happens on that thread); it publishes its state after each poll."""

    kind: str

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._member_id = ""
        self._generation: int | None = None
        self._stop = threading.Event()
        self._closed = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> RealClient:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            consumer = self._create()
            try:
                while not self._stop.is_set():
                    self._poll(consumer)
                    assignment, member_id, generation = self._observe(consumer)
                    with self._lock:
                        self._assignment, self._member_id = assignment, member_id
                        self._generation = generation
            finally:
                self._close(consumer)
                with self._lock:
                    self._assignment = frozenset()
        except BaseException as exc:  # surfaced by the test through .error
            log.exception("%s failed", self.name)
            self.error = exc
        finally:
            self._closed.set()

    def assignment(self) -> frozenset[TopicPartition]:
        with self._lock:
            return self._assignment

    def kafka_member_id(self) -> str:
        with self._lock:
            return self._member_id

    def generation(self) -> int | None:
        """The client's generation, where its API tells (kafka-python does, librdkafka does not)."""
        with self._lock:
            return self._generation

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._closed.wait(timeout)

    @abstractmethod
    def _create(self) -> Any: ...

    @abstractmethod
    def _poll(self, consumer: Any) -> None: ...

    @abstractmethod
    def _observe(self, consumer: Any) -> tuple[frozenset[TopicPartition], str, int | None]:
        """(assignment, the coordinator's member id, generation if known), read on the poll thread."""

    @abstractmethod
    def _close(self, consumer: Any) -> None: ...


class KafkaPythonClient(RealClient):
    kind = "kafka-python"

    def __init__(self, name: str, bootstrap: str, group: str) -> None:
        super().__init__(name)
        self.bootstrap, self.group = bootstrap, group

    def _create(self) -> Any:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.range import RangePartitionAssignor

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=self.name,
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=SESSION_MS,
            partition_assignment_strategy=[RangePartitionAssignor],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe(list(TOPICS))
        return consumer

    def _poll(self, consumer: Any) -> None:
        consumer.poll(timeout_ms=100)

    def _observe(self, consumer: Any) -> tuple[frozenset[TopicPartition], str, int | None]:
        parts = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
        meta = consumer.group_metadata()
        return parts, meta.member_id or "", meta.generation_id if meta.generation_id >= 0 else None

    def _close(self, consumer: Any) -> None:
        consumer.close(autocommit=False)


class ConfluentClient(RealClient):
    kind = "confluent-kafka"

    def __init__(self, name: str, bootstrap: str, group: str) -> None:
        super().__init__(name)
        self.bootstrap, self.group = bootstrap, group
        self._owned: frozenset[TopicPartition] = frozenset()

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
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )

        # Callbacks run inside poll(), on this thread.
        def on_assign(c: Any, partitions: list[Any]) -> None:
            self._owned = frozenset((p.topic, p.partition) for p in partitions)

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            self._owned = frozenset()

        consumer.subscribe(list(TOPICS), on_assign=on_assign, on_revoke=on_revoke)
        return consumer

    def _poll(self, consumer: Any) -> None:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error():
            log.info("%s: %s", self.name, msg.error())

    def _observe(self, consumer: Any) -> tuple[frozenset[TopicPartition], str, int | None]:
        actual = frozenset((p.topic, p.partition) for p in consumer.assignment())
        assert actual == self._owned, f"on_assign said {sorted(self._owned)}, assignment() {sorted(actual)}"
        return actual, consumer.memberid() or "", None

    def _close(self, consumer: Any) -> None:
        consumer.close()


class MixedGroup:
    """Our members plus real clients, judged together."""

    def __init__(self, members: Members) -> None:
        self.members = members
        self.ours: list[CoordinatorMember] = []
        self.real: list[RealClient] = []

    def computed(self) -> dict[int, dict[str, frozenset[TopicPartition]]]:
        """Per generation, the leader's assignment keyed by the coordinator's member ids."""
        out = {}
        for e in self.members.sink.events:
            if e.kind == EventKind.ASSIGNMENT_COMPUTED:
                out[e.generation] = {
                    m: frozenset((t, p) for t, p in parts) for m, parts in e.extra["assignment"].items()
                }
        return out

    def converged(
        self, ours: list[CoordinatorMember], real: list[RealClient], newer_than: int = -1
    ) -> int | None:
        """The generation everyone is in, if together they own every partition exactly once and
        each owns some. When our member led that generation, each member must own exactly what the
        leader assigned it; when a real client led, kafka-python's reported generation must match."""
        assignments = [m.assignment() for m in ours]
        if any(a is None for a in assignments):
            return None
        generations = {a.generation for a in assignments} | {
            g for c in real if (g := c.generation()) is not None
        }
        if len(generations) != 1:
            return None
        (generation,) = generations
        if generation <= newer_than:
            return None
        owned: dict[str, frozenset[TopicPartition]] = {
            m.kafka_member_id: frozenset(a.partitions) for m, a in zip(ours, assignments, strict=True)
        }
        owned.update({c.kafka_member_id(): c.assignment() for c in real})
        if "" in owned or len(owned) != len(ours) + len(real):
            return None  # a member id not known yet (or two alike)
        plan = self.computed().get(generation)
        if any(a.is_leader for a in assignments):
            if plan is None or plan != owned:
                return None
        elif not all(owned.values()):
            return None
        flat = [tp for parts in owned.values() for tp in parts]
        if len(flat) != len(set(flat)) or set(flat) != PARTITIONS:
            return None
        return generation

    def wait_converged(
        self, ours: list[CoordinatorMember], real: list[RealClient], newer_than: int = -1
    ) -> int:
        def check() -> int | None:
            for c in real:
                assert c.error is None, f"{c.name} failed: {c.error!r}"
            return self.converged(ours, real, newer_than)

        try:
            return wait_until(check, CONVERGE_S, interval=0.1, what="the mixed group to converge")
        except TimeoutError:
            state = {m.member_id: (m.kafka_member_id, m.assignment()) for m in ours}
            state.update({c.name: (c.kafka_member_id(), sorted(c.assignment())) for c in real})
            raise AssertionError(
                f"no convergence past {newer_than}: {state}; plans: {self.computed()}"
            ) from None


@pytest.fixture
def cluster(zk_server, tmp_path: Path) -> Iterator[BrokerCluster]:
    with running_cluster(zk_server.connect_string, tmp_path / "brokers", 1) as c:
        yield c


def test_mixed_group_of_our_members_kafka_python_and_librdkafka(cluster: BrokerCluster) -> None:
    members = Members(cluster.bootstrap, "interop")
    group = MixedGroup(members)
    real: list[RealClient] = []
    try:
        (leader,) = members.add(1)
        first = group.wait_converged([leader], [])
        kp = KafkaPythonClient("kafka-python-0", cluster.bootstrap, members.group).start()
        rd = ConfluentClient("librdkafka-0", cluster.bootstrap, members.group).start()
        real = [kp, rd]
        ours = [leader, *members.add(1)]
        generation = group.wait_converged(ours, real, newer_than=first)
        assert all(m.assignment() for m in ours) and all(c.assignment() for c in real)
        assert leader.assignment().is_leader

        # A real client closes (LeaveGroup): the rest follow to a new complete generation.
        kp.close()
        assert kp.error is None
        generation = group.wait_converged(ours, [rd], newer_than=generation)

        rd.close()
        assert rd.error is None
        group.wait_converged(ours, [], newer_than=generation)
    finally:
        for c in real:
            c.close()
        members.close()


def test_our_members_follow_a_kafka_python_leader(cluster: BrokerCluster) -> None:
    """The other way round: kafka-python joins first and leads, so our members decode an assignment
    a real client's RangeAssignor encoded; when that leader closes, leadership moves on."""
    members = Members(cluster.bootstrap, "interop-real-leader")
    group = MixedGroup(members)
    real: list[RealClient] = []
    try:
        kp = KafkaPythonClient("kafka-python-leader", cluster.bootstrap, members.group).start()
        real = [kp]
        wait_until(lambda: kp.assignment() == PARTITIONS, CONVERGE_S, what="kafka-python alone to own all")
        rd = ConfluentClient("librdkafka-1", cluster.bootstrap, members.group).start()
        real.append(rd)
        ours = members.add(2)
        generation = group.wait_converged(ours, real, newer_than=kp.generation() or 0)
        assert not any(m.assignment().is_leader for m in ours)
        assert not any(e.kind == EventKind.ASSIGNMENT_COMPUTED for e in members.sink.events)
        leaders = {
            e.extra["leader_kafka_member_id"] for e in members.sink.events if e.kind == EventKind.ASSIGNED
        }
        assert leaders == {kp.kafka_member_id()}

        kp.close()
        assert kp.error is None
        group.wait_converged(ours, [rd], newer_than=generation)
    finally:
        for c in real:
            c.close()
        members.close()

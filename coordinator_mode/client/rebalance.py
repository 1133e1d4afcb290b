"""One JoinGroup + SyncGroup round of the classic group protocol (aiokafka's CoordinatorGroupRebalance).

The round, as Kafka's coordinator runs it (``GroupMetadataManager.classicGroupJoin`` and
``classicGroupSync`` in the ``group-coordinator`` module):

1. **JoinGroup** with protocol type ``consumer`` and one protocol per assignor name, each carrying a
   ``ConsumerProtocolSubscription``. A first join (v4+) is answered at once with
   ``MEMBER_ID_REQUIRED`` and a member id; we join again with it (KIP-394). The coordinator parks
   the join until every member has joined (or the rebalance timeout), then answers every member
   with the new generation and the leader's id; only the leader gets the member list.
2. **SyncGroup.** The leader runs the shared assignor for the protocol the group chose (by vote),
   on its cached metadata (:meth:`GroupRebalance.compute_assignment`), and sends every member's
   ``ConsumerProtocolAssignment``; followers send an empty SyncGroup and
   are parked until the leader's arrives. Everyone gets back its own assignment. Under
   ``cooperative-sticky`` (KIP-429) the subscriptions list what each member still owns, and the
   assignor withholds what changes owner; what the member does with the answer is
   :mod:`.rebalance_protocol`'s.

Errors are raised as kafka-python's exception classes; the caller (the member) decides between
rejoin, rediscovery and giving up. This class keeps no state between rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kafka.errors as Errors
from kafka.protocol.consumer.group import JoinGroupRequest, SyncGroupRequest

from group_api import TopicPartition

from ..subscription import (
    PROTOCOL_TYPE,
    Subscription,
    assignments_to_wire,
    decode_assignment,
    decode_subscription,
    encode_subscription,
)
from .connection import KafkaClient, KafkaConnection

log = logging.getLogger(__name__)

#: Extra time a parked JoinGroup may take beyond the rebalance timeout (Java's joinGroupTimeoutMs).
JOIN_TIMEOUT_SLACK_S = 5.0
#: JoinGroup v5 added group.instance.id: a static member cannot use anything older.
MIN_JOIN_VERSION_STATIC = 5


@dataclass(frozen=True)
class Generation:
    """What one successful JoinGroup told us (kafka-python's ``Generation`` plus the leader)."""

    generation_id: int
    member_id: str  # the coordinator's id for us
    protocol: str | None
    leader_id: str

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.member_id


NO_GENERATION = Generation(-1, "", None, "")


@dataclass(frozen=True)
class JoinOutcome:
    generation: Generation
    #: leader only: kafka member id -> decoded subscription
    members: dict[str, Subscription]
    #: JoinGroup v9+: a static leader rejoined a Stable group; the stored assignment stands.
    skip_assignment: bool


@dataclass(frozen=True)
class SyncOutcome:
    partitions: tuple[TopicPartition, ...]
    #: leader only (and only when it computed one): kafka member id -> partitions
    assignment: dict[str, list[TopicPartition]] | None
    #: clock time the SyncGroup was sent: the coordinator restarted our session after this
    sent_at: float


def _raise_for(error_code: int, what: str) -> None:
    if error_code != 0:
        raise Errors.for_code(error_code)(what)


class GroupRebalance:
    """Run one join+sync round of ``group`` against the coordinator behind ``conn``."""

    def __init__(
        self,
        conn: KafkaConnection,
        client: KafkaClient,
        *,
        group: str,
        topics: tuple[str, ...],
        assignor: str,
        member_id: str,
        group_instance_id: str | None,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        previous: tuple[TopicPartition, ...] | None,
        previous_generation: int,
        clock: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.client = client
        self.group = group
        self.topics = topics
        self.assignor = assignor
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.previous = previous
        self.previous_generation = previous_generation
        self._clock = clock

    def _join_request(self) -> JoinGroupRequest:
        metadata = encode_subscription(self.assignor, self.topics, self.previous, self.previous_generation)
        request = JoinGroupRequest(
            group_id=self.group,
            session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            member_id=self.member_id,
            group_instance_id=self.group_instance_id,
            protocol_type=PROTOCOL_TYPE,
            protocols=[(self.assignor, metadata)],
            reason=None,
            min_version=MIN_JOIN_VERSION_STATIC if self.group_instance_id else None,
        )
        return request

    async def join(self) -> JoinOutcome:
        """JoinGroup, repeated once if the coordinator asks for a member id first (KIP-394)."""
        timeout = self.rebalance_timeout_ms / 1000 + JOIN_TIMEOUT_SLACK_S
        response = await self.conn.send(self._join_request(), timeout=timeout)
        if response.error_code == Errors.MemberIdRequiredError.errno:
            log.debug("%s: coordinator assigned member id %s; joining again", self.group, response.member_id)
            self.member_id = response.member_id
            response = await self.conn.send(self._join_request(), timeout=timeout)
        if response.error_code == Errors.MemberIdRequiredError.errno:
            raise Errors.MemberIdRequiredError(f"{self.group}: second MEMBER_ID_REQUIRED")
        _raise_for(response.error_code, f"JoinGroup {self.group}")
        generation = Generation(
            response.generation_id, response.member_id, response.protocol_name, response.leader
        )
        self.member_id = response.member_id
        members = {m.member_id: decode_subscription(m.metadata) for m in response.members}
        return JoinOutcome(generation, members, bool(getattr(response, "skip_assignment", False)))

    async def compute_assignment(self, joined: JoinOutcome) -> dict[str, list[TopicPartition]]:
        """The leader's job: the group's chosen assignor over every member's subscription.

        From cached metadata, as the Java leader assigns from ``metadata.fetch()``
        (``ConsumerCoordinator.onLeaderElected``): no round trip between JoinGroup and SyncGroup
        unless a subscribed topic is not in the cache. Then we ask for it and wait, where Java
        requests the update without waiting, assigns without the topic and rebalances again once
        the update arrives (``rejoinNeededOrPending``, the metadata snapshot changed); both assign
        what exists.
        """
        from group_api.assignors import COOPERATIVE_STICKY, assign  # late, so codecs load alone

        subscriptions = {member: list(sub.topics) for member, sub in joined.members.items()}
        wanted = sorted({t for topics in subscriptions.values() for t in topics})
        counts = await self.client.partitions_per_topic(wanted)
        missing = [t for t in wanted if t not in counts]
        if missing:
            # Kafka's leader skips topics it has no metadata for; so do we, loudly.
            log.warning(
                "%s: no metadata for subscribed topics %s; leaving them unassigned", self.group, missing
            )
            subscriptions = {m: [t for t in topics if t in counts] for m, topics in subscriptions.items()}
        protocol = joined.generation.protocol or self.assignor
        if protocol == COOPERATIVE_STICKY:
            # Every member's owned_partitions and their generation, as claimed: the assignor
            # settles double claims itself (AbstractStickyAssignor.allSubscriptionsEqual).
            owned = {member: sub.previous for member, sub in joined.members.items()}
            generations = {member: sub.previous_generation for member, sub in joined.members.items()}
            return assign(protocol, subscriptions, counts, owned, generations)
        return assign(protocol, subscriptions, counts, _valid_previous(joined.members))

    async def sync(
        self, joined: JoinOutcome, assignment: Mapping[str, list[TopicPartition]] | None
    ) -> SyncOutcome:
        """SyncGroup: the leader sends ``assignment`` (followers ``None``); returns our partitions."""
        generation = joined.generation
        request = SyncGroupRequest(
            group_id=self.group,
            generation_id=generation.generation_id,
            member_id=generation.member_id,
            group_instance_id=self.group_instance_id,
            protocol_type=PROTOCOL_TYPE,
            protocol_name=generation.protocol,
            assignments=assignments_to_wire(assignment) if assignment is not None else [],
        )
        sent_at = self._clock()
        # Followers are parked until the leader syncs, which takes at most the rebalance timeout.
        response: Any = await self.conn.send(
            request, timeout=self.rebalance_timeout_ms / 1000 + JOIN_TIMEOUT_SLACK_S
        )
        _raise_for(response.error_code, f"SyncGroup {self.group} generation {generation.generation_id}")
        partitions = decode_assignment(response.assignment)
        return SyncOutcome(partitions, dict(assignment) if assignment is not None else None, sent_at)


def _valid_previous(members: Mapping[str, Subscription]) -> dict[str, tuple[TopicPartition, ...]] | None:
    """Previous ownership for sticky, keeping Kafka's rule: when two members claim the same
    partition, the claim from the newer generation wins and the other is dropped."""
    best: dict[TopicPartition, tuple[int, str]] = {}
    for member, sub in sorted(members.items()):
        for tp in sub.previous:
            if tp not in best or sub.previous_generation > best[tp][0]:
                best[tp] = (sub.previous_generation, member)
    if not best:
        return None
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    for tp, (_, member) in best.items():
        out[member].append(tp)
    return {m: tuple(sorted(parts)) for m, parts in out.items()}

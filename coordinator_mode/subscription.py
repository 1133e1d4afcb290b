"""Kafka's consumer protocol embedding: what a member puts inside JoinGroup and SyncGroup.

The classic group protocol carries opaque bytes; consumers fill them with
``ConsumerProtocolSubscription`` (in each JoinGroup protocol's metadata) and
``ConsumerProtocolAssignment`` (in SyncGroup), both encoded by kafka-python's classes generated
from Kafka's JSON schemas. Speaking this embedding exactly is what lets our member share a group
with kafka-python and librdkafka consumers.

``sticky`` carries the member's previous assignment in the subscription's user data as
``StickyAssignorUserData`` (KIP-54), which is how an eager sticky leader learns who owned what: an
eager member has revoked everything before it rejoins, so ``owned_partitions`` would be empty.

``cooperative-sticky`` (KIP-429) is written as the Java consumer 3.9 writes it
(``ConsumerCoordinator.metadata``, ``ConsumerProtocol.serializeSubscription``): version 3, with the
partitions the member still owns in ``owned_partitions`` and their generation in ``generation_id``,
and ``CooperativeStickyAssignor.subscriptionUserData``'s user data, the same generation as one
int32, which a leader reading only version 1 takes it from (``CooperativeStickyAssignor.memberData``).
"""

from __future__ import annotations

import io
import logging
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kafka.coordinator.assignors.sticky.user_data import StickyAssignorUserData
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    ConsumerProtocolType,
)

from group_api import TopicPartition
from group_api.assignors import COOPERATIVE_STICKY

log = logging.getLogger(__name__)

#: JoinGroup's protocol_type for consumers.
PROTOCOL_TYPE: str = ConsumerProtocolType

#: Embedding versions we write. v0 is what every consumer reads; Java reads newer ones as v0 plus
#: trailing fields, so writing the oldest keeps all members able to parse us.
SUBSCRIPTION_VERSION = 0
ASSIGNMENT_VERSION = 0
#: What Kafka 3.9 writes (``ConsumerProtocolSubscription`` v3: owned partitions, generation, rack);
#: a cooperative subscription needs v1+ for ``owned_partitions``.
COOPERATIVE_SUBSCRIPTION_VERSION = 3
#: ``CooperativeStickyAssignor``'s user data: ``{generation: int32}``.
_GENERATION = struct.Struct(">i")


@dataclass(frozen=True)
class Subscription:
    """One member's decoded JoinGroup metadata."""

    topics: tuple[str, ...]
    previous: tuple[TopicPartition, ...] = ()
    previous_generation: int = -1


def _by_topic(partitions: Iterable[TopicPartition]) -> list[tuple[str, list[int]]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for topic, partition in sorted(partitions):
        grouped[topic].append(int(partition))
    return list(grouped.items())


def encode_subscription(
    assignor: str,
    topics: Sequence[str],
    previous: Iterable[TopicPartition] | None = None,
    generation: int = -1,
) -> bytes:
    """JoinGroup metadata for ``assignor``; ``previous`` is only carried for ``sticky`` (user data)
    and ``cooperative-sticky`` (``owned_partitions``)."""
    if assignor == COOPERATIVE_STICKY:
        sub = ConsumerProtocolSubscription(
            version=COOPERATIVE_SUBSCRIPTION_VERSION,
            topics=sorted(topics),
            user_data=_GENERATION.pack(generation),
            owned_partitions=[
                ConsumerProtocolSubscription.TopicPartition(topic=t, partitions=ps)
                for t, ps in _by_topic(previous or ())
            ],
            generation_id=generation,
            rack_id=None,
        )
        return bytes(sub.encode())
    user_data: bytes | None = None
    if assignor == "sticky" and previous is not None:
        user_data = bytes(StickyAssignorUserData(_by_topic(previous), generation).encode())
    sub = ConsumerProtocolSubscription(
        version=SUBSCRIPTION_VERSION, topics=sorted(topics), user_data=user_data
    )
    return bytes(sub.encode())


def _decode_sticky_user_data(data: bytes) -> tuple[tuple[TopicPartition, ...], int]:
    """kafka-python prefixes a version; Java's StickyAssignor writes the v1 struct bare. Try both,
    accepting a layout only if it consumes every byte."""
    for header, version in ((True, None), (False, 1), (False, 0)):
        buf = io.BytesIO(data)
        try:
            decoded = StickyAssignorUserData.decode(buf, version=version, header=header)
        except Exception:  # any decode failure means "try the next layout"
            continue
        if buf.tell() != len(data):
            continue
        parts = tuple((tp.topic, int(p)) for tp in decoded.previous_assignment for p in tp.partitions)
        generation = int(decoded.generation) if (version or decoded.version) >= 1 else -1
        return parts, generation
    log.info("ignoring sticky user data we cannot parse (%d bytes)", len(data))
    return (), -1


def decode_subscription(data: bytes) -> Subscription:
    """Parse a member's JoinGroup metadata (any version; newer ones are read as the fields we know)."""
    sub = ConsumerProtocolSubscription.decode(bytes(data))
    previous: tuple[TopicPartition, ...] = ()
    generation = -1
    owned = getattr(sub, "owned_partitions", None) if sub.version >= 1 else None
    if owned:
        previous = tuple((tp.topic, int(p)) for tp in owned for p in tp.partitions)
        if sub.version >= 2:
            generation = int(sub.generation_id)
        elif sub.user_data and len(sub.user_data) == _GENERATION.size:
            (generation,) = _GENERATION.unpack(bytes(sub.user_data))  # a v1 cooperative member
    elif sub.user_data and len(sub.user_data) != _GENERATION.size:
        # 4 bytes: a cooperative member's generation, and it owns nothing
        previous, generation = _decode_sticky_user_data(bytes(sub.user_data))
    return Subscription(tuple(sub.topics), tuple(sorted(previous)), generation)


def encode_assignment(partitions: Iterable[TopicPartition]) -> bytes:
    return bytes(
        ConsumerProtocolAssignment(
            version=ASSIGNMENT_VERSION, assigned_partitions=_by_topic(partitions), user_data=None
        ).encode()
    )


def decode_assignment(data: bytes | None) -> tuple[TopicPartition, ...]:
    """A SyncGroup answer's partitions; empty bytes (a member the leader left out) mean none."""
    if not data:
        return ()
    assignment = ConsumerProtocolAssignment.decode(bytes(data))
    return tuple(sorted((tp.topic, int(p)) for tp in assignment.assigned_partitions for p in tp.partitions))


def assignments_to_wire(assignment: Mapping[str, Iterable[TopicPartition]]) -> list[tuple[str, bytes]]:
    """The leader's SyncGroup ``assignments`` field."""
    return [(member, encode_assignment(parts)) for member, parts in sorted(assignment.items())]

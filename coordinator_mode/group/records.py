"""The records the coordinator persists per offsets partition (Kafka's ``__consumer_offsets`` values).

:mod:`coordinator_mode.broker.offsets_log` writes and reads them; a new coordinator replays them
(:meth:`~coordinator_mode.group.coordinator.GroupCoordinator.complete_loading`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Protocol


@dataclass(frozen=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocols: tuple[Protocol, ...]
    assignment: bytes


@dataclass(frozen=True)
class GroupMetadataRecord:
    """The group at its last Stable (or Empty) point; ``deleted`` is a tombstone.

    Like Kafka's ``GroupMetadataValue``, there is no record of PreparingRebalance or
    CompletingRebalance: a reload resumes the last stable generation. Unlike Kafka's, a member keeps
    all the protocols it offered, not only the chosen one's subscription, so a follower that rejoins
    after a failover with the same protocols is recognised as unchanged.
    """

    group_id: str
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    members: tuple[MemberRecord, ...] = ()
    deleted: bool = False


@dataclass(frozen=True)
class OffsetCommitRecord:
    """One committed offset; ``offset is None`` is a tombstone."""

    group_id: str
    topic: str
    partition: int
    offset: int | None
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


Record = GroupMetadataRecord | OffsetCommitRecord

"""The records the coordinator persists per offsets partition (Kafka's ``__consumer_offsets`` values).

:mod:`coordinator_mode.broker.offsets_log` writes and reads them; a new coordinator replays them
(:meth:`~coordinator_mode.group.coordinator.GroupCoordinator.complete_loading`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


# -- the consumer group protocol's records (KIP-848) ----------------------------------------------
#
# Kafka 4.0 writes these to __consumer_offsets (``GroupCoordinatorRecordHelpers``); each is keyed by
# group (and member) and compacted like the classic ones; ``deleted`` is a tombstone. Topics are
# named here where Kafka's records carry topic ids: our ids are a function of the name
# (``cluster_apis.topic_id``). ConsumerGroupPartitionMetadata (the subscribed topics' partition
# counts) is not written: the coordinator reads partition counts from the cluster view each time.

PartitionList = tuple[tuple[str, tuple[int, ...]], ...]


def partition_list(partitions: Mapping[str, Iterable[int]]) -> PartitionList:
    return tuple((t, tuple(sorted(ps))) for t, ps in sorted(partitions.items()) if ps)


@dataclass(frozen=True)
class ConsumerGroupEpochRecord:
    """``ConsumerGroupMetadataValue``: the group epoch."""

    group_id: str
    epoch: int
    deleted: bool = False


@dataclass(frozen=True)
class ConsumerMemberRecord:
    """``ConsumerGroupMemberMetadataValue``: a member's subscription and identity."""

    group_id: str
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topics: tuple[str, ...] = ()
    server_assignor: str | None = None
    rebalance_timeout_ms: int = -1
    deleted: bool = False


@dataclass(frozen=True)
class TargetAssignmentMemberRecord:
    """``ConsumerGroupTargetAssignmentMemberValue``: one member's target assignment."""

    group_id: str
    member_id: str
    partitions: PartitionList = ()
    deleted: bool = False

    @classmethod
    def of(
        cls, group_id: str, member_id: str, partitions: Mapping[str, Iterable[int]]
    ) -> TargetAssignmentMemberRecord:
        return cls(group_id, member_id, partition_list(partitions))


@dataclass(frozen=True)
class TargetAssignmentEpochRecord:
    """``ConsumerGroupTargetAssignmentMetadataValue``: the epoch the target was computed for."""

    group_id: str
    assignment_epoch: int
    deleted: bool = False


@dataclass(frozen=True)
class CurrentAssignmentRecord:
    """``ConsumerGroupCurrentMemberAssignmentValue``: a member's epochs, state and current assignment."""

    group_id: str
    member_id: str
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: str = "stable"
    assigned: PartitionList = ()
    pending_revocation: PartitionList = ()
    deleted: bool = False


ConsumerGroupRecord = (
    ConsumerGroupEpochRecord
    | ConsumerMemberRecord
    | TargetAssignmentMemberRecord
    | TargetAssignmentEpochRecord
    | CurrentAssignmentRecord
)
#: the consumer records' kinds in the offsets log (``"k"``), and back
CONSUMER_RECORD_KINDS: dict[str, type] = {
    "cg_epoch": ConsumerGroupEpochRecord,
    "cg_member": ConsumerMemberRecord,
    "cg_target": TargetAssignmentMemberRecord,
    "cg_target_epoch": TargetAssignmentEpochRecord,
    "cg_current": CurrentAssignmentRecord,
}

Record = GroupMetadataRecord | OffsetCommitRecord | ConsumerGroupRecord

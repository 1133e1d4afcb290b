"""A KIP-848 consumer group and its members: epochs, assignments and states, as the coordinator holds them.

Kafka 4.0's ``ConsumerGroup`` and ``ConsumerGroupMember`` (``group-coordinator`` module,
``org.apache.kafka.coordinator.group.modern.consumer``). Three epochs order everything:

* the **group epoch** goes up whenever the group's membership or subscriptions change (a member
  joins, leaves, is fenced, or changes what it subscribes to);
* the **target assignment epoch** is the group epoch the current target assignment was computed
  for (``TargetAssignmentBuilder``, run when the group epoch is ahead of it);
* each **member epoch** is the target assignment epoch the member has reconciled to
  (``CurrentAssignmentBuilder``). A partition is owned at the epoch of the member holding it (its
  *partition epoch*); a partition pending revocation stays owned by its old member until that
  member reports it no longer holds it, and only then can the new owner be given it.

A :class:`ConsumerGroup` is only ever changed by replaying records
(:meth:`~.consumer_coordinator.ConsumerGroupCoordinator.replay`), as Kafka's ``GroupMetadataManager.replay``
applies ``__consumer_offsets`` records, so the live path and a reload after a failover are one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

#: topic -> partition ids (one member's assignment, or partitions pending revocation)
Partitions = dict[str, frozenset[int]]

LEAVE_GROUP_MEMBER_EPOCH = -1  # ConsumerGroupHeartbeatRequest.LEAVE_GROUP_MEMBER_EPOCH
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2  # ...LEAVE_GROUP_STATIC_MEMBER_EPOCH: a static member will be back
NO_PARTITION_EPOCH = -1  # ConsumerGroup.currentPartitionEpoch: nobody owns the partition


def partitions_of(pairs: Iterable[tuple[str, Iterable[int]]]) -> Partitions:
    """``[(topic, partitions)]`` as :data:`Partitions` (empty topics dropped)."""
    out: dict[str, set[int]] = {}
    for topic, ps in pairs:
        out.setdefault(topic, set()).update(ps)
    return {t: frozenset(ps) for t, ps in sorted(out.items()) if ps}


def flatten(partitions: Mapping[str, Iterable[int]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((t, p) for t, ps in partitions.items() for p in ps))


class MemberState(StrEnum):
    """A member's reconciliation state (``org.apache.kafka.coordinator.group.modern.MemberState``).

    ``STABLE``: the member has its target assignment at the target epoch.
    ``UNREVOKED_PARTITIONS``: it must revoke partitions first; it stays at its epoch until it reports
        it no longer owns them (or its rebalance timeout fences it).
    ``UNRELEASED_PARTITIONS``: it is at the target epoch but some of its target partitions are still
        owned (pending revocation) by other members; it gets them once they are released.
    """

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True)
class ConsumerGroupMember:
    """One member (``ConsumerGroupMember``): its subscription (from its heartbeats) and its current
    assignment (from reconciliation)."""

    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = -1
    subscribed_topics: tuple[str, ...] = ()
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Partitions = field(default_factory=dict)
    pending_revocation: Partitions = field(default_factory=dict)

    def is_reconciled_to(self, target_epoch: int) -> bool:
        """``ConsumerGroupMember.isReconciledTo``."""
        return self.state is MemberState.STABLE and self.member_epoch == target_epoch


class ConsumerGroupState(StrEnum):
    """The group's state (``ConsumerGroup.ConsumerGroupState``), derived after every change
    (``ConsumerGroup.maybeUpdateGroupState``); the values are what ConsumerGroupDescribe reports.

    ``Empty``: no members. ``Assigning``: the group epoch is ahead of the target assignment epoch
    (the next heartbeat computes a new target). ``Reconciling``: some member is not yet stable at
    the target epoch. ``Stable``: every member is. ``Dead``: the offsets partition moved away.
    """

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class ConsumerGroup:
    """A consumer-protocol group: its members, epochs, target assignment and partition epochs."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerGroupMember] = {}
        self.static_members: dict[str, str] = {}  # instance id -> member id
        self.target: dict[str, Partitions] = {}  # member id -> target assignment
        # (topic, partition) -> epoch of the member owning it, assigned or pending revocation
        self.partition_epochs: dict[tuple[str, int], int] = {}

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if all(m.is_reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return ConsumerGroupState.STABLE
        return ConsumerGroupState.RECONCILING

    def current_partition_epoch(self, topic: str, partition: int) -> int:
        """``ConsumerGroup.currentPartitionEpoch``: the owner's epoch, or -1 if the partition is free."""
        return self.partition_epochs.get((topic, partition), NO_PARTITION_EPOCH)

    def static_member(self, instance_id: str | None) -> ConsumerGroupMember | None:
        member_id = self.static_members.get(instance_id or "")
        return None if member_id is None else self.members.get(member_id)

    def update_member(self, new: ConsumerGroupMember) -> None:
        """``ConsumerGroup.updateMember``: the partition epochs move with the member's assignment."""
        old = self.members.get(new.member_id)
        if old is not None:
            self._release(old)
        self.members[new.member_id] = new
        if new.instance_id is not None:
            self.static_members[new.instance_id] = new.member_id
        self._claim(new)

    def remove_member(self, member_id: str) -> ConsumerGroupMember | None:
        old = self.members.pop(member_id, None)
        if old is not None:
            self._release(old)
            if old.instance_id is not None and self.static_members.get(old.instance_id) == member_id:
                del self.static_members[old.instance_id]
        return old

    def _claim(self, member: ConsumerGroupMember) -> None:
        """``addPartitionEpochs``: a partition can have one owner only (Kafka throws
        IllegalStateException otherwise: reconciliation never gives a partition before it is free)."""
        for tp in flatten(member.assigned) + flatten(member.pending_revocation):
            owner = self.partition_epochs.get(tp)
            if owner is not None:
                raise RuntimeError(
                    f"group {self.group_id}: {tp} is already owned at epoch {owner}, cannot give it to "
                    f"{member.member_id} at epoch {member.member_epoch}"
                )
            self.partition_epochs[tp] = member.member_epoch

    def _release(self, member: ConsumerGroupMember) -> None:
        """``removePartitionEpochs``."""
        for tp in flatten(member.assigned) + flatten(member.pending_revocation):
            if self.partition_epochs.get(tp) == member.member_epoch:
                del self.partition_epochs[tp]

    def preferred_assignor(self, default: str) -> str:
        """``ConsumerGroup.computePreferredServerAssignor``: the assignor most members name."""
        counts: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if not counts:
            return default
        return max(sorted(counts), key=lambda name: counts[name])

    def subscribed_topics(self) -> set[str]:
        return {t for m in self.members.values() for t in m.subscribed_topics}

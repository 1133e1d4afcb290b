"""Reconciliation: one member's next step from its current assignment towards its target.

Kafka 4.0's ``CurrentAssignmentBuilder`` (``org.apache.kafka.coordinator.group.modern.consumer``),
``build`` and ``computeNextAssignment``, run on every heartbeat of a member not yet reconciled to the
target assignment epoch:

* partitions the member keeps: its current assignment ∩ its target;
* partitions to revoke: its current assignment minus those; while the member still reports owning
  any of them it stays at its epoch in ``UNREVOKED_PARTITIONS`` and is given nothing new;
* partitions to assign: its target minus what it keeps, minus those another member still owns
  (a partition epoch other than -1): those are *unreleased*, the member waits for them in
  ``UNRELEASED_PARTITIONS`` at the target epoch.

Hence the invariant the checker tests on the history: a partition is given to its new owner only
after the previous owner has acknowledged (in a heartbeat's owned partitions) revoking it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from .consumer_group import ConsumerGroupMember, MemberState, Partitions

#: The owned partitions a heartbeat reports (None: "unchanged since the last heartbeat").
Owned = Mapping[str, frozenset[int]] | None


class FencedMemberEpoch(Exception):
    """FENCED_MEMBER_EPOCH: the member must drop its partitions and rejoin with epoch 0."""


def _owns_any(owned: Owned, partitions: Partitions) -> bool:
    """``ownsRevokedPartitions``: null owned partitions count as still owning."""
    if owned is None:
        return True
    return any(owned.get(t, frozenset()) & ps for t, ps in partitions.items())


def _next_epoch(member: ConsumerGroupMember, epoch: int) -> ConsumerGroupMember:
    """``Builder.updateMemberEpoch``: the previous epoch remembers where the member came from."""
    if epoch == member.member_epoch:
        return member
    return replace(member, member_epoch=epoch, previous_member_epoch=member.member_epoch)


def reconcile(
    member: ConsumerGroupMember,
    target_epoch: int,
    target: Partitions,
    partition_epoch: Callable[[str, int], int],
    owned: Owned,
) -> ConsumerGroupMember:
    """``CurrentAssignmentBuilder.build``: the member after this heartbeat (maybe unchanged)."""
    if member.state is MemberState.STABLE:
        if member.member_epoch == target_epoch:
            return member
        return _compute_next(member, member.member_epoch, target_epoch, target, partition_epoch, owned)
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if _owns_any(owned, member.pending_revocation):
            return member
        return _compute_next(member, member.member_epoch + 1, target_epoch, target, partition_epoch, owned)
    return _compute_next(member, member.member_epoch, target_epoch, target, partition_epoch, owned)


def _compute_next(
    member: ConsumerGroupMember,
    member_epoch: int,
    target_epoch: int,
    target: Partitions,
    partition_epoch: Callable[[str, int], int],
    owned: Owned,
) -> ConsumerGroupMember:
    """``CurrentAssignmentBuilder.computeNextAssignment``."""
    unreleased = False
    keep: dict[str, frozenset[int]] = {}
    revoke: dict[str, frozenset[int]] = {}
    add: dict[str, frozenset[int]] = {}
    for topic in sorted(set(target) | set(member.assigned)):
        want = target.get(topic, frozenset())
        have = member.assigned.get(topic, frozenset())
        kept = have & want
        pending = want - kept
        free = frozenset(p for p in pending if partition_epoch(topic, p) == -1)
        unreleased = unreleased or free != pending
        if kept:
            keep[topic] = kept
        if have - kept:
            revoke[topic] = have - kept
        if free:
            add[topic] = free
    if revoke and _owns_any(owned, revoke):
        return replace(
            _next_epoch(member, member_epoch),
            state=MemberState.UNREVOKED_PARTITIONS,
            assigned=keep,
            pending_revocation=revoke,
        )
    assigned = {t: keep.get(t, frozenset()) | add.get(t, frozenset()) for t in sorted(set(keep) | set(add))}
    return replace(
        _next_epoch(member, target_epoch),
        state=MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE,
        assigned=assigned,
        pending_revocation={},
    )

"""The target assignment: what every member should own at a group epoch.

Kafka 4.0's ``TargetAssignmentBuilder`` (``org.apache.kafka.coordinator.group.modern``), ``build``:
run on a heartbeat when the group epoch is ahead of the target assignment epoch. It hands the
server assignor every member's subscription (with the member being updated as it is after this
heartbeat, and a static member's new id in place of its predecessor's), the subscribed
topics' partition counts and the current target; the records it returns are one
``ConsumerGroupTargetAssignmentMember`` per member whose target changed, then the
``ConsumerGroupTargetAssignmentMetadata`` with the new epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .consumer_group import ConsumerGroup, Partitions
from .records import ConsumerGroupRecord, TargetAssignmentEpochRecord, TargetAssignmentMemberRecord
from .server_assignors import ServerAssignor


@dataclass(frozen=True)
class TargetAssignment:
    epoch: int
    members: dict[str, Partitions]
    records: list[ConsumerGroupRecord]


def build_target_assignment(
    group: ConsumerGroup,
    epoch: int,
    assignor: ServerAssignor,
    topics: Mapping[str, int],
) -> TargetAssignment:
    """The new target at ``epoch`` for ``group``'s members (the heartbeating member already updated
    in it: its records are replayed before the target is built)."""
    members = group.members
    subscriptions = {m.member_id: m.subscribed_topics for m in members.values()}
    existing = {t for subs in subscriptions.values() for t in subs if t in topics}
    new = assignor.assign(subscriptions, {t: topics[t] for t in existing}, group.target)
    records: list[ConsumerGroupRecord] = []
    for member_id in sorted(members):
        target = new.get(member_id, {})
        if group.target.get(member_id) != target:
            records.append(TargetAssignmentMemberRecord.of(group.group_id, member_id, target))
    records.append(TargetAssignmentEpochRecord(group.group_id, epoch))
    return TargetAssignment(epoch, {m: new.get(m, {}) for m in members}, records)

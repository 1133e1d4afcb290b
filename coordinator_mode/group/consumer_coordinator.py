"""The consumer group protocol (KIP-848) on the coordinator: ConsumerGroupHeartbeat, ConsumerGroupDescribe,
and the session and rebalance timers, for the consumer groups of the offsets partitions this broker leads.

Kafka 4.0's ``GroupMetadataManager`` (``group-coordinator`` module): ``consumerGroupHeartbeat``,
``consumerGroupLeave``, ``consumerGroupFenceMember``, ``consumerGroupStaticMemberGroupLeave``,
``getOrMaybeSubscribeStaticConsumerGroupMember`` / ``replaceMember``, the validations
(``throwIfConsumerGroupHeartbeatRequestIsInvalid``, ``throwIfConsumerGroupMemberEpochIsInvalid``),
``maybeReconcile``, ``scheduleConsumerGroupSessionTimeout`` / ``scheduleConsumerGroupRebalanceTimeout``
and ``replay``. One heartbeat:

1. validate it; ``MemberEpoch`` -1 (leave) or -2 (a static member's temporary leave) ends here;
2. find or create the group and the member (epoch 0 joins; a static member rejoining under its
   instance id replaces its predecessor and inherits its assignment, without a new group epoch);
   a member whose epoch is ahead of ours, or behind and not the previous epoch with a subset of its
   partitions, is fenced (``FENCED_MEMBER_EPOCH``); an unknown member id gets ``UNKNOWN_MEMBER_ID``;
3. a changed subscription (or a changed partition count of a subscribed topic) bumps the group epoch;
4. a group epoch ahead of the target assignment epoch computes a new target (:mod:`.target_assignment`
   with the group's server assignor, :mod:`.server_assignors`);
5. the member reconciles one step towards its target (:mod:`.reconciliation`);
6. its session timer restarts; a member left in ``UNREVOKED_PARTITIONS`` gets a rebalance timer;
7. the answer carries the member's epoch, the heartbeat interval and, after a full request or a
   change, its assignment.

Every change is a record (member metadata, group epoch, target assignment, current assignment),
replayed into the state as it is made (:meth:`ConsumerGroupCoordinator.replay`, also the loading
path) and appended to the group's offsets partition; when the append fails the group is restored to
its copy from before the heartbeat, as Kafka's ``CoordinatorRuntime`` reverts its snapshot.

Mixed groups are refused, as Kafka 4.0 does with ``group.consumer.migration.policy=disabled`` (it
converts them by default; :class:`~.coordinator.GroupCoordinator` enforces this): a heartbeat to a
non-empty classic group gets ``GROUP_ID_NOT_FOUND`` ("Group ... is not a consumer group").
"""

from __future__ import annotations

import base64
import copy
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from .config import CoordinatorConfig
from .consumer_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    partitions_of,
)
from .errors import ErrorCode, PersistError
from .messages import (
    ConsumerGroupDescription,
    ConsumerHeartbeat,
    ConsumerHeartbeatResult,
    ConsumerMemberDescription,
)
from .reconciliation import reconcile
from .records import (
    ConsumerGroupEpochRecord,
    ConsumerGroupRecord,
    ConsumerMemberRecord,
    CurrentAssignmentRecord,
    TargetAssignmentEpochRecord,
    TargetAssignmentMemberRecord,
    partition_list,
)
from .server_assignors import DEFAULT_SERVER_ASSIGNOR, SERVER_ASSIGNORS
from .target_assignment import build_target_assignment

log = logging.getLogger(__name__)


class HeartbeatError(Exception):
    """An ApiException of ``consumerGroupHeartbeat``: answered with ``code`` and ``message``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_member_id() -> str:
    """Kafka's ``Uuid.randomUuid().toString()``: a UUID in URL-safe base64, 22 characters."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class _Timers:
    session_deadline: float  # ms on the coordinator's clock
    rebalance_deadline: float | None = None  # set while the member must revoke
    rebalance_epoch: int = -1  # the member epoch the rebalance timer was set at


class ConsumerGroupCoordinator:
    """The consumer groups of this broker's offsets partitions.

    Args:
        config: the broker's group settings (session timeout and heartbeat interval).
        clock: milliseconds, monotonic.
        topics: the cluster's topics and partition counts, now.
        persist: ``persist(group_id, records)`` appends to the group's offsets partition or raises
            :class:`PersistError`.
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        clock: Callable[[], float],
        topics: Callable[[], Mapping[str, int]],
        persist: Callable[[str, list[ConsumerGroupRecord]], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self.topics = topics
        self._persist = persist
        self.groups: dict[str, ConsumerGroup] = {}
        # the partition counts each group's target was computed with (a change bumps the epoch)
        self._partition_counts: dict[str, dict[str, int]] = {}
        self._timers: dict[tuple[str, str], _Timers] = {}

    # -- records: the only way the state changes ---------------------------------------------------

    def replay(self, record: ConsumerGroupRecord) -> None:
        """``GroupMetadataManager.replay`` for the consumer records (live, and when loading)."""
        group = self.groups.get(record.group_id)
        if group is None:
            if record.deleted:
                return
            group = self.groups[record.group_id] = ConsumerGroup(record.group_id)
        if isinstance(record, ConsumerGroupEpochRecord):
            if record.deleted:
                del self.groups[record.group_id]
            else:
                group.group_epoch = record.epoch
        elif isinstance(record, ConsumerMemberRecord):
            if record.deleted:
                group.remove_member(record.member_id)
                return
            old = group.members.get(record.member_id) or ConsumerGroupMember(record.member_id)
            group.update_member(
                replace(
                    old,
                    instance_id=record.instance_id,
                    rack_id=record.rack_id,
                    client_id=record.client_id,
                    client_host=record.client_host,
                    subscribed_topics=record.subscribed_topics,
                    server_assignor=record.server_assignor,
                    rebalance_timeout_ms=record.rebalance_timeout_ms,
                )
            )
        elif isinstance(record, TargetAssignmentMemberRecord):
            if record.deleted:
                group.target.pop(record.member_id, None)
            else:
                group.target[record.member_id] = partitions_of(record.partitions)
        elif isinstance(record, TargetAssignmentEpochRecord):
            group.assignment_epoch = -1 if record.deleted else record.assignment_epoch
        elif isinstance(record, CurrentAssignmentRecord):
            old = group.members.get(record.member_id)
            if old is None:
                return
            group.update_member(
                replace(
                    old,
                    member_epoch=0,
                    previous_member_epoch=0,
                    state=MemberState.STABLE,
                    assigned={},
                    pending_revocation={},
                )
                if record.deleted
                else replace(
                    old,
                    member_epoch=record.member_epoch,
                    previous_member_epoch=record.previous_member_epoch,
                    state=MemberState(record.state),
                    assigned=partitions_of(record.assigned),
                    pending_revocation=partitions_of(record.pending_revocation),
                )
            )

    def loaded(self, group_ids: list[str]) -> None:
        """After a load: every member's session (and pending revocation) is timed afresh, as Kafka's
        ``GroupMetadataManager.onLoaded`` schedules them."""
        now = self.clock()
        for group_id in group_ids:
            group = self.groups.get(group_id)
            for member in [] if group is None else group.members.values():
                self._touch(group_id, member, now)

    def unload(self, group_ids: list[str]) -> None:
        for group_id in group_ids:
            self.groups.pop(group_id, None)
            self._partition_counts.pop(group_id, None)
            for key in [k for k in self._timers if k[0] == group_id]:
                del self._timers[key]

    def _emit(self, records: list[ConsumerGroupRecord], record: ConsumerGroupRecord) -> None:
        records.append(record)
        self.replay(record)

    # -- ConsumerGroupHeartbeat ----------------------------------------------------------------------

    def heartbeat(self, req: ConsumerHeartbeat) -> ConsumerHeartbeatResult:
        """``GroupMetadataManager.consumerGroupHeartbeat``: the answer, after persisting its records."""
        before = copy.deepcopy(self.groups.get(req.group_id))
        timers_before = {k: replace(v) for k, v in self._timers.items() if k[0] == req.group_id}
        records: list[ConsumerGroupRecord] = []
        try:
            self._validate(req)
            if req.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                result = self._leave(req, records)
            else:
                result = self._heartbeat(req, records)
            if records:
                self._persist(req.group_id, records)
        except (HeartbeatError, PersistError) as exc:
            self._restore(req.group_id, before, timers_before)
            code = exc.code
            log.info("group %s: heartbeat of %s answered %s: %s", req.group_id, req.member_id, code.name, exc)
            return ConsumerHeartbeatResult(code, str(exc), member_epoch=-1)
        return replace(result, appended=bool(records))

    def _restore(
        self, group_id: str, group: ConsumerGroup | None, timers: dict[tuple[str, str], _Timers]
    ) -> None:
        if group is None:
            self.groups.pop(group_id, None)
        else:
            self.groups[group_id] = group
        for key in [k for k in self._timers if k[0] == group_id]:
            del self._timers[key]
        self._timers.update(timers)

    def _validate(self, req: ConsumerHeartbeat) -> None:
        """``throwIfConsumerGroupHeartbeatRequestIsInvalid``."""

        def invalid(message: str) -> HeartbeatError:
            return HeartbeatError(ErrorCode.INVALID_REQUEST, message)

        if not req.group_id:
            raise invalid("GroupId can't be empty.")
        if req.instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if req.rack_id == "":
            raise invalid("RackId can't be empty.")
        if req.subscribed_topic_regex:  # librdkafka's v1 sends "" for none
            raise invalid("SubscribedTopicRegex is not supported here.")
        epoch = req.member_epoch
        if epoch > 0 or epoch == LEAVE_GROUP_MEMBER_EPOCH:
            if not req.member_id:
                raise invalid("MemberId can't be empty.")
        elif epoch == 0:
            if req.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if req.owned is None or any(req.owned.values()):
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if not req.subscribed_topics:
                raise invalid("SubscribedTopicNames must be set in first request.")
        elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if not req.member_id:
                raise invalid("MemberId can't be empty.")
            if req.instance_id is None:
                raise invalid("InstanceId can't be null.")
        else:
            raise invalid("MemberEpoch is invalid.")
        if req.server_assignor is not None and req.server_assignor not in SERVER_ASSIGNORS:
            raise HeartbeatError(
                ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {req.server_assignor} is not supported. Supported assignors: "
                f"{', '.join(SERVER_ASSIGNORS)}.",
            )

    @staticmethod
    def _check_epoch(
        member: ConsumerGroupMember, epoch: int, owned: dict[str, frozenset[int]] | None
    ) -> None:
        """``throwIfConsumerGroupMemberEpochIsInvalid``: a member one epoch behind with a subset of
        its partitions is accepted (its answer to the last heartbeat was lost)."""
        if epoch > member.member_epoch:
            raise HeartbeatError(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The consumer group member has a greater member epoch ({epoch}) than the one known by "
                f"the group coordinator ({member.member_epoch}). The member must abandon all its "
                "partitions and rejoin.",
            )
        if epoch < member.member_epoch:
            subset = owned is not None and all(
                ps <= member.assigned.get(t, frozenset()) for t, ps in owned.items()
            )
            if epoch != member.previous_member_epoch or not subset:
                raise HeartbeatError(
                    ErrorCode.FENCED_MEMBER_EPOCH,
                    f"The consumer group member has a smaller member epoch ({epoch}) than the one known "
                    f"by the group coordinator ({member.member_epoch}). The member must abandon all its "
                    "partitions and rejoin.",
                )

    def _group(self, req: ConsumerHeartbeat) -> ConsumerGroup:
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_epoch != 0:
                raise HeartbeatError(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {req.group_id} not found."
                )
            group = self.groups[req.group_id] = ConsumerGroup(req.group_id)
        return group

    def _member(
        self, group: ConsumerGroup, req: ConsumerHeartbeat, records: list[ConsumerGroupRecord]
    ) -> ConsumerGroupMember:
        """``getOrMaybeSubscribeDynamicConsumerGroupMember`` / ``...StaticConsumerGroupMember``."""
        member_id = req.member_id or new_member_id()
        joining = req.member_epoch == 0
        if req.instance_id is None:
            member = group.members.get(member_id)
            if member is None:
                if not joining:
                    raise HeartbeatError(
                        ErrorCode.UNKNOWN_MEMBER_ID,
                        f"Member {member_id} is not a member of group {group.group_id}.",
                    )
                log.info("group %s: member %s joins", group.group_id, member_id)
                return ConsumerGroupMember(member_id)
            if not joining:
                self._check_epoch(member, req.member_epoch, req.owned)
            return member
        existing = group.static_member(req.instance_id)
        if joining:
            if existing is None:
                log.info("group %s: static member %s (%s) joins", group.group_id, member_id, req.instance_id)
                return ConsumerGroupMember(member_id, instance_id=req.instance_id)
            if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                raise HeartbeatError(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"Static member {existing.member_id} with instance id {req.instance_id} is not released "
                    "yet.",
                )
            return self._replace_static_member(group, existing, member_id, records)
        if existing is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {req.instance_id} is unknown.")
        if existing.member_id != member_id:
            raise HeartbeatError(
                ErrorCode.FENCED_INSTANCE_ID,
                f"Static member {member_id} with instance id {req.instance_id} was fenced by member "
                f"{existing.member_id}.",
            )
        self._check_epoch(existing, req.member_epoch, req.owned)
        return existing

    def _replace_static_member(
        self,
        group: ConsumerGroup,
        old: ConsumerGroupMember,
        member_id: str,
        records: list[ConsumerGroupRecord],
    ) -> ConsumerGroupMember:
        """``replaceMember``: the new member id takes over the old one's subscription and assignment."""
        target = group.target.get(old.member_id, {})
        self._remove_member_records(group, old.member_id, records)
        self._timers.pop((group.group_id, old.member_id), None)
        new = replace(old, member_id=member_id, member_epoch=0, previous_member_epoch=0)
        self._emit(records, self._member_record(group.group_id, new))
        self._emit(records, TargetAssignmentMemberRecord.of(group.group_id, member_id, target))
        self._emit(records, self._current_record(group.group_id, new))
        log.info(
            "group %s: static member %s replaces %s (%s)",
            group.group_id,
            member_id,
            old.member_id,
            old.instance_id,
        )
        return group.members[member_id]

    @staticmethod
    def _member_record(group_id: str, m: ConsumerGroupMember) -> ConsumerMemberRecord:
        return ConsumerMemberRecord(
            group_id,
            m.member_id,
            m.instance_id,
            m.rack_id,
            m.client_id,
            m.client_host,
            m.subscribed_topics,
            m.server_assignor,
            m.rebalance_timeout_ms,
        )

    @staticmethod
    def _current_record(group_id: str, m: ConsumerGroupMember) -> CurrentAssignmentRecord:
        return CurrentAssignmentRecord(
            group_id,
            m.member_id,
            m.member_epoch,
            m.previous_member_epoch,
            m.state.value,
            partition_list(m.assigned),
            partition_list(m.pending_revocation),
        )

    def _remove_member_records(
        self, group: ConsumerGroup, member_id: str, records: list[ConsumerGroupRecord]
    ) -> None:
        """``removeMember``: the current assignment, target and subscription tombstones, in this order."""
        gid = group.group_id
        self._emit(records, CurrentAssignmentRecord(gid, member_id, deleted=True))
        self._emit(records, TargetAssignmentMemberRecord(gid, member_id, deleted=True))
        self._emit(records, ConsumerMemberRecord(gid, member_id, deleted=True))

    def _heartbeat(
        self, req: ConsumerHeartbeat, records: list[ConsumerGroupRecord]
    ) -> ConsumerHeartbeatResult:
        group = self._group(req)
        member = self._member(group, req, records)
        gid = group.group_id
        updated = replace(
            member,
            instance_id=req.instance_id if req.instance_id is not None else member.instance_id,
            rack_id=req.rack_id if req.rack_id is not None else member.rack_id,
            rebalance_timeout_ms=req.rebalance_timeout_ms
            if req.rebalance_timeout_ms != -1
            else member.rebalance_timeout_ms,
            server_assignor=req.server_assignor
            if req.server_assignor is not None
            else member.server_assignor,
            subscribed_topics=(
                tuple(sorted(req.subscribed_topics))
                if req.subscribed_topics is not None
                else member.subscribed_topics
            ),
            client_id=req.client_id,
            client_host=req.client_host,
        )
        new_member = updated.member_id not in group.members
        bump = new_member or updated.subscribed_topics != member.subscribed_topics
        if new_member or self._member_record(gid, updated) != self._member_record(gid, member):
            self._emit(records, self._member_record(gid, updated))  # hasMemberSubscriptionChanged
        topics = dict(self.topics())
        counts = {t: topics[t] for t in sorted(group.subscribed_topics()) if t in topics}
        if gid in self._partition_counts and counts != self._partition_counts[gid]:
            bump = True  # a subscribed topic appeared or changed its partition count
        self._partition_counts[gid] = counts
        if bump:
            self._emit(records, ConsumerGroupEpochRecord(gid, group.group_epoch + 1))
            log.info("group %s: group epoch %d", gid, group.group_epoch)
        if group.group_epoch > group.assignment_epoch:
            assignor = SERVER_ASSIGNORS[group.preferred_assignor(DEFAULT_SERVER_ASSIGNOR)]
            target = build_target_assignment(group, group.group_epoch, assignor, topics)
            for record in target.records:
                self._emit(records, record)
        member = group.members[updated.member_id]
        reconciled = reconcile(
            member,
            group.assignment_epoch,
            group.target.get(member.member_id, {}),
            group.current_partition_epoch,
            req.owned,
        )
        if reconciled != member:
            self._emit(records, self._current_record(gid, reconciled))
        now = self.clock()
        self._touch(gid, reconciled, now)
        full = req.member_epoch == 0 or (
            req.rebalance_timeout_ms != -1 and req.subscribed_topics is not None and req.owned is not None
        )
        return ConsumerHeartbeatResult(
            ErrorCode.NONE,
            member_id=reconciled.member_id,
            member_epoch=reconciled.member_epoch,
            heartbeat_interval_ms=self.config.consumer_heartbeat_interval_ms,
            assignment=dict(reconciled.assigned) if full or reconciled.assigned != member.assigned else None,
        )

    def _touch(self, group_id: str, member: ConsumerGroupMember, now: float) -> None:
        """Restart the session timer; arm (or disarm) the rebalance timer by the member's state."""
        timers = self._timers.setdefault((group_id, member.member_id), _Timers(0.0))
        timers.session_deadline = now + self.config.consumer_session_timeout_ms
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            if timers.rebalance_deadline is None or timers.rebalance_epoch != member.member_epoch:
                timers.rebalance_deadline = now + max(member.rebalance_timeout_ms, 0)
                timers.rebalance_epoch = member.member_epoch
        else:
            timers.rebalance_deadline = None

    # -- leaving and fencing -------------------------------------------------------------------------

    def _leave(self, req: ConsumerHeartbeat, records: list[ConsumerGroupRecord]) -> ConsumerHeartbeatResult:
        """``consumerGroupLeave``."""
        group = self.groups.get(req.group_id)
        if group is None:
            raise HeartbeatError(ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {req.group_id} not found.")
        if req.instance_id is None:
            member = group.members.get(req.member_id)
            if member is None:
                raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {req.member_id} is unknown.")
            self._fence(group, member, records, "it left")
            return ConsumerHeartbeatResult(
                ErrorCode.NONE, member_id=req.member_id, member_epoch=req.member_epoch
            )
        member = group.static_member(req.instance_id)
        if member is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {req.instance_id} is unknown.")
        if member.member_id != req.member_id:
            raise HeartbeatError(
                ErrorCode.FENCED_INSTANCE_ID, f"Instance id {req.instance_id} is owned by another member."
            )
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
            self._fence(group, member, records, "it left")
            return ConsumerHeartbeatResult(
                ErrorCode.NONE, member_id=req.member_id, member_epoch=req.member_epoch
            )
        # consumerGroupStaticMemberGroupLeave: it keeps its partitions at epoch -2 until it is back
        # (or its session expires); the group epoch does not move.
        leaving = replace(member, member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH, pending_revocation={})
        self._emit(records, self._current_record(group.group_id, leaving))
        log.info(
            "group %s: static member %s (%s) left temporarily",
            group.group_id,
            member.member_id,
            member.instance_id,
        )
        return ConsumerHeartbeatResult(
            ErrorCode.NONE, member_id=member.member_id, member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH
        )

    def _fence(
        self, group: ConsumerGroup, member: ConsumerGroupMember, records: list[ConsumerGroupRecord], why: str
    ) -> None:
        """``consumerGroupFenceMember``: remove the member, bump the group epoch; the next heartbeat of
        any member computes the new target."""
        self._remove_member_records(group, member.member_id, records)
        self._emit(records, ConsumerGroupEpochRecord(group.group_id, group.group_epoch + 1))
        self._timers.pop((group.group_id, member.member_id), None)
        log.info(
            "group %s: member %s removed because %s; group epoch %d",
            group.group_id,
            member.member_id,
            why,
            group.group_epoch,
        )

    # -- timers --------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [t.session_deadline for t in self._timers.values()]
        deadlines += [t.rebalance_deadline for t in self._timers.values() if t.rebalance_deadline is not None]
        return min(deadlines, default=None)

    def poll(self, now: float) -> list[str]:
        """Fence every member whose session or rebalance timer fired; the groups that changed."""
        changed = []
        for (group_id, member_id), timers in list(self._timers.items()):
            expired = timers.session_deadline <= now
            revoking = timers.rebalance_deadline is not None and timers.rebalance_deadline <= now
            if not (expired or revoking):
                continue
            group = self.groups.get(group_id)
            member = None if group is None else group.members.get(member_id)
            if group is None or member is None:
                self._timers.pop((group_id, member_id), None)
                continue
            if (
                revoking
                and not expired
                and (
                    member.state is not MemberState.UNREVOKED_PARTITIONS
                    or member.member_epoch != timers.rebalance_epoch
                )
            ):
                timers.rebalance_deadline = None
                continue
            before = copy.deepcopy(group)
            timers_before = {k: replace(v) for k, v in self._timers.items() if k[0] == group_id}
            records: list[ConsumerGroupRecord] = []
            why = (
                "its session expired"
                if expired
                else "it did not revoke its partitions within the rebalance timeout"
            )
            self._fence(group, member, records, why)
            try:
                self._persist(group_id, records)
            except PersistError as exc:
                log.warning("group %s: could not fence %s: %s; retrying later", group_id, member_id, exc)
                self._restore(group_id, before, timers_before)
                self._timers[(group_id, member_id)].session_deadline = (
                    now + self.config.consumer_heartbeat_interval_ms
                )
                continue
            changed.append(group_id)
        return changed

    # -- ConsumerGroupDescribe -----------------------------------------------------------------------

    def describe(self, group_id: str) -> ConsumerGroupDescription:
        """``GroupMetadataManager.consumerGroupDescribe`` for one group this coordinator has."""
        group = self.groups.get(group_id)
        if group is None:
            return ConsumerGroupDescription(
                group_id, ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
            )
        return ConsumerGroupDescription(
            group_id,
            ErrorCode.NONE,
            state=group.state.value,
            group_epoch=group.group_epoch,
            assignment_epoch=group.assignment_epoch,
            assignor=group.preferred_assignor(DEFAULT_SERVER_ASSIGNOR),
            members=tuple(
                ConsumerMemberDescription(
                    m.member_id,
                    m.instance_id,
                    m.rack_id,
                    m.member_epoch,
                    m.client_id,
                    m.client_host,
                    m.subscribed_topics,
                    dict(m.assigned),
                    dict(group.target.get(m.member_id, {})),
                )
                for m in sorted(group.members.values(), key=lambda m: m.member_id)
            ),
        )

    # -- OffsetCommit from a consumer group's member -------------------------------------------------

    def validate_offset_commit(self, group_id: str, member_id: str, member_epoch: int) -> ErrorCode:
        """``ConsumerGroup.validateOffsetCommit``: a simple commit to an empty group, or a member at
        its current epoch (``STALE_MEMBER_EPOCH`` otherwise)."""
        group = self.groups[group_id]
        if member_epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

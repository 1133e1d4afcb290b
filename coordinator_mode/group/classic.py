"""One consumer group under the classic protocol (:class:`ClassicGroup`) and its members.

This follows Kafka's classic group coordinator: ``ClassicGroup`` and ``ClassicGroupMember`` in the
``group-coordinator`` module, whose request handling lives in ``GroupMetadataManager`` (the older
``GroupCoordinator.scala`` / ``GroupMetadata.scala`` before it). The broker's API handlers
(:mod:`coordinator_mode.broker.group_apis`) decode requests, call the coordinator
(:mod:`.coordinator`), which calls the methods here, and send what the callbacks receive. The states
and their transitions are documented on :class:`~.state.ClassicGroupState`.

* **Join phase.** JoinGroup requests are *parked* (their callback is kept) until every known member
  has rejoined and no pending member remains, or the rebalance timeout (the largest one among the
  members) fires. A rebalance that starts from Empty waits ``initial_rebalance_delay_ms`` instead
  and never completes early; each member that arrives meanwhile extends it by up to the same delay
  again, capped by the rebalance timeout (KIP-134, ``InitialDelayedJoin``).
* **New members (KIP-394).** A JoinGroup v4+ with an empty member id gets ``MEMBER_ID_REQUIRED`` and
  a generated id; the id is *pending* until the member joins again with it (or its session timeout
  passes).
* **Leader.** The first member added leads; it keeps leadership while it rejoins. Only the leader's
  JoinGroup response carries the member list (ids and subscription metadata).
* **Sync phase.** Followers' SyncGroup requests are parked until the leader's SyncGroup brings the
  assignment, which is persisted (a group record) before anyone is answered; then the group is
  Stable. Members that never send SyncGroup within the rebalance timeout are removed.
* **Liveness.** Each member has a session deadline, pushed forward by heartbeats (and by joining,
  syncing). A member whose deadline passes is removed, unless it is an existing member parked in a
  join or sync. Heartbeats during PreparingRebalance answer ``REBALANCE_IN_PROGRESS``: that is how
  members learn to rejoin.
* **Static membership (KIP-345).** A member with ``group.instance.id`` that rejoins with an empty
  member id replaces its old member id; in Stable with an unchanged protocol this causes no
  rebalance. A request carrying a stale member id for a known instance id gets
  ``FENCED_INSTANCE_ID``.

Timers are deadlines in milliseconds of the injected clock. Nothing fires by itself: the owner calls
:meth:`~.coordinator.GroupCoordinator.poll` when :meth:`~.coordinator.GroupCoordinator.next_deadline`
has passed. Persistence is a synchronous hook (``persist(partition, records)``) that raises
:class:`~.errors.PersistError` on failure, so "answer after the write commits" is simply "answer
after the hook returns".

This module is longer than the others (about 900 lines) on purpose: :class:`ClassicGroup` is one
state machine whose fields (members, pending members, the join and sync timers, the leader) every
transition reads and writes together, so its join, sync, leave and timer handling stay in one class,
as Kafka keeps them in one ``ClassicGroup`` plus one section of ``GroupMetadataManager``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .config import CoordinatorConfig
from .errors import ErrorCode, IllegalStateTransition, PersistError
from .messages import (
    GroupDescription,
    JoinCallback,
    JoinedMember,
    JoinRequest,
    JoinResult,
    LeaveResult,
    LeavingMember,
    MemberDescription,
    Protocol,
    SyncCallback,
    SyncRequest,
    SyncResult,
)
from .records import GroupMetadataRecord, MemberRecord, Record
from .state import VALID_PREVIOUS_STATES, ClassicGroupState

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ClassicGroupMember:
    """One member as the coordinator keeps it (Kafka's ``ClassicGroupMember``): its protocols, its
    current assignment, the JoinGroup/SyncGroup it has parked and its session deadline."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: tuple[Protocol, ...]
    assignment: bytes = b""
    join_callback: JoinCallback | None = None
    sync_callback: SyncCallback | None = None
    is_new: bool = False
    heartbeat_deadline: float | None = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_callback is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_callback is not None

    def has_satisfied_heartbeat(self) -> bool:
        """Whether a passed session deadline is forgiven (``ClassicGroupMember.hasSatisfiedHeartbeat``).

        A parked request cannot heartbeat, so existing members awaiting a join or sync are kept; new
        members are not, so defunct joiners do not pile up.
        """
        if self.is_new:
            return False
        return self.awaiting_join or self.awaiting_sync

    def matches(self, protocols: Iterable[Protocol]) -> bool:
        return tuple(protocols) == self.protocols

    def metadata_for(self, protocol_name: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    def to_record(self) -> MemberRecord:
        return MemberRecord(
            member_id=self.member_id,
            group_instance_id=self.group_instance_id,
            client_id=self.client_id,
            client_host=self.client_host,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            session_timeout_ms=self.session_timeout_ms,
            protocols=self.protocols,
            assignment=self.assignment,
        )


def default_member_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


@dataclass
class GroupContext:
    """What a group needs from its owner: settings, time, ids and the persist hook."""

    config: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    clock: Callable[[], float] = monotonic_ms
    new_member_id: Callable[[str], str] = default_member_id
    persist: Callable[[list[Record]], None] = lambda records: None


class ClassicGroup:
    """One consumer group under the classic protocol. All methods run to completion synchronously."""

    def __init__(
        self, group_id: str, ctx: GroupContext, state: ClassicGroupState = ClassicGroupState.EMPTY
    ) -> None:
        self.group_id = group_id
        self.ctx = ctx
        self.state = state
        self.previous_state = state
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, ClassicGroupMember] = {}  # insertion order: the leader fallback order
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, float] = {}  # member id issued with MEMBER_ID_REQUIRED -> deadline
        self.pending_sync: set[str] = set()
        # The join phase timer: a regular DelayedJoin, or the initial delay (InitialDelayedJoin).
        self.join_deadline: float | None = None
        self._initial_join = False
        self._initial_delay_ms = 0
        self._initial_remaining_ms = 0
        self.new_member_added = False
        self.sync_deadline: float | None = None
        self._sync_generation = -1

    # -- small queries ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"ClassicGroup({self.group_id!r}, {self.state.value}, gen={self.generation_id}, n={len(self.members)})"

    def _now(self) -> float:
        return self.ctx.clock()

    @property
    def rebalance_timeout_ms(self) -> int:
        """The join phase's timeout: the largest rebalance timeout among the members."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.awaiting_join)

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.num_awaiting_join and not self.pending_members

    def can_rebalance(self) -> bool:
        return self.state in VALID_PREVIOUS_STATES[ClassicGroupState.PREPARING_REBALANCE]

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def _transition(self, target: ClassicGroupState) -> None:
        if self.state not in VALID_PREVIOUS_STATES[target]:
            raise IllegalStateTransition(f"group {self.group_id}: {self.state.value} -> {target.value}")
        log.debug("group %s: %s -> %s", self.group_id, self.state.value, target.value)
        self.previous_state = self.state
        self.state = target

    def _is_static_member_fenced(self, member_id: str, instance_id: str | None) -> bool:
        if instance_id is None:
            return False
        known = self.static_members.get(instance_id)
        return known is not None and known != member_id

    def _validate_member(self, member_id: str, instance_id: str | None) -> ErrorCode:
        """``ClassicGroup.validateMember``: the instance id first, then the member id."""
        if instance_id is not None:
            known = self.static_members.get(instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if known != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    def _supports_protocols(self, protocol_type: str, protocols: tuple[Protocol, ...]) -> bool:
        names = [name for name, _ in protocols]
        if self.state is ClassicGroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        if protocol_type != self.protocol_type:
            return False
        common = self._common_protocols()
        return any(name in common for name in names)

    def _common_protocols(self) -> set[str]:
        common: set[str] | None = None
        for member in self.members.values():
            names = {name for name, _ in member.protocols}
            common = names if common is None else common & names
        return common or set()

    def select_protocol(self) -> str | None:
        """Each member votes for its most preferred protocol that all members support; most votes wins."""
        common = self._common_protocols()
        if not common:
            return None
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = next(name for name, _ in member.protocols if name in common)
            votes[choice] = votes.get(choice, 0) + 1
        # dicts keep first-vote order, so ties go to the earliest member's choice
        return max(votes, key=lambda name: votes[name])

    def _current_members(self) -> tuple[JoinedMember, ...]:
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata_for(self.protocol_name))
            for m in self.members.values()
        )

    def _join_result(
        self, member: ClassicGroupMember, *, with_members: bool, leader: str | None = None
    ) -> JoinResult:
        return JoinResult(
            error=ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader_id=(self.leader_id if leader is None else leader) or "",
            members=self._current_members() if with_members else (),
        )

    # -- membership bookkeeping ------------------------------------------------------------------

    def _add(self, member: ClassicGroupMember, callback: JoinCallback | None) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if self.leader_id is None:
            self.leader_id = member.member_id
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)
        member.join_callback = callback

    def _remove(self, member_id: str) -> ClassicGroupMember | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if (
            member.group_instance_id is not None
            and self.static_members.get(member.group_instance_id) == member_id
        ):
            del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        member.heartbeat_deadline = None
        return member

    def _update_member(
        self,
        member: ClassicGroupMember,
        protocols: tuple[Protocol, ...],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        callback: JoinCallback | None,
    ) -> None:
        member.protocols = protocols
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if member.join_callback is not None and callback is not None:
            # A second JoinGroup while one is parked: answer the older one so no request hangs.
            member.join_callback(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id))
        member.join_callback = callback

    def _reschedule_heartbeat(self, member: ClassicGroupMember, timeout_ms: int | None = None) -> None:
        member.heartbeat_deadline = self._now() + (
            member.session_timeout_ms if timeout_ms is None else timeout_ms
        )

    def _invoke_join(self, member: ClassicGroupMember, result: JoinResult) -> None:
        callback, member.join_callback = member.join_callback, None
        if callback is not None:
            callback(result)

    def _invoke_sync(self, member: ClassicGroupMember, result: SyncResult) -> bool:
        callback, member.sync_callback = member.sync_callback, None
        if callback is None:
            return False
        callback(result)
        return True

    def _record(self) -> GroupMetadataRecord:
        return GroupMetadataRecord(
            group_id=self.group_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader_id=self.leader_id,
            members=tuple(m.to_record() for m in self.members.values()),
        )

    # -- JoinGroup -------------------------------------------------------------------------------

    def join(self, req: JoinRequest, callback: JoinCallback) -> None:
        """Handle a JoinGroup already validated for group id, coordinator and session timeout."""
        member_id = req.member_id
        if not self._accept_joining_member(member_id):
            if member_id in self.members:
                self._remove(member_id)
            callback(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))
            self._maybe_complete_join_phase()
        elif member_id == "":
            self._join_new_member(req, callback)
        else:
            self._join_existing_member(req, callback)

    def _accept_joining_member(self, member_id: str) -> bool:
        limit = self.ctx.config.max_size
        if self.state in (ClassicGroupState.EMPTY, ClassicGroupState.DEAD):
            return True
        if self.state is ClassicGroupState.PREPARING_REBALANCE:
            # The members awaiting a join are the ones the next generation will have.
            member = self.members.get(member_id)
            return (member is not None and member.awaiting_join) or self.num_awaiting_join < limit
        return member_id in self.members or len(self.members) < limit

    def _join_new_member(self, req: JoinRequest, callback: JoinCallback) -> None:
        if self.state is ClassicGroupState.DEAD:
            callback(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        if not self._supports_protocols(req.protocol_type, req.protocols):
            callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        new_id = self.ctx.new_member_id(req.group_instance_id or req.client_id)
        if req.group_instance_id is not None:
            old_id = self.static_members.get(req.group_instance_id)
            if old_id is not None:
                self._update_static_member(req, old_id, new_id, callback)
            else:
                self._add_member_then_rebalance(req, new_id, callback)
        elif req.require_known_member_id:
            # KIP-394: hand out the id, remember it as pending, and ask the member to come back with it.
            self.pending_members[new_id] = self._now() + req.session_timeout_ms
            callback(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id))
        else:
            self._add_member_then_rebalance(req, new_id, callback)

    def _join_existing_member(self, req: JoinRequest, callback: JoinCallback) -> None:
        member_id = req.member_id
        if self.state is ClassicGroupState.DEAD:
            callback(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            return
        if not self._supports_protocols(req.protocol_type, req.protocols):
            callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        if member_id in self.pending_members:
            if req.group_instance_id is not None:
                # Pending ids are only issued to dynamic members; Kafka throws here. We refuse.
                callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))
                return
            self._add_member_then_rebalance(req, member_id, callback)
            return
        error = self._validate_member(member_id, req.group_instance_id)
        if error is not ErrorCode.NONE:
            callback(JoinResult(error, member_id=member_id))
            return
        member = self.members[member_id]
        if self.state is ClassicGroupState.PREPARING_REBALANCE:
            self._update_member_then_rebalance(req, member, callback)
        elif self.state is ClassicGroupState.COMPLETING_REBALANCE:
            if member.matches(req.protocols):
                # Same metadata: it probably lost our JoinGroup response; resend this generation.
                callback(self._join_result(member, with_members=self.is_leader(member_id)))
            else:
                self._update_member_then_rebalance(req, member, callback)
        elif self.state is ClassicGroupState.STABLE:
            if self.is_leader(member_id) or not member.matches(req.protocols):
                # The leader rejoins to trigger a rebalance for changes the metadata cannot show.
                self._update_member_then_rebalance(req, member, callback)
            else:
                callback(self._join_result(member, with_members=False))
        else:
            log.warning("group %s: member %s rejoins in state %s", self.group_id, member_id, self.state.value)
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))

    def _add_member_then_rebalance(self, req: JoinRequest, member_id: str, callback: JoinCallback) -> None:
        member = ClassicGroupMember(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            session_timeout_ms=req.session_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=req.protocols,
            is_new=True,
        )
        if (
            self.state is ClassicGroupState.PREPARING_REBALANCE
            and self.previous_state is ClassicGroupState.EMPTY
        ):
            self.new_member_added = True  # lets the initial delay extend once more
        self._add(member, callback)
        # A parked JoinGroup cannot heartbeat: new members get the long join timeout instead.
        self._reschedule_heartbeat(member, self.ctx.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(f"adding new member {member_id}")

    def _update_member_then_rebalance(
        self, req: JoinRequest, member: ClassicGroupMember, callback: JoinCallback
    ) -> None:
        self._update_member(member, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, callback)
        self._maybe_prepare_rebalance_or_complete_join(f"updating metadata of member {member.member_id}")

    def _update_static_member(
        self, req: JoinRequest, old_id: str, new_id: str, callback: JoinCallback
    ) -> None:
        """A known ``group.instance.id`` rejoins with an empty member id: swap in the new id."""
        current_leader = self.leader_id
        member = self.members.pop(old_id)
        old = (member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        member.member_id = new_id
        self.members[new_id] = member
        self.static_members[req.group_instance_id or ""] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        # Whoever still waits under the old id is a duplicate instance: fence it at once.
        self._invoke_join(member, JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_id))
        self._invoke_sync(member, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        self._reschedule_heartbeat(member)
        self._update_member(member, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, callback)

        if self.state is ClassicGroupState.STABLE:
            if self.protocol_name == self.select_protocol():
                # Nothing the assignment depends on changed: persist the new id, no rebalance.
                try:
                    self.ctx.persist([self._record()])
                except PersistError as exc:
                    log.warning(
                        "group %s: could not persist static member %s: %s", self.group_id, new_id, exc
                    )
                    self._revert_static_member(req, member, old_id, old)
                    callback(
                        JoinResult(
                            exc.code,
                            generation_id=self.generation_id,
                            protocol_type=self.protocol_type,
                            protocol_name=self.protocol_name,
                            leader_id=current_leader or "",
                        )
                    )
                    return
                if req.supports_skip_assignment:
                    is_leader = self.is_leader(new_id)
                    result = self._join_result(member, with_members=is_leader)
                    self._invoke_join(member, replace(result, skip_assignment=is_leader))
                else:
                    # The old leader id tells a rejoining leader it is not the leader, so it does not
                    # compute an assignment that a Stable group would never distribute.
                    self._invoke_join(
                        member, self._join_result(member, with_members=False, leader=current_leader)
                    )
            else:
                self._maybe_prepare_rebalance_or_complete_join(
                    f"static member {new_id} changed the group's protocol"
                )
        elif self.state is ClassicGroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old id: start over so the new id gets partitions.
            self._prepare_rebalance(f"static member {new_id} rejoined during CompletingRebalance")
        else:
            self._maybe_complete_join_phase()

    def _revert_static_member(
        self,
        req: JoinRequest,
        member: ClassicGroupMember,
        old_id: str,
        old: tuple[tuple[Protocol, ...], int, int],
    ) -> None:
        """Undo :meth:`_update_static_member` after its record could not be persisted."""
        new_id = member.member_id
        self._update_member(member, *old, None)
        self.members.pop(new_id)
        member.member_id = old_id
        self.members[old_id] = member
        self.static_members[req.group_instance_id or ""] = old_id
        if self.leader_id == new_id:
            self.leader_id = old_id
        self._reschedule_heartbeat(member)

    # -- the join phase --------------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, reason: str) -> None:
        if self.can_rebalance():
            self._prepare_rebalance(reason)
        else:
            self._maybe_complete_join_phase()

    def _prepare_rebalance(self, reason: str) -> None:
        if self.state is ClassicGroupState.COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment_error(ErrorCode.REBALANCE_IN_PROGRESS)
        self.sync_deadline = None
        self.pending_sync.clear()
        initial = self.state is ClassicGroupState.EMPTY
        self._transition(ClassicGroupState.PREPARING_REBALANCE)
        log.info(
            "group %s: preparing to rebalance (previous state %s, generation %d): %s",
            self.group_id,
            self.previous_state.value,
            self.generation_id,
            reason,
        )
        if initial:
            delay = self.ctx.config.initial_rebalance_delay_ms
            self._initial_join = True
            self._initial_delay_ms = delay
            self._initial_remaining_ms = max(self.rebalance_timeout_ms - delay, 0)
            self.new_member_added = False
            self.join_deadline = self._now() + delay
        else:
            self._initial_join = False
            self.join_deadline = self._now() + self.rebalance_timeout_ms
            self._maybe_complete_join_phase()

    def _maybe_complete_join_phase(self) -> None:
        if self.state is not ClassicGroupState.PREPARING_REBALANCE:
            return
        if self.previous_state is ClassicGroupState.EMPTY:
            return  # the initial delay always runs its course
        if self.has_all_members_joined():
            self._complete_join()

    def _on_join_deadline(self) -> None:
        self.join_deadline = None
        if self._initial_join and self.new_member_added and self._initial_remaining_ms != 0:
            # InitialDelayedJoin.onComplete: someone arrived during the delay, wait a bit more.
            self.new_member_added = False
            delay = min(self.ctx.config.initial_rebalance_delay_ms, self._initial_remaining_ms)
            self._initial_remaining_ms = max(self._initial_remaining_ms - self._initial_delay_ms, 0)
            self._initial_delay_ms = delay
            self.join_deadline = self._now() + delay
            return
        self._complete_join()

    def _complete_join(self) -> None:
        self.join_deadline = None
        self._initial_join = False
        if self.state is not ClassicGroupState.PREPARING_REBALANCE:
            return
        for member in list(self.members.values()):
            if not member.awaiting_join and member.group_instance_id is None:
                log.info(
                    "group %s: member %s did not rejoin in time, removing it", self.group_id, member.member_id
                )
                self._remove(member.member_id)
        if self.members and not self._maybe_elect_new_joined_leader():
            log.error("group %s: no member rejoined; waiting another rebalance timeout", self.group_id)
            self.join_deadline = self._now() + self.rebalance_timeout_ms
            return
        self._init_next_generation()
        if self.state is ClassicGroupState.EMPTY:
            log.info("group %s: generation %d is empty", self.group_id, self.generation_id)
            try:
                self.ctx.persist([self._record()])
            except PersistError as exc:
                # The previous generation in the log has no live members either, so this is safe.
                log.warning("group %s: could not persist empty metadata: %s", self.group_id, exc)
            return
        log.info(
            "group %s: generation %d formed with %d members, leader %s, protocol %s",
            self.group_id,
            self.generation_id,
            len(self.members),
            self.leader_id,
            self.protocol_name,
        )
        self.pending_sync = set(self.members)
        self.sync_deadline = self._now() + self.rebalance_timeout_ms
        self._sync_generation = self.generation_id
        for member in list(self.members.values()):
            self._invoke_join(
                member, self._join_result(member, with_members=self.is_leader(member.member_id))
            )
            self._reschedule_heartbeat(member)
            member.is_new = False

    def _maybe_elect_new_joined_leader(self) -> bool:
        leader = self.members.get(self.leader_id or "")
        if leader is not None and leader.awaiting_join:
            return True
        for member in self.members.values():
            if member.awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    def _init_next_generation(self) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self._transition(ClassicGroupState.COMPLETING_REBALANCE)
        else:
            self.protocol_name = None
            self._transition(ClassicGroupState.EMPTY)

    # -- SyncGroup -------------------------------------------------------------------------------

    def sync(self, req: SyncRequest, callback: SyncCallback) -> None:
        if self.state is ClassicGroupState.DEAD:
            callback(SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        error = self._validate_member(req.member_id, req.group_instance_id)
        if error is ErrorCode.NONE and req.generation_id != self.generation_id:
            error = ErrorCode.ILLEGAL_GENERATION
        if error is ErrorCode.NONE and (
            (req.protocol_type is not None and req.protocol_type != self.protocol_type)
            or (req.protocol_name is not None and req.protocol_name != self.protocol_name)
        ):
            error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error is not ErrorCode.NONE:
            callback(SyncResult(error))
            return
        self.pending_sync.discard(req.member_id)
        member = self.members[req.member_id]
        if self.state is ClassicGroupState.PREPARING_REBALANCE:
            callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif self.state is ClassicGroupState.COMPLETING_REBALANCE:
            if member.sync_callback is not None:
                member.sync_callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.sync_callback = callback
            if self.is_leader(req.member_id):
                self._complete_sync(dict(req.assignments))
        elif self.state is ClassicGroupState.STABLE:
            callback(self._sync_result(member.assignment))
            self._reschedule_heartbeat(member)
        else:
            callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))

    def _sync_result(self, assignment: bytes, error: ErrorCode = ErrorCode.NONE) -> SyncResult:
        return SyncResult(error, assignment, self.protocol_type, self.protocol_name)

    def _complete_sync(self, assignments: dict[str, bytes]) -> None:
        """The leader's assignment: persist it, then answer every parked SyncGroup and go Stable."""
        log.info(
            "group %s: assignment received from leader for generation %d", self.group_id, self.generation_id
        )
        full = {member_id: assignments.get(member_id, b"") for member_id in self.members}
        for member_id, member in self.members.items():
            member.assignment = full[member_id]
        try:
            self.ctx.persist([self._record()])
        except PersistError as exc:
            log.warning("group %s: could not persist the assignment: %s", self.group_id, exc)
            self._reset_and_propagate_assignment_error(exc.code)
            self._maybe_prepare_rebalance_or_complete_join("error storing the group assignment")
            return
        self._propagate_assignment(ErrorCode.NONE)
        self._transition(ClassicGroupState.STABLE)

    def _reset_and_propagate_assignment_error(self, error: ErrorCode) -> None:
        for member in self.members.values():
            member.assignment = b""
        self._propagate_assignment(error)

    def _propagate_assignment(self, error: ErrorCode) -> None:
        for member in list(self.members.values()):
            if self._invoke_sync(member, self._sync_result(member.assignment, error)):
                # Its deadline may have passed while it was parked: start a fresh one.
                self._reschedule_heartbeat(member)

    def _on_sync_deadline(self) -> None:
        self.sync_deadline = None
        if self._sync_generation != self.generation_id:
            return
        if (
            self.state not in (ClassicGroupState.COMPLETING_REBALANCE, ClassicGroupState.STABLE)
            or not self.pending_sync
        ):
            return
        missing = sorted(self.pending_sync)
        log.info("group %s: members %s never sent SyncGroup, removing them", self.group_id, missing)
        for member_id in missing:
            member = self._remove(member_id)
            if member is not None:
                self._invoke_join(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._prepare_rebalance(f"removing {missing} on pending sync expiration")

    # -- Heartbeat, LeaveGroup, offset commit validation -----------------------------------------

    def heartbeat(self, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode:
        if self.state is ClassicGroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(member_id, instance_id)
        if error is not ErrorCode.NONE:
            return error
        if generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if self.state is ClassicGroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._reschedule_heartbeat(self.members[member_id])
        if self.state is ClassicGroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        # CompletingRebalance answers OK (the Javadoc says otherwise; Kafka's code does this).
        return ErrorCode.NONE

    def leave(self, leaving: Iterable[LeavingMember]) -> LeaveResult:
        if self.state is ClassicGroupState.DEAD:
            return LeaveResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        results: list[tuple[LeavingMember, ErrorCode]] = []
        for who in leaving:
            if who.member_id and self._is_static_member_fenced(who.member_id, who.group_instance_id):
                results.append((who, ErrorCode.FENCED_INSTANCE_ID))
            elif who.member_id in self.pending_members:
                log.info("group %s: pending member %s leaves", self.group_id, who.member_id)
                del self.pending_members[who.member_id]
                self._maybe_complete_join_phase()
                results.append((who, ErrorCode.NONE))
            else:
                member_id = (
                    self.static_members.get(who.group_instance_id)
                    if who.group_instance_id is not None and who.group_instance_id in self.static_members
                    else who.member_id
                )
                member = self.members.get(member_id or "")
                if member is None:
                    results.append((who, ErrorCode.UNKNOWN_MEMBER_ID))
                    continue
                log.info(
                    "group %s: member %s leaves%s",
                    self.group_id,
                    member.member_id,
                    f" ({who.reason})" if who.reason else "",
                )
                self._remove_member_and_update_group(member, f"member {member.member_id} left")
                results.append((who, ErrorCode.NONE))
        return LeaveResult(ErrorCode.NONE, tuple(results))

    def validate_offset_commit(
        self, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        """``ClassicGroup.validateOffsetCommit`` for a non-transactional commit; an accepted commit of
        a member extends its session, as Kafka 3.9's ``GroupCoordinator.doCommitOffsets`` calls
        ``completeAndScheduleNextHeartbeatExpiration`` in Stable and PreparingRebalance before it
        stores the offsets (so also when the store then fails; [J]: ``OffsetMetadataManager.commitOffset``)."""
        if self.state is ClassicGroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and self.state is ClassicGroupState.EMPTY:
            return ErrorCode.NONE  # a group that uses Kafka only to store offsets
        error = self._validate_member(member_id, instance_id)
        if error is not ErrorCode.NONE:
            return error
        if generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if self.state is ClassicGroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if self.state in (ClassicGroupState.STABLE, ClassicGroupState.PREPARING_REBALANCE):
            self._reschedule_heartbeat(self.members[member_id])  # validated: a member of the group
        return ErrorCode.NONE

    def _remove_member_and_update_group(self, member: ClassicGroupMember, reason: str) -> None:
        # A new member may time out while parked in a join: tell it, so it can retry.
        self._invoke_join(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._invoke_sync(member, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._remove(member.member_id)
        if self.state in (ClassicGroupState.STABLE, ClassicGroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(reason)
        elif self.state is ClassicGroupState.PREPARING_REBALANCE:
            self._maybe_complete_join_phase()

    # -- timers ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.join_deadline, self.sync_deadline) if d is not None]
        deadlines.extend(self.pending_members.values())
        deadlines.extend(
            m.heartbeat_deadline for m in self.members.values() if m.heartbeat_deadline is not None
        )
        return min(deadlines, default=None)

    def poll(self, now: float | None = None) -> None:
        """Fire every timer whose deadline has passed, earliest first."""
        now = self._now() if now is None else now
        for _ in range(100_000):  # each firing removes or re-arms its timer; this only bounds a bug
            due = self._earliest_due(now)
            if due is None:
                return
            kind, key = due
            if kind == "pending":
                log.info("group %s: pending member %s expired", self.group_id, key)
                del self.pending_members[key]
                self._maybe_complete_join_phase()
            elif kind == "heartbeat":
                member = self.members[key]
                member.heartbeat_deadline = None
                if not member.has_satisfied_heartbeat():
                    log.info("group %s: member %s session expired, removing it", self.group_id, key)
                    self._remove_member_and_update_group(member, f"member {key} session expired")
            elif kind == "join":
                self._on_join_deadline()
            else:
                self._on_sync_deadline()
        raise RuntimeError(f"group {self.group_id}: timers keep firing")

    def _earliest_due(self, now: float) -> tuple[str, str] | None:
        best: tuple[float, str, str] | None = None
        candidates: list[tuple[float, str, str]] = []
        if self.join_deadline is not None:
            candidates.append((self.join_deadline, "join", ""))
        if self.sync_deadline is not None:
            candidates.append((self.sync_deadline, "sync", ""))
        candidates.extend((d, "pending", k) for k, d in self.pending_members.items())
        candidates.extend(
            (m.heartbeat_deadline, "heartbeat", k)
            for k, m in self.members.items()
            if m.heartbeat_deadline is not None
        )
        for candidate in candidates:
            if candidate[0] <= now and (best is None or candidate[0] < best[0]):
                best = candidate
        return None if best is None else (best[1], best[2])

    # -- describe, load, unload ------------------------------------------------------------------

    def describe(self) -> GroupDescription:
        stable = self.state is ClassicGroupState.STABLE
        members = tuple(
            MemberDescription(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                metadata=m.metadata_for(self.protocol_name) if stable else b"",
                assignment=m.assignment if stable else b"",
            )
            for m in self.members.values()
        )
        return GroupDescription(
            group_id=self.group_id,
            error=ErrorCode.NONE,
            state=self.state.value,
            protocol_type=self.protocol_type or "",
            protocol=(self.protocol_name or "") if stable else "",
            members=members,
        )

    @classmethod
    def from_record(cls, record: GroupMetadataRecord, ctx: GroupContext) -> ClassicGroup:
        """A group as a new coordinator loads it: Stable with its members, or Empty.

        Every member gets a fresh session deadline, so a failover that completes within the session
        timeout causes no rebalance.
        """
        group = cls(
            record.group_id, ctx, ClassicGroupState.STABLE if record.members else ClassicGroupState.EMPTY
        )
        group.previous_state = group.state
        group.generation_id = record.generation_id
        group.protocol_type = record.protocol_type
        group.protocol_name = record.protocol_name if record.members else None
        for m in record.members:
            member = ClassicGroupMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                session_timeout_ms=m.session_timeout_ms,
                protocol_type=record.protocol_type or "",
                protocols=tuple(m.protocols),
                assignment=m.assignment,
            )
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
            group._reschedule_heartbeat(member)
        group.leader_id = (
            record.leader_id if record.leader_id in group.members else next(iter(group.members), None)
        )
        return group

    def unload(self) -> None:
        """The partition emigrated: the group is Dead here and parked requests go find the new coordinator."""
        previous = self.state
        if previous is not ClassicGroupState.DEAD:
            self._transition(ClassicGroupState.DEAD)
        for member in self.members.values():
            self._invoke_join(member, JoinResult(ErrorCode.NOT_COORDINATOR, member_id=member.member_id))
            self._invoke_sync(member, SyncResult(ErrorCode.NOT_COORDINATOR))
            member.heartbeat_deadline = None
        self.join_deadline = None
        self.sync_deadline = None
        self.pending_members.clear()

"""The group coordinator: every classic group of the offsets partitions this broker leads.

It follows Kafka's ``GroupCoordinatorService`` / ``GroupMetadataManager`` (``group-coordinator``
module) for the classic protocol: requests are validated for group id, loading and ownership
(``validateGroupStatus``), then handed to the group's :class:`~.classic.ClassicGroup`; committed
offsets are kept here, per group. Consumer-protocol groups (KIP-848) are the
:class:`~.consumer_coordinator.ConsumerGroupCoordinator`'s; a group id is one kind or the other
(mixed groups are refused, see :meth:`GroupCoordinator.consumer_heartbeat` and :meth:`GroupCoordinator.join`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .classic import ClassicGroup, GroupContext, default_member_id, monotonic_ms
from .config import CoordinatorConfig
from .consumer_coordinator import ConsumerGroupCoordinator
from .errors import ErrorCode, PersistError
from .messages import (
    ConsumerGroupDescription,
    ConsumerHeartbeat,
    ConsumerHeartbeatResult,
    GroupDescription,
    JoinCallback,
    JoinRequest,
    JoinResult,
    LeaveResult,
    LeavingMember,
    OffsetAndMetadata,
    OffsetCommit,
    SyncCallback,
    SyncRequest,
    SyncResult,
)
from .records import CONSUMER_RECORD_KINDS, GroupMetadataRecord, OffsetCommitRecord, Record
from .state import ClassicGroupState

log = logging.getLogger(__name__)


class PartitionState(StrEnum):
    """Per offsets partition (``CoordinatorRuntime.CoordinatorState``); absent means not the leader."""

    LOADING = "loading"
    ACTIVE = "active"


@dataclass
class _Partition:
    state: PartitionState
    epoch: int


@dataclass
class StagedCommit:
    """An offset commit persisted (appended) but not yet served; ``epoch`` is the partition's leader
    epoch at the append (-1 when nothing was appended)."""

    group_id: str
    epoch: int
    records: list[OffsetCommitRecord]
    results: list[tuple[OffsetCommit, ErrorCode]]


_CONSUMER_RECORD_TYPES = frozenset(CONSUMER_RECORD_KINDS.values())

#: The APIs whose group-id validation differs: these accept the empty group id (Kafka's
#: ``isValidGroupId``), the rest need a non-empty one.
_EMPTY_GROUP_ID_OK = frozenset({"offset_commit", "offset_fetch", "describe_groups"})


class GroupCoordinator:
    """Routes group requests to :class:`ClassicGroup`s and keeps committed offsets, per offsets partition.

    Args:
        partition_for: maps a group id to its offsets partition.
        persist: ``persist(partition, records)`` appends or raises :class:`PersistError`; on a
            replicated log the caller answers only once the write is replicated, and a commit's
            offsets are served only from :meth:`complete_offsets` on.
        config: settings (Kafka's defaults).
        clock: milliseconds, monotonic; drives every timer.
        wall_clock: seconds since the epoch, for commit timestamps only.
        new_member_id: ``prefix -> member id`` (Kafka: ``clientId-UUID`` or ``instanceId-UUID``).
        topics: the cluster's topics and partition counts now (the consumer protocol's assignors).
    """

    def __init__(
        self,
        partition_for: Callable[[str], int],
        persist: Callable[[int, list[Record]], None] | None = None,
        config: CoordinatorConfig | None = None,
        clock: Callable[[], float] = monotonic_ms,
        wall_clock: Callable[[], float] = time.time,
        new_member_id: Callable[[str], str] = default_member_id,
        topics: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.config = config or CoordinatorConfig()
        self.partition_for = partition_for
        self._persist = persist or (lambda partition, records: None)
        self.clock = clock
        self.wall_clock = wall_clock
        self.new_member_id = new_member_id
        self.partitions: dict[int, _Partition] = {}
        self.groups: dict[str, ClassicGroup] = {}
        self.offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        self.consumer = ConsumerGroupCoordinator(
            self.config,
            clock,
            topics,
            lambda group_id, records: self._persist(self.partition_for(group_id), list(records)),
        )

    # -- offsets partitions ----------------------------------------------------------------------

    def _context(self, partition: int) -> GroupContext:
        return GroupContext(
            config=self.config,
            clock=self.clock,
            new_member_id=self.new_member_id,
            persist=lambda records: self._persist(partition, records),
        )

    def begin_loading(self, partition: int, epoch: int) -> None:
        """This broker became leader of ``partition``: requests for its groups get LOAD_IN_PROGRESS."""
        if partition in self.partitions:
            self.unload(partition)
        self.partitions[partition] = _Partition(PartitionState.LOADING, epoch)

    def complete_loading(self, partition: int, epoch: int, records: Iterable[Record]) -> bool:
        """Replay the partition's log; False if leadership changed meanwhile (the load is dropped)."""
        current = self.partitions.get(partition)
        if current is None or current.epoch != epoch or current.state is not PartitionState.LOADING:
            return False
        ctx = self._context(partition)
        latest: dict[str, GroupMetadataRecord] = {}
        offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        consumer_groups: set[str] = set()
        for record in records:
            if type(record) in _CONSUMER_RECORD_TYPES:
                self.consumer.replay(record)  # type: ignore[arg-type]
                consumer_groups.add(record.group_id)
            elif isinstance(record, GroupMetadataRecord):
                if record.deleted:
                    latest.pop(record.group_id, None)
                    offsets.pop(record.group_id, None)
                else:
                    latest[record.group_id] = record
            elif isinstance(record, OffsetCommitRecord) and record.offset is None:
                offsets.get(record.group_id, {}).pop((record.topic, record.partition), None)
            elif isinstance(record, OffsetCommitRecord):
                offsets.setdefault(record.group_id, {})[(record.topic, record.partition)] = OffsetAndMetadata(
                    record.offset, record.leader_epoch, record.metadata, record.commit_timestamp_ms
                )
        for group_id, group_record in latest.items():
            self.groups[group_id] = ClassicGroup.from_record(group_record, ctx)
        for group_id, committed in offsets.items():
            self.offsets[group_id] = committed
            if group_id not in self.groups and group_id not in self.consumer.groups:
                # Offsets without group metadata: a group that only stores offsets here.
                self.groups[group_id] = ClassicGroup(group_id, ctx)
        for group_id in consumer_groups & set(self.groups):
            if self.groups[group_id].state is ClassicGroupState.EMPTY and group_id in self.consumer.groups:
                del self.groups[group_id]  # an empty classic group was converted (Kafka deletes it)
        self.consumer.loaded(sorted(consumer_groups))
        current.state = PartitionState.ACTIVE
        log.info(
            "offsets partition %d (epoch %d) loaded: %d groups",
            partition,
            epoch,
            sum(1 for g in self.groups if self.partition_for(g) == partition),
        )
        return True

    def unload(self, partition: int) -> None:
        """This broker no longer leads ``partition``: its groups go Dead here."""
        self.partitions.pop(partition, None)
        for group_id in [g for g in self.groups if self.partition_for(g) == partition]:
            self.groups.pop(group_id).unload()
            self.offsets.pop(group_id, None)
        self.consumer.unload([g for g in self.consumer.groups if self.partition_for(g) == partition])

    def partition_state(self, partition: int) -> PartitionState | None:
        entry = self.partitions.get(partition)
        return None if entry is None else entry.state

    def _validate_status(self, group_id: str | None, api: str) -> ErrorCode | None:
        """Kafka's ``validateGroupStatus``: group id, then loading, then ownership."""
        if group_id is None or (group_id == "" and api not in _EMPTY_GROUP_ID_OK):
            return ErrorCode.INVALID_GROUP_ID
        entry = self.partitions.get(self.partition_for(group_id))
        if entry is None:
            return ErrorCode.NOT_COORDINATOR
        if entry.state is PartitionState.LOADING:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return None

    def _get_or_create(self, group_id: str) -> ClassicGroup:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = ClassicGroup(
                group_id, self._context(self.partition_for(group_id))
            )
        return group

    # -- the group APIs --------------------------------------------------------------------------

    def join(self, req: JoinRequest, callback: JoinCallback) -> None:
        error = self._validate_status(req.group_id, "join_group")
        if error is not None:
            callback(JoinResult(error, member_id=req.member_id))
            return
        if (
            not self.config.min_session_timeout_ms
            <= req.session_timeout_ms
            <= self.config.max_session_timeout_ms
        ):
            callback(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=req.member_id))
            return
        consumer_group = self.consumer.groups.get(req.group_id)
        if consumer_group is not None:
            if consumer_group.members:
                # A classic member cannot join a consumer group here (Kafka 4.0 with
                # group.consumer.migration.policy=disabled; its default converts the protocols).
                callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=req.member_id))
                return
            self.consumer.unload([req.group_id])  # an empty consumer group becomes a classic one
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_id != "":
                callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=req.member_id))
                return
            group = self._get_or_create(req.group_id)
            try:
                group.ctx.persist([group._record()])  # a new group is recorded at once, empty
            except PersistError as exc:
                del self.groups[req.group_id]
                callback(JoinResult(exc.code))
                return
        group.join(req, callback)

    def sync(self, req: SyncRequest, callback: SyncCallback) -> None:
        error = self._validate_status(req.group_id, "sync_group")
        if error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            # The rebalance in flight was lost with the old coordinator: have the member rejoin
            # (older clients do not expect LOAD_IN_PROGRESS here).
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not None:
            callback(SyncResult(error))
            return
        group = self.groups.get(req.group_id)
        if group is None:
            callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        group.sync(req, callback)

    def heartbeat(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        error = self._validate_status(group_id, "heartbeat")
        if error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return ErrorCode.NONE  # still loading: answer blindly, the member keeps its generation
        if error is not None:
            return error
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return group.heartbeat(member_id, instance_id, generation_id)

    def leave(self, group_id: str, leaving: list[LeavingMember]) -> LeaveResult:
        error = self._validate_status(group_id, "leave_group")
        if error is not None:
            return LeaveResult(error)
        group = self.groups.get(group_id)
        if group is None:
            return LeaveResult(ErrorCode.NONE, tuple((who, ErrorCode.UNKNOWN_MEMBER_ID) for who in leaving))
        return group.leave(leaving)

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        commits: list[OffsetCommit],
    ) -> list[tuple[OffsetCommit, ErrorCode]]:
        """Validate, persist and cache at once (a persist hook that is durable by itself)."""
        staged = self.stage_offsets(group_id, member_id, instance_id, generation_id, commits)
        self.complete_offsets(staged)
        return staged.results

    def stage_offsets(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        commits: list[OffsetCommit],
    ) -> StagedCommit:
        """Validate and persist; the offsets are served only after :meth:`complete_offsets`, called
        once the write is replicated (Kafka's ``GroupMetadataManager.storeOffsets`` keeps them in
        ``pendingOffsetCommits`` until the append's callback, ``onOffsetCommitAppend``)."""
        error = self._validate_status(group_id, "offset_commit")
        if error is None and group_id in self.consumer.groups:
            validation = self.consumer.validate_offset_commit(group_id, member_id, generation_id)
            error = None if validation is ErrorCode.NONE else validation
        elif error is None:
            group = self.groups.get(group_id)
            if group is None:
                if generation_id < 0:
                    group = self._get_or_create(group_id)  # simple (non-group-managed) commits
                else:
                    error = ErrorCode.ILLEGAL_GENERATION
            if group is not None:
                validation = group.validate_offset_commit(member_id, instance_id, generation_id)
                error = None if validation is ErrorCode.NONE else validation
        if error is not None:
            return StagedCommit(group_id, -1, [], [(c, error) for c in commits])
        results: list[tuple[OffsetCommit, ErrorCode]] = []
        records: list[OffsetCommitRecord] = []
        now_ms = int(self.wall_clock() * 1000)
        for c in commits:
            metadata = c.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                results.append((c, ErrorCode.OFFSET_METADATA_TOO_LARGE))
                continue
            records.append(
                OffsetCommitRecord(group_id, c.topic, c.partition, c.offset, c.leader_epoch, metadata, now_ms)
            )
            results.append((c, ErrorCode.NONE))
        partition = self.partition_for(group_id)
        if records:
            try:
                self._persist(partition, list(records))
            except PersistError as exc:
                failed = [(c, exc.code if e is ErrorCode.NONE else e) for c, e in results]
                return StagedCommit(group_id, -1, [], failed)
        return StagedCommit(group_id, self.partitions[partition].epoch, records, results)

    def complete_offsets(self, staged: StagedCommit) -> None:
        """Serve a staged commit's offsets, unless the partition was unloaded or changed epoch meanwhile."""
        entry = self.partitions.get(self.partition_for(staged.group_id))
        if not staged.records or entry is None or entry.epoch != staged.epoch:
            return
        committed = self.offsets.setdefault(staged.group_id, {})
        for r in staged.records:
            assert r.offset is not None
            committed[(r.topic, r.partition)] = OffsetAndMetadata(
                r.offset, r.leader_epoch, r.metadata, r.commit_timestamp_ms
            )

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> tuple[ErrorCode, dict[tuple[str, int], OffsetAndMetadata]]:
        """Committed offsets regardless of the group's state; ``partitions=None`` means all of them."""
        error = self._validate_status(group_id, "offset_fetch")
        if error is not None:
            return error, {}
        committed = self.offsets.get(group_id, {})
        if partitions is None:
            return ErrorCode.NONE, dict(committed)
        return ErrorCode.NONE, {tp: committed.get(tp, OffsetAndMetadata(-1)) for tp in partitions}

    def consumer_heartbeat(self, req: ConsumerHeartbeat) -> ConsumerHeartbeatResult:
        """ConsumerGroupHeartbeat: validated as the other APIs, refused for a non-empty classic group
        (Kafka's ``getOrMaybeCreateConsumerGroup`` without migration: ``GROUP_ID_NOT_FOUND``)."""
        error = self._validate_status(req.group_id, "consumer_group_heartbeat")
        if error is not None:
            return ConsumerHeartbeatResult(error, member_epoch=-1)
        classic = self.groups.get(req.group_id)
        if classic is not None:
            if classic.state is not ClassicGroupState.EMPTY or req.member_epoch != 0:
                return ConsumerHeartbeatResult(
                    ErrorCode.GROUP_ID_NOT_FOUND,
                    f"Group {req.group_id} is not a consumer group",
                    member_epoch=-1,
                )
            del self.groups[req.group_id]  # maybeDeleteEmptyClassicGroup: the offsets stay
        return self.consumer.heartbeat(req)

    def consumer_describe(self, group_id: str) -> ConsumerGroupDescription:
        error = self._validate_status(group_id, "consumer_group_describe")
        if error is not None:
            return ConsumerGroupDescription(group_id, error)
        if group_id in self.groups:
            return ConsumerGroupDescription(
                group_id, ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group."
            )
        return self.consumer.describe(group_id)

    def describe(self, group_id: str) -> GroupDescription:
        error = self._validate_status(group_id, "describe_groups")
        if error is not None:
            return GroupDescription(group_id, error, "", "", "")
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, ErrorCode.NONE, ClassicGroupState.DEAD.value, "", "")
        return group.describe()

    def list_groups(self, states: Iterable[str] = ()) -> tuple[ErrorCode, list[tuple[str, str, str]]]:
        """(error, [(group id, protocol type, state)]) for every group on an active partition."""
        wanted = {s.lower() for s in states}
        loading = any(p.state is PartitionState.LOADING for p in self.partitions.values())
        listed = [
            (g.group_id, g.protocol_type or "", g.state.value)
            for g in self.groups.values()
            if g.state is not ClassicGroupState.DEAD and (not wanted or g.state.value.lower() in wanted)
        ] + [
            (g.group_id, "consumer", g.state.value)
            for g in self.consumer.groups.values()
            if not wanted or g.state.value.lower() in wanted
        ]
        return (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading else ErrorCode.NONE), listed

    # -- timers ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [d for g in self.groups.values() if (d := g.next_deadline()) is not None]
        consumer = self.consumer.next_deadline()
        return min(deadlines + ([] if consumer is None else [consumer]), default=None)

    def poll(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        for group in list(self.groups.values()):
            group.poll(now)
        self.consumer.poll(now)

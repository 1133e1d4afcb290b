"""The coordinator-mode group member: Kafka's classic consumer group protocol, client side.

A :class:`CoordinatorMember` is an asyncio client on its own event loop in a background thread, so
the synchronous :class:`~group_api.GroupMember` interface (``start``/``leave``/``close``/
``assignment``) stays prompt. It speaks the Kafka wire protocol with kafka-python's message classes
and Kafka's consumer protocol embedding, so it can share a group with real Kafka consumers.

The protocol, step by step (the phases of kafka-python's ``BaseCoordinator`` and the Java
client's ``AbstractCoordinator``: ``ensureCoordinatorReady``, ``joinGroupIfNeeded``, the heartbeat
thread, ``maybeLeaveGroup``):

1. **Bootstrap and discovery.** Metadata from a bootstrap broker names the brokers; FindCoordinator
   (key type 0) names the broker leading ``__consumer_offsets`` partition
   ``abs(hash(group)) % 50``: the group's coordinator. ``COORDINATOR_NOT_AVAILABLE`` or a dead
   broker: back off and ask again (100 ms doubling to 1 s, Kafka's ``retry.backoff.ms`` /
   ``retry.backoff.max.ms``).
2. **Join and sync** (one round is :class:`~coordinator_mode.client.rebalance.GroupRebalance`). Before
   joining, a member that still holds its generation commits its offsets and waits for the answer
   when auto-commit is on (the Java consumer's ``ConsumerCoordinator.onJoinPrepare``, bounded by the
   rebalance timeout as its ``joinPrepareTimer``; a failed commit is logged and the join goes on),
   then revokes everything it owns (the eager protocol; variant ``cooperative`` keeps it through
   the join, revokes only what the SyncGroup answer takes away and then rejoins, KIP-429's
   COOPERATIVE protocol, :mod:`.rebalance_protocol`). ``MEMBER_ID_REQUIRED`` on the first join:
   join again with the id the coordinator gave. The leader runs ``group_api.assignors.assign`` on
   its cached metadata and sends every member's assignment; followers send an empty SyncGroup. The
   SyncGroup answer is the member's complete new assignment.
3. **Heartbeats** on their own timer (``heartbeat_interval_ms``) while the generation is stable,
   and while the member awaits its SyncGroup answer: the Java client enables its heartbeat thread
   on entering ``COMPLETING_REBALANCE`` (``AbstractCoordinator.JoinGroupResponseHandler``) and, in
   that state, ignores ``REBALANCE_IN_PROGRESS`` (``HeartbeatResponseHandler``); the SyncGroup answer
   steers the member then. The answer in a stable generation steers the member:

   - ``REBALANCE_IN_PROGRESS``: commit (the group still accepts our generation), revoke, rejoin
     with the same member id;
   - ``ILLEGAL_GENERATION``: the group moved on without us; revoke, rejoin with the same id;
   - ``UNKNOWN_MEMBER_ID``: our session expired (e.g. we were paused): emit ``session_lost``,
     forget the member id, join as a new member;
   - ``NOT_COORDINATOR`` / ``COORDINATOR_NOT_AVAILABLE`` / connection loss: rediscover the
     coordinator and carry on in the same generation if the new coordinator still has it;
   - ``COORDINATOR_LOAD_IN_PROGRESS``: the new coordinator is loading the group; retry after the
     backoff.

   Independently, if no request of ours was answered within the session timeout (measured from
   its send time, see :mod:`~coordinator_mode.client.heartbeat`), the member assumes its session is gone,
   emits ``session_lost`` and stops owning anything before it does anything else.
4. **Leave.** ``leave()`` stops the routines, commits when auto-commit is on (the Java client's
   ``ConsumerCoordinator.close`` → ``maybeAutoCommitOffsetsSync``), revokes, sends LeaveGroup
   (dynamic members only: static members, with ``group_instance_id``, never send it, as KIP-345
   specifies) and emits ``left``, within :data:`~group_api.LEAVE_BOUND_S` plus one
   ``request.timeout.ms``, which the commit and the LeaveGroup share as Java's ``close`` timer
   covers both: a routine
   that does not stop within a second of its cancellation is left behind (and logged), and a
   LeaveGroup that cannot be sent or is not answered in time is given up, as the Java client's
   ``close()`` gives up after its timer; the coordinator then expires the session.

Event ``member`` fields carry our client id (``GroupMember.member_id``, also sent as Kafka's
``client.id``) so one process's events stay attributable; the coordinator's id for us goes into the
``kafka_member_id`` extra. The coordinator builds member ids as ``client.id-UUID``, so ``leader``
extras name the leader by its client id (see :func:`client_id_of`) and ``leader_kafka_member_id``
keeps the raw id; ``assignment_computed`` is keyed by the coordinator's ids, which are unique even
when real clients share a client id.

This module is longer than the others (about 870 lines) on purpose: the coordination, offsets and
heartbeat routines of one member share its generation, ownership and coordinator and hand over to
one another through the error handling at the end, so they stay one class, as kafka-python keeps
them in ``BaseCoordinator`` / ``ConsumerCoordinator``. Its settings and backoff are in
:mod:`.settings`, one join + sync round in :mod:`.rebalance`, the wire in :mod:`.connection`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import kafka.errors as Errors
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)

from coordinator_mode.waiting import sleep_unless
from group_api import (
    LEAVE_BOUND_S,
    Assignment,
    ConfigError,
    EventKind,
    EventSink,
    GroupMember,
    MemberConfig,
    MemberState,
    TopicPartition,
)
from group_api.consumption import ConsumeSettings

from .connection import (
    BrokerAddress,
    KafkaClient,
    KafkaConnection,
    RequestStats,
)
from .consumer import RecordsConsumer
from .heartbeat import Heartbeat
from .rebalance import (
    JOIN_TIMEOUT_SLACK_S,
    NO_GENERATION,
    Generation,
    GroupRebalance,
    JoinOutcome,
    SyncOutcome,
)
from .rebalance_protocol import RebalanceProtocol, assignor_for, protocol_of, reconcile
from .settings import Backoff, CoordinatorSettings, client_id_of

log = logging.getLogger(__name__)

#: Variants another program runs: ``java`` is Kafka's own consumer (kafka-clients, java/member's
#: ConsumerMember) in the same groups on the same brokers; ``rebalance-lab member`` runs it on the JVM.
EXTERNAL_VARIANTS = {"java": "java"}
#: Variants of this mode; the first is the default. ``classic`` follows the EAGER rebalance protocol,
#: ``cooperative`` the COOPERATIVE one of KIP-429 (:mod:`.rebalance_protocol`).
VARIANTS = ("classic", "cooperative", *EXTERNAL_VARIANTS)

#: Errors after which retrying cannot help (AbstractCoordinator's fatal JoinGroup errors, plus a
#: broker that does not speak a version we need).
FATAL_ERRORS: tuple[type[Exception], ...] = (
    Errors.FencedInstanceIdError,
    Errors.InconsistentGroupProtocolError,
    Errors.InvalidSessionTimeoutError,
    Errors.InvalidGroupIdError,
    Errors.GroupAuthorizationFailedError,
    Errors.GroupMaxSizeReachedError,
    Errors.UnsupportedVersionError,
)
#: Errors that mean "this broker is not (or no longer) the coordinator, or is unreachable".
COORDINATOR_LOST_ERRORS: tuple[type[Exception], ...] = (
    Errors.NotCoordinatorError,
    Errors.CoordinatorNotAvailableError,
    Errors.KafkaConnectionError,
    Errors.RequestTimedOutError,
)


#: A routine gets this long to end after its cancellation before a leave goes on without it.
ROUTINE_STOP_GRACE_S = LEAVE_BOUND_S / 2


class CoordinatorMember(GroupMember):
    """One consumer in a Kafka-style group whose leader a broker-side coordinator elects."""

    mode = "coordinator"

    def __init__(
        self,
        config: MemberConfig,
        sink: EventSink,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, sink, clock=clock)
        self.settings = CoordinatorSettings.from_config(config)
        self._protocol = protocol_of(config.variant)
        self._monotonic = monotonic
        # Validates interval < session timeout up front, so a bad config fails in the caller.
        self._heartbeat = Heartbeat(
            interval_ms=self.settings.heartbeat_interval_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            retry_backoff_ms=self.settings.retry_backoff_ms,
            clock=monotonic,
        )
        self._stats = RequestStats()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        # Everything below is touched only on the event loop's thread.
        self._client: KafkaClient | None = None
        self._coordinator: BrokerAddress | None = None
        self._generation: Generation = NO_GENERATION
        self._kafka_member_id = ""  # the coordinator's id for us; survives rebalances
        self._rejoin_needed = True
        self._owned: tuple[TopicPartition, ...] | None = None
        self._owned_generation: Generation | None = None  # the generation that gave us _owned
        self._awaiting_sync = False  # between our JoinGroup answer and our SyncGroup answer
        self._last_owned: tuple[TopicPartition, ...] | None = None  # sticky's "previous assignment"
        self._last_generation = -1
        self._positions: dict[TopicPartition, int] = {}  # our consumed position per owned partition
        self._consume = ConsumeSettings.from_options(config.options)
        # Bumped whenever fetched records may no longer be processed (a revocation, the commit
        # before giving partitions up), so a fetch or processing in flight is dropped (.consumer).
        self._consume_token = 0
        self._fetch_needed = False  # a new assignment: read its committed offsets first
        self._tasks: list[asyncio.Task[None]] = []
        self._leaving = False  # the routines' loops end once a leave started
        self._unreachable_since: float | None = None  # when discovery began failing to connect
        self._unreachable_warned = False

    # -- the interface (any thread) ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"member-{self.member_id}", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    @property
    def leave_bound_s(self) -> float:
        """How long :meth:`leave` may take: the routines' grace, LeaveGroup's request timeout."""
        return LEAVE_BOUND_S + self.settings.request_timeout_ms / 1000

    def leave(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self.state in (MemberState.LEFT, MemberState.FAILED):
            return
        future = asyncio.run_coroutine_threadsafe(self._leave(), loop)
        try:
            future.result(self.leave_bound_s)
        except TimeoutError:  # _leave bounds itself; this is the last line of defence
            log.error("%s: leave did not finish within %.1f s", self.member_id, self.leave_bound_s)
            future.cancel()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed in between
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests and bytes this member sent and received, per Kafka API."""
        return self._stats.snapshot()

    @property
    def kafka_member_id(self) -> str:
        """The coordinator's id for this member ("" until the first JoinGroup answer)."""
        return self._kafka_member_id

    @property
    def coordinator(self) -> BrokerAddress | None:
        return self._coordinator

    # -- the event loop ------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        except Exception:
            log.exception("%s: event loop failed", self.member_id)
            self.state = MemberState.FAILED
        finally:
            self._ready.set()
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop = asyncio.Event()
        self._wakeup = asyncio.Event()  # the coordination routine has something to do
        self._hb_wakeup = asyncio.Event()  # the heartbeat routine should look at the state again
        self._offsets_wakeup = asyncio.Event()  # the offsets routine should look at the state again
        self._client = KafkaClient(
            self.settings.bootstrap,
            client_id=self.member_id,
            stats=self._stats,
            request_timeout=self.settings.request_timeout_ms / 1000,
        )
        self._loop = loop
        self._consume_wakeup = asyncio.Event()  # the records routine should look at the state again
        self._tasks = [
            loop.create_task(self._coordination_routine(), name="coordination"),
            loop.create_task(self._heartbeat_routine(), name="heartbeat"),
            loop.create_task(self._offsets_routine(), name="offsets"),
        ]
        if self._consume.enabled:
            consumer = RecordsConsumer(self, self._client, self._consume)
            self._tasks.append(loop.create_task(consumer.run(), name="records"))
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._cancel_routines()
            self._client.close()

    async def _cancel_routines(self) -> None:
        """Cancel the routines and wait for them, at most :data:`ROUTINE_STOP_GRACE_S`: a routine
        that swallowed its cancellation must not hold up a leave (their loops also end on
        ``_leaving``)."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=ROUTINE_STOP_GRACE_S)
        if pending:
            log.error(
                "%s: routines %s still running %.1f s after their cancellation; going on without them",
                self.member_id,
                sorted(t.get_name() for t in pending),
                ROUTINE_STOP_GRACE_S,
            )

    def _wake(self) -> None:
        self._wakeup.set()
        self._hb_wakeup.set()
        self._offsets_wakeup.set()
        self._consume_wakeup.set()

    # -- coordination: discovery and rebalances ------------------------------------------------

    async def _coordination_routine(self) -> None:
        backoff = Backoff(self.settings.retry_backoff_ms, self.settings.retry_backoff_max_ms)
        while self.state is not MemberState.FAILED and not self._leaving:
            self._wakeup.clear()
            try:
                if self._coordinator is None:
                    await self._discover_coordinator()
                elif self._rejoin_needed:
                    await self._rebalance()
                else:
                    await self._wakeup.wait()
                    continue
                backoff.reset()
            except FATAL_ERRORS as exc:
                self._fail(exc)
                return
            except Errors.KafkaError as exc:
                if self._coordinator is None and isinstance(exc, Errors.KafkaConnectionError):
                    self._note_unreachable(exc)
                    if self.state is MemberState.FAILED:
                        return
                if self._handle_error(exc, "rebalance"):
                    # A plain sleep: the error itself may have set the wakeup event.
                    await asyncio.sleep(backoff.next())
            except Exception:
                # e.g. the assignor rejected its input: log it, back off, and try the round again
                log.exception("%s: rebalance round failed", self.member_id)
                self._rejoin_needed = True
                await asyncio.sleep(backoff.next())

    async def _discover_coordinator(self) -> None:
        assert self._client is not None
        if not self._client.brokers:
            # Bootstrap: learn the brokers and whether our topics exist.
            response = await self._client.metadata(list(self.config.topics))
            missing = [t.name for t in response.topics if t.error_code != 0]
            if missing:
                log.warning("%s: topics %s do not exist (yet)", self.member_id, missing)
        address = await self._client.find_coordinator(self.config.group)
        await self._client.connection(address)
        self._coordinator = address
        self._unreachable_since = None
        self._heartbeat.fail()  # a heartbeat to the new coordinator is due after the backoff
        log.info("%s: coordinator of %s is %s", self.member_id, self.config.group, address)
        self._hb_wakeup.set()
        if self._owned:
            # A failover: read back what the new coordinator holds (no acknowledged commit may be lost).
            self._fetch_needed = True
        self._offsets_wakeup.set()

    async def _rebalance(self) -> None:
        """One join + sync round; on success the member owns the partitions SyncGroup gave it."""
        assert self._client is not None and self._coordinator is not None
        cooperative = self._protocol is RebalanceProtocol.COOPERATIVE
        if cooperative and self._owned and self._heartbeat.session_expired():
            # Kept through a failed round for longer than a session: the coordinator may have
            # expired us and handed them on (Java finds out from the JoinGroup answer; we must not
            # own them meanwhile).
            self._revoke("no request answered within the session timeout")
        if self._owned and self.settings.enable_auto_commit:
            await self._commit_before_rejoin()
        if not cooperative:
            self._revoke("rebalance")  # eager protocol: own nothing while the group rebalances
        self.state = MemberState.REBALANCING
        coordinator = self._coordinator
        round_ = self._new_round(await self._client.connection(coordinator))
        join_started_ns = time.monotonic_ns()
        try:
            joined = await round_.join()
        finally:
            # Keep the id MEMBER_ID_REQUIRED gave us even if the second join failed.
            self._kafka_member_id = round_.member_id
        generation = joined.generation
        self._generation = generation
        self._kafka_member_id = generation.member_id
        self._emit_joined(generation, coordinator, join_started_ns)
        # COMPLETING_REBALANCE: heartbeats go on until the SyncGroup answer, from now (Java's
        # heartbeat thread ``enable()`` resets its timers).
        self._heartbeat.start_session(self._monotonic())
        self._awaiting_sync = True
        self._hb_wakeup.set()
        try:
            result = await self._assign_and_sync(round_, joined)
        finally:
            self._awaiting_sync = False
        if self._monotonic() > result.sent_at + self.settings.session_timeout_ms / 1000:
            # The answer sat unread for longer than a session (we were paused): the coordinator may
            # have moved on, so do not act on it. Rejoin with our id; if we are still a member the
            # coordinator hands back the same generation.
            self._generation = NO_GENERATION
            self._rejoin_needed = True
            self._revoke("SyncGroup answer older than the session timeout")  # what COOPERATIVE kept
            log.warning("%s: SyncGroup answer is older than the session timeout; rejoining", self.member_id)
            return
        self._heartbeat.start_session(result.sent_at)
        self._rejoin_needed = False
        self._own(generation, result.partitions)

    async def _assign_and_sync(self, round_: GroupRebalance, joined: JoinOutcome) -> SyncOutcome:
        generation = joined.generation
        assignment = None
        if generation.is_leader and not joined.skip_assignment:
            assignment = await round_.compute_assignment(joined)
            self.emit(
                EventKind.ASSIGNMENT_COMPUTED,
                generation=generation.generation_id,
                assignment={m: [[t, p] for t, p in parts] for m, parts in sorted(assignment.items())},
                kafka_member_id=generation.member_id,
                protocol=generation.protocol,
            )
        return await round_.sync(joined, assignment)

    async def _commit_before_rejoin(self) -> None:
        """The Java consumer's ``ConsumerCoordinator.onJoinPrepare`` with auto-commit on: commit the
        owned partitions and wait for the answer, at most the rebalance timeout (its
        ``joinPrepareTimer``), before JoinGroup. One attempt where Java retries retriable errors
        within that timer; a failure is logged and the join goes on, as in Java."""
        await self._commit_while_owning(self.settings.rebalance_timeout_ms, "rejoining")

    async def _commit_while_owning(self, timeout_ms: int, before: str) -> None:
        """Commit, at most ``timeout_ms`` and never past the point where the coordinator may have
        expired our session: we still own the partitions meanwhile, and must not once another
        member may have been given them."""
        timeout_s = min(timeout_ms / 1000, self._heartbeat.time_to_session_expiry())
        self._consume_token += 1  # nothing processed after the commit's snapshot counts
        try:
            async with asyncio.timeout(timeout_s):
                await self._commit_offsets()
        except (Errors.KafkaError, TimeoutError) as exc:
            log.info("%s: commit before %s failed (%r); going on", self.member_id, before, exc)

    def _new_round(self, conn: KafkaConnection) -> GroupRebalance:
        assert self._client is not None
        assignor = assignor_for(self._protocol, self.config.assignor)
        if self._protocol is RebalanceProtocol.COOPERATIVE:
            previous = self._owned or ()  # owned_partitions: what we keep through this round
        else:
            previous = self._last_owned if assignor == "sticky" else None
        return GroupRebalance(
            conn,
            self._client,
            group=self.config.group,
            topics=self.config.topics,
            assignor=assignor,
            member_id=self._kafka_member_id,
            group_instance_id=self.config.group_instance_id,
            session_timeout_ms=self.settings.session_timeout_ms,
            rebalance_timeout_ms=self.settings.rebalance_timeout_ms,
            previous=previous,
            previous_generation=self._last_generation,
            clock=self._monotonic,
        )

    def _emit_joined(self, generation: Generation, coordinator: BrokerAddress, join_started_ns: int) -> None:
        gen_id = generation.generation_id
        self.emit(
            EventKind.JOINED,
            generation=gen_id,
            coordinator=coordinator.node_id,
            kafka_member_id=generation.member_id,
            protocol=generation.protocol,
            join_started_ns=join_started_ns,  # the JoinGroup answer waits out the rebalance
        )
        self.emit(
            EventKind.LEADER_ELECTED,
            generation=gen_id,
            leader=self._leader_name(generation),
            is_leader=generation.is_leader,
            kafka_member_id=generation.member_id,
            leader_kafka_member_id=generation.leader_id,
        )

    def _leader_name(self, generation: Generation) -> str:
        """The leader as events name members: our own id if we lead, else the client id inside the
        coordinator's id for the leader (for a static leader that is its ``group.instance.id``)."""
        return self.member_id if generation.is_leader else client_id_of(generation.leader_id)

    def _own(self, generation: Generation, partitions: tuple[TopicPartition, ...]) -> None:
        change = reconcile(self._protocol, self._owned, partitions)
        if change.revoked:
            # COOPERATIVE (ConsumerCoordinator.onJoinComplete): revoke only what the leader took
            # away, then rejoin, so the next round hands it to its new owner.
            self.emit(
                EventKind.REVOKED,
                generation=generation.generation_id,
                partitions=change.revoked,
                reason="cooperative",
                kafka_member_id=generation.member_id,
            )
            self._rejoin_needed = True
            self._wakeup.set()
        self._owned = partitions
        self._owned_generation = generation
        self._last_owned = partitions
        self._last_generation = generation.generation_id
        with self._lock:
            self._assignment = Assignment.of(
                generation.generation_id, partitions, generation.leader_id, generation.member_id
            )
        self.state = MemberState.STABLE
        self.emit(
            EventKind.ASSIGNED,
            generation=generation.generation_id,
            partitions=partitions,
            leader=self._leader_name(generation),
            kafka_member_id=generation.member_id,
            leader_kafka_member_id=generation.leader_id,
        )
        self._hb_wakeup.set()
        # Read committed offsets for what is new; kept partitions keep their positions (COOPERATIVE).
        self._fetch_needed = self._fetch_needed or bool(change.added)
        self._offsets_wakeup.set()
        self._consume_token += 1
        self._consume_wakeup.set()

    # -- offsets: what auto-commit does, on a position that advances by itself -------------------

    async def _offsets_routine(self) -> None:
        """After each assignment, OffsetFetch the owned partitions and resume from what is stored;
        then OffsetCommit every ``auto.commit.interval.ms``: the position the records routine
        (:mod:`.consumer`, ``options.consume``) reached, or without records one more per interval;
        every acknowledged commit must read back after a coordinator failover (the checker
        compares the two event streams)."""
        if not self.settings.enable_auto_commit:
            return  # offsets: none; a consumer that keeps its positions elsewhere
        backoff = Backoff(self.settings.retry_backoff_ms, self.settings.retry_backoff_max_ms)
        interval = self.settings.auto_commit_interval_ms / 1000
        while not self._leaving:
            self._offsets_wakeup.clear()
            if self.state is not MemberState.STABLE or not self._owned or self._coordinator is None:
                await self._offsets_wakeup.wait()
                continue
            try:
                if self._fetch_needed:
                    await self._fetch_offsets()
                else:
                    await sleep_unless(self._offsets_wakeup, interval)
                    if self.state is MemberState.STABLE and self._owned and not self._fetch_needed:
                        await self._commit_offsets()
                backoff.reset()
            except Errors.KafkaError as exc:
                # COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, a rebalance: try again later; the
                # coordination routine handles what concerns the group.
                log.info("%s: offsets: %s", self.member_id, exc)
                await asyncio.sleep(backoff.next())

    async def _fetch_offsets(self) -> None:
        coordinator = self._coordinator
        if self._client is None or coordinator is None:
            return  # lost meanwhile: rediscovery wakes us again
        owned = self._owned or ()
        by_topic: dict[str, list[int]] = {}
        for topic, partition in owned:
            by_topic.setdefault(topic, []).append(partition)
        request = OffsetFetchRequest(
            version=7,
            group_id=self.config.group,
            topics=[
                OffsetFetchRequest.OffsetFetchRequestTopic(name=t, partition_indexes=ps)
                for t, ps in by_topic.items()
            ],
            require_stable=False,
        )
        sent_ns = time.monotonic_ns()
        conn = await self._client.connection(coordinator)
        response = await conn.send(request)
        if response.error_code:
            raise Errors.for_code(response.error_code)()
        if owned != self._owned:
            return  # reassigned meanwhile: the next round fetches again
        offsets = [
            (t.name, p.partition_index, p.committed_offset) for t in response.topics for p in t.partitions
        ]
        if self._consume.enabled:  # no committed offset: auto.offset.reset decides (.consumer)
            self._positions = {(t, p): o for t, p, o in offsets if o >= 0}
        else:
            self._positions = {(t, p): max(o, 0) for t, p, o in offsets}
        self._fetch_needed = False
        self._consume_wakeup.set()
        self.emit(
            EventKind.OFFSETS_FETCHED,
            generation=self._generation.generation_id,
            offsets=[list(o) for o in offsets],
            request_mono_ns=sent_ns,
        )

    async def _commit_offsets(self) -> None:
        """OffsetCommit of every owned partition, in the generation that assigned them (a rejoin
        has already reset ``_generation`` when the commit before it goes out)."""
        coordinator = self._coordinator
        generation = self._owned_generation
        if self._client is None or coordinator is None or not self._owned or generation is None:
            return  # lost meanwhile (rediscovery wakes us again), or nothing to commit
        if self._consume.enabled:  # the position the processed records reached
            if self._fetch_needed:
                return  # the positions are still the previous assignment's: nothing processed yet
            positions = {tp: self._positions[tp] for tp in self._owned or () if tp in self._positions}
        else:  # no records flow: a synthetic position advancing by one per commit
            positions = {tp: self._positions.get(tp, 0) + 1 for tp in self._owned or ()}
        if not positions:
            return
        by_topic: dict[
            str, list[OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition]
        ] = {}
        for (topic, partition), offset in sorted(positions.items()):
            by_topic.setdefault(topic, []).append(
                OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                    partition_index=partition,
                    committed_offset=offset,
                    committed_leader_epoch=-1,
                    committed_metadata="",
                )
            )
        request = OffsetCommitRequest(
            version=7,
            group_id=self.config.group,
            generation_id_or_member_epoch=generation.generation_id,
            member_id=generation.member_id,
            group_instance_id=self.config.group_instance_id,
            topics=[
                OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
                for t, ps in by_topic.items()
            ],
        )
        conn = await self._client.connection(coordinator)
        response = await conn.send(request)
        errors = {p.error_code for t in response.topics for p in t.partitions} - {0}
        if errors:
            raise Errors.for_code(errors.pop())()
        if not self._consume.enabled:
            self._positions.update(positions)
        self.emit(
            EventKind.OFFSETS_COMMITTED,
            generation=generation.generation_id,
            offsets=[[t, p, o] for (t, p), o in sorted(positions.items())],
        )

    # -- heartbeats ------------------------------------------------------------------------------

    async def _heartbeat_routine(self) -> None:
        """Heartbeats in a stable generation and while awaiting SyncGroup. Our own session watch
        runs only when stable: awaiting SyncGroup, its answer (or its timeout) says whether the
        membership survived, and :meth:`_rebalance` refuses an answer older than a session."""
        hb = self._heartbeat
        while not self._leaving:
            self._hb_wakeup.clear()
            stable = self.state is MemberState.STABLE
            if not stable and not self._awaiting_sync:
                await self._hb_wakeup.wait()
            elif stable and hb.session_expired():
                self._lose_session("no request answered within the session timeout", forget_member_id=False)
            elif self._coordinator is None:
                await sleep_unless(self._hb_wakeup, hb.time_to_session_expiry() if stable else hb.interval)
            elif not hb.should_heartbeat():
                due = hb.time_to_next_heartbeat()
                await sleep_unless(self._hb_wakeup, min(due, hb.time_to_session_expiry()) if stable else due)
            else:
                await self._send_heartbeat()

    async def _send_heartbeat(self) -> None:
        assert self._client is not None and self._coordinator is not None
        generation, coordinator = self._generation, self._coordinator
        request = HeartbeatRequest(
            group_id=self.config.group,
            generation_id=generation.generation_id,
            member_id=generation.member_id,
            group_instance_id=self.config.group_instance_id,
        )
        sent_at = self._heartbeat.sent()
        syncing = self._awaiting_sync
        # The broker answers one request per connection at a time (as Kafka's does), so a heartbeat
        # sent while our SyncGroup is parked is answered after it: give it the SyncGroup's timeout,
        # lest its timeout close the connection under the SyncGroup.
        timeout = self.settings.rebalance_timeout_ms / 1000 + JOIN_TIMEOUT_SLACK_S if syncing else None
        error: Errors.KafkaError | None
        try:
            conn = await self._client.connection(coordinator)
            response = await conn.send(request, timeout=timeout)
            error = None if response.error_code == 0 else Errors.for_code(response.error_code)()
        except Errors.KafkaError as exc:
            error = exc
        if self._generation != generation or not (self.state is MemberState.STABLE or self._awaiting_sync):
            return  # a rebalance or a leave started meanwhile; this answer is about the past
        if syncing and error is not None:
            # Java's HeartbeatResponseHandler outside STABLE: REBALANCE_IN_PROGRESS is ignored; any
            # other error the SyncGroup answer reports too, and that answer steers the member.
            if isinstance(error, Errors.RebalanceInProgressError):
                self._heartbeat.acknowledged(sent_at)
            else:
                log.info("%s: heartbeat awaiting SyncGroup answered %r", self.member_id, error)
                self._heartbeat.fail()
            return
        if error is None:
            self._heartbeat.acknowledged(sent_at)
            return
        if isinstance(error, Errors.RebalanceInProgressError):
            self._heartbeat.acknowledged(sent_at)  # the coordinator did reset our session timer
        if isinstance(error, FATAL_ERRORS):
            self._fail(error)
            return
        self._heartbeat.fail()
        self._handle_error(error, "heartbeat")

    # -- errors and state changes ----------------------------------------------------------------

    def _handle_error(self, error: Errors.KafkaError, during: str) -> bool:
        """Steer after a group error; returns whether the caller should back off before retrying."""
        if isinstance(error, Errors.UnknownMemberIdError):
            self._lose_session(f"{during}: coordinator does not know us", forget_member_id=True)
            return False
        if isinstance(error, Errors.RebalanceInProgressError | Errors.IllegalGenerationError):
            log.info("%s: %s answered %s; rejoining", self.member_id, during, type(error).__name__)
            # REBALANCE_IN_PROGRESS: our generation is still the group's, so the commit before the
            # join goes through; ILLEGAL_GENERATION: the group moved on, our partitions are lost.
            self._request_rejoin(
                type(error).__name__, keep_owned=isinstance(error, Errors.RebalanceInProgressError)
            )
            return False
        if isinstance(error, COORDINATOR_LOST_ERRORS):
            self._coordinator_dead(f"{during}: {error!r}")
            return True
        if isinstance(error, Errors.CoordinatorLoadInProgressError):
            log.info("%s: coordinator is loading the group; retrying", self.member_id)
            return True
        log.warning("%s: %s failed with %r; retrying", self.member_id, during, error)
        if during == "rebalance":
            self._rejoin_needed = True
        return True

    def _note_unreachable(self, error: Errors.KafkaError) -> None:
        """No broker answered discovery: say so once ``bootstrap_warn_ms`` have passed (the Java
        client logs each failed connection; a silent member looks hung), and give up after
        ``bootstrap_give_up_ms`` if set."""
        now = self._monotonic()
        if self._unreachable_since is None:
            self._unreachable_since, self._unreachable_warned = now, False
        waited_ms = (now - self._unreachable_since) * 1000
        give_up_ms = self.settings.bootstrap_give_up_ms
        if give_up_ms is not None and waited_ms >= give_up_ms:
            self._fail(
                Errors.KafkaConnectionError(
                    f"no broker of {self.settings.bootstrap} reachable for {waited_ms:.0f} ms"
                )
            )
        elif not self._unreachable_warned and waited_ms >= self.settings.bootstrap_warn_ms:
            self._unreachable_warned = True
            log.warning(
                "%s: cannot reach any broker of %s for %.0f s (%s); still retrying",
                self.member_id,
                self.settings.bootstrap,
                waited_ms / 1000,
                error,
            )

    def _request_rejoin(self, reason: str, *, keep_owned: bool = False) -> None:
        """Rejoin with our member id; ``keep_owned``: own our partitions until the commit before
        the JoinGroup (:meth:`_rebalance`), as Java revokes only after ``onJoinPrepare``'s commit
        (COOPERATIVE: through the JoinGroup too)."""
        eager = self._protocol is RebalanceProtocol.EAGER
        if not keep_owned or (eager and not self.settings.enable_auto_commit):
            self._revoke(reason)
        self._generation = Generation(-1, self._kafka_member_id, None, "")
        self._rejoin_needed = True
        self.state = MemberState.REBALANCING
        self._wake()

    def _coordinator_dead(self, reason: str) -> None:
        if self._coordinator is not None and self._client is not None:
            log.info("%s: coordinator %s lost (%s); rediscovering", self.member_id, self._coordinator, reason)
            self._client.drop(self._coordinator)
        self._coordinator = None
        self._wake()

    def _lose_session(self, reason: str, *, forget_member_id: bool) -> None:
        """Our membership is (or may be) gone: own nothing, say so, and join again."""
        had_membership = self._owned is not None or self._generation.generation_id >= 0
        generation = self._generation.generation_id
        self._owned = None
        self._owned_generation = None
        self._consume_token += 1
        with self._lock:
            self._assignment = None
        if had_membership:
            log.warning("%s: session lost: %s", self.member_id, reason)
            self.emit(
                EventKind.SESSION_LOST,
                generation=generation if generation >= 0 else None,
                reason=reason,
                kafka_member_id=self._kafka_member_id,
            )
        if forget_member_id:
            self._kafka_member_id = ""
        self._generation = Generation(-1, self._kafka_member_id, None, "")
        self._rejoin_needed = True
        self.state = MemberState.UNJOINED
        self._wake()

    def _revoke(self, reason: str) -> None:
        owned = self._owned
        if owned is None:
            return
        self._owned = None
        self._owned_generation = None
        self._consume_token += 1
        with self._lock:
            self._assignment = None
        if owned:
            self.emit(
                EventKind.REVOKED,
                generation=self._generation.generation_id,
                partitions=owned,
                reason=reason,
                kafka_member_id=self._kafka_member_id,
            )

    def _fail(self, error: BaseException) -> None:
        log.error("%s: giving up: %r", self.member_id, error)
        self._revoke("failed")
        self.state = MemberState.FAILED
        self._wake()

    async def _leave(self) -> None:
        if self.state in (MemberState.LEFT, MemberState.FAILED) or self._leaving:
            return
        self._leaving = True
        await self._cancel_routines()
        generation = self._generation.generation_id
        assert self._loop is not None
        deadline = self._loop.time() + self.settings.request_timeout_ms / 1000
        if self._owned and self.settings.enable_auto_commit:
            await self._commit_before_leave()
        self._revoke("leave")
        if self.config.group_instance_id is None and self._kafka_member_id:
            await self._send_leave_group(max(0.0, deadline - self._loop.time()))
        self._generation = NO_GENERATION
        self.state = MemberState.LEFT
        self.emit(
            EventKind.LEFT,
            generation=generation if generation >= 0 else None,
            kafka_member_id=self._kafka_member_id,
        )

    async def _commit_before_leave(self) -> None:
        """The Java consumer's ``ConsumerCoordinator.close`` → ``maybeAutoCommitOffsetsSync`` before
        ``AbstractCoordinator.close`` sends LeaveGroup: within one request timeout, errors logged."""
        await self._commit_while_owning(self.settings.request_timeout_ms, "leaving")

    async def _send_leave_group(self, timeout_s: float) -> None:
        """A best-effort LeaveGroup, as the Java client's: one attempt within what is left of the
        close's request timeout after the commit (finding the coordinator included), errors only
        logged."""
        assert self._client is not None
        member = self._kafka_member_id
        request = LeaveGroupRequest(
            group_id=self.config.group,
            member_id=member,
            members=[
                LeaveGroupRequest.MemberIdentity(member_id=member, group_instance_id=None, reason="leave")
            ],
        )
        try:
            async with asyncio.timeout(timeout_s):
                coordinator = self._coordinator or await self._client.find_coordinator(self.config.group)
                conn = await self._client.connection(coordinator)
                response = await conn.send(request)
        except (Errors.KafkaError, TimeoutError) as exc:
            log.warning(
                "%s: LeaveGroup not delivered, coordinator unreachable (%s); leaving anyway, the "
                "coordinator expires our session after %d ms",
                self.member_id,
                exc or f"no answer within {timeout_s:.1f} s",
                self.settings.session_timeout_ms,
            )
            return
        errors = [response.error_code, *(m.error_code for m in getattr(response, "members", None) or [])]
        if any(errors):
            log.warning(
                "%s: LeaveGroup answered %s", self.member_id, [Errors.for_code(e).__name__ for e in errors]
            )

    def __repr__(self) -> str:
        return f"<CoordinatorMember {self.member_id} {self.state.value} gen={self._generation.generation_id}>"


def create_member(config: MemberConfig, sink: EventSink) -> GroupMember:
    """The registry's factory (``group_api.registry.MODES['coordinator']``)."""
    if config.variant not in (None, *VARIANTS):
        raise ConfigError(f"variant: coordinator mode has {', '.join(VARIANTS)}, got {config.variant!r}")
    return CoordinatorMember(config, sink)


__all__ = ["VARIANTS", "CoordinatorMember", "CoordinatorSettings", "create_member"]

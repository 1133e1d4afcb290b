"""Our member in the consumer group protocol of KIP-848 (variant ``consumer``): the broker assigns.

The client side of Kafka 4.0's new consumer: ``AbstractMembershipManager`` / ``ConsumerMembershipManager``
(``org.apache.kafka.clients.consumer.internals``) and ``ConsumerHeartbeatRequestManager``. There is no
JoinGroup, SyncGroup or leader: one request, ConsumerGroupHeartbeat, carries everything.

1. **Join**: a heartbeat with member epoch 0 and the full subscription (topics, rebalance timeout,
   server assignor, no owned partitions). The answer names our member id and epoch and, in this or
   a later answer, our assignment.
2. **Reconcile** (``maybeReconcile``) each assignment the coordinator sends: revoke first what we
   own and are no longer assigned (committing its offsets first when auto-commit is on, as
   ``ConsumerMembershipManager.revokePartitions`` does via ``commitSync`` before
   ``onPartitionsRevoked``), then take what is new; then acknowledge at once with a heartbeat that
   reports what we own (``ACKNOWLEDGING``). The coordinator gives a partition to its new owner only
   after its previous owner has acknowledged it, so the group never has two owners of one partition.
3. **Heartbeat** every ``HeartbeatIntervalMs`` the coordinator answers (its
   ``group.consumer.heartbeat.interval.ms``); the session timeout is the broker's
   (``group.consumer.session.timeout.ms``). Each request carries only what changed since the last
   one (``HeartbeatState``: owned partitions when they changed; the full request after a join or an
   error).
4. **Fenced** (``FENCED_MEMBER_EPOCH``, ``UNKNOWN_MEMBER_ID``): release every partition without
   committing (``onPartitionsLost``), emit ``session_lost`` and join again with epoch 0.
5. **Leave**: commit when auto-commit is on, revoke, heartbeat with epoch -1 (a static member, with
   ``group_instance_id``, sends -2: it keeps its assignment on the coordinator until it is back
   within the session timeout).

It is a :class:`~.member.CoordinatorMember` for discovery, connections, the offsets routine
(OffsetCommit carries the member epoch where the classic protocol carries the generation) and the
leave's shape; only the membership routines differ. The events are the same: ``joined`` on the
join's answer, ``assigned`` (the complete owned set) on every new assignment or epoch, ``revoked``
for what it gives up; the event generation is the member epoch. No ``leader_elected``: there is no
leader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kafka.errors as Errors

from coordinator_mode.schemas import ConsumerGroupHeartbeatRequest
from coordinator_mode.waiting import sleep_unless
from group_api import Assignment, EventKind, MemberState, TopicPartition

from .member import FATAL_ERRORS, CoordinatorMember
from .rebalance import NO_GENERATION, Generation

log = logging.getLogger(__name__)

#: Errors after which the consumer protocol cannot go on (the Java client's fatal heartbeat errors):
#: a refused mixed group (GROUP_ID_NOT_FOUND), a bad request, an assignor the broker lacks, a static
#: instance id still in use.
CONSUMER_FATAL_ERRORS: tuple[type[Exception], ...] = (
    *FATAL_ERRORS,
    Errors.GroupIdNotFoundError,
    Errors.InvalidRequestError,
    Errors.UnsupportedAssignorError,
    Errors.UnreleasedInstanceIdError,
)
#: group_api assignor -> server assignor: ``range`` has its own; the sticky and round-robin ones'
#: properties (balanced, sticky) are ``uniform``'s, Kafka's default.
SERVER_ASSIGNOR = {"range": "range", "roundrobin": "uniform", "sticky": "uniform"}
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class ConsumerProtocolMember(CoordinatorMember):
    """A member of a KIP-848 consumer group on our brokers (or real Kafka 4.x)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = 0
        self._interval_s = self.settings.heartbeat_interval_ms / 1000  # until the coordinator says
        self._ack_needed = False  # reconciled: tell the coordinator now, not at the next interval
        self._last_sent = 0.0  # monotonic time of our last heartbeat
        self._sent_owned: tuple[TopicPartition, ...] | None = None  # what the last request reported
        self._topic_names: dict[Any, str] = {}
        self._topic_ids: dict[str, Any] = {}

    # -- requests ----------------------------------------------------------------------------------

    async def _topic_id_map(self) -> None:
        assert self._client is not None
        response = await self._client.metadata(list(self.config.topics))
        for t in response.topics:
            if t.error_code == 0 and getattr(t, "topic_id", None) is not None:
                self._topic_names[t.topic_id] = t.name
                self._topic_ids[t.name] = t.topic_id

    async def _send(self, epoch: int, *, full: bool) -> Any:
        """One ConsumerGroupHeartbeat; raises the answer's error (``HeartbeatState.buildRequestData``)."""
        assert self._client is not None and self._coordinator is not None
        owned = tuple(sorted(self._owned or ()))
        send_owned = full or owned != self._sent_owned
        by_topic: dict[str, list[int]] = {}
        for topic, partition in owned:
            by_topic.setdefault(topic, []).append(partition)
        if send_owned and any(t not in self._topic_ids for t in by_topic):
            await self._topic_id_map()
        cls = ConsumerGroupHeartbeatRequest
        request = cls(
            group_id=self.config.group,
            member_id=self._kafka_member_id,
            member_epoch=epoch,
            instance_id=self.config.group_instance_id,
            rack_id=None,
            rebalance_timeout_ms=self.settings.rebalance_timeout_ms if full else -1,
            subscribed_topic_names=sorted(self.config.topics) if full else None,
            subscribed_topic_regex=None,
            server_assignor=SERVER_ASSIGNOR.get(self.config.assignor, "uniform") if full else None,
            topic_partitions=(
                [
                    cls.TopicPartitions(topic_id=self._topic_ids[t], partitions=ps)
                    for t, ps in by_topic.items()
                ]
                if send_owned
                else None
            ),
            max_version=1,
        )
        sent_at = self._heartbeat.sent()
        self._last_sent = self._monotonic()
        conn = await self._client.connection(self._coordinator)
        response = await conn.send(request)
        if response.error_code:
            self._heartbeat.fail()
            raise Errors.for_code(response.error_code)(response.error_message or "")
        self._heartbeat.acknowledged(sent_at)
        if send_owned:
            self._sent_owned = owned
        if response.heartbeat_interval_ms > 0:
            self._interval_s = response.heartbeat_interval_ms / 1000
        return response

    # -- join ----------------------------------------------------------------------------------------

    async def _rebalance(self) -> None:
        """Join (epoch 0, a full request); called by the coordination routine when a join is due."""
        assert self._client is not None and self._coordinator is not None
        self._revoke("rejoin")  # a joining member owns nothing (TopicPartitions must be empty)
        self.state = MemberState.REBALANCING
        self._epoch = 0
        coordinator = self._coordinator
        join_started_ns = time.monotonic_ns()
        try:
            response = await self._send(0, full=True)
        except CONSUMER_FATAL_ERRORS as exc:
            self._fail(exc)
            return
        self._kafka_member_id = response.member_id or self._kafka_member_id
        self._epoch = response.member_epoch
        self._rejoin_needed = False
        self.emit(
            EventKind.JOINED,
            generation=self._epoch,
            coordinator=coordinator.node_id,
            kafka_member_id=self._kafka_member_id,
            protocol="consumer",
            join_started_ns=join_started_ns,
        )
        await self._apply(response)
        self.state = MemberState.STABLE
        self._hb_wakeup.set()

    # -- reconciliation ------------------------------------------------------------------------------

    async def _apply(self, response: Any) -> None:
        """``maybeReconcile``: revoke, then assign, then acknowledge; a new epoch alone is re-announced
        so that every member's events name the epoch it is at."""
        epoch = response.member_epoch
        if response.assignment is None:
            if epoch != self._epoch and self._owned is not None:
                self._epoch = epoch
                self._announce(self._owned)
            self._epoch = epoch
            return
        target: set[TopicPartition] = set()
        unknown = [
            tp.topic_id for tp in response.assignment.topic_partitions if tp.topic_id not in self._topic_names
        ]
        if unknown:
            await self._topic_id_map()
        for tp in response.assignment.topic_partitions:
            name = self._topic_names.get(tp.topic_id)
            if name is None:
                log.warning(
                    "%s: assigned partitions of unknown topic id %s; ignored", self.member_id, tp.topic_id
                )
                continue
            target.update((name, p) for p in tp.partitions)
        owned = set(self._owned or ())
        revoked = owned - target
        if revoked:
            if self.settings.enable_auto_commit:
                await self._commit_while_owning(self.settings.rebalance_timeout_ms, "revoking")
            self._owned = tuple(sorted(owned - revoked))
            with self._lock:
                self._assignment = None
            self.emit(
                EventKind.REVOKED,
                generation=self._epoch,
                partitions=tuple(sorted(revoked)),
                reason="reconciliation",
                kafka_member_id=self._kafka_member_id,
            )
        changed = self._owned is None or set(self._owned) != target or epoch != self._epoch
        self._epoch = epoch
        if changed:
            self._announce(tuple(sorted(target)), new=bool(target - owned))
        if revoked or changed:
            self._ack_needed = True
            self._hb_wakeup.set()

    def _announce(self, partitions: tuple[TopicPartition, ...], *, new: bool = False) -> None:
        """We own exactly ``partitions`` at ``_epoch`` (``assigned``)."""
        generation = Generation(self._epoch, self._kafka_member_id, "consumer", "")
        self._owned = partitions
        self._owned_generation = generation
        self._generation = generation
        with self._lock:
            self._assignment = Assignment.of(self._epoch, partitions, "", self._kafka_member_id)
        self.emit(
            EventKind.ASSIGNED,
            generation=self._epoch,
            partitions=partitions,
            kafka_member_id=self._kafka_member_id,
        )
        if new:
            self._fetch_needed = True
        self._offsets_wakeup.set()

    # -- heartbeats ----------------------------------------------------------------------------------

    async def _heartbeat_routine(self) -> None:
        """Heartbeat at the coordinator's interval while in the group; at once to acknowledge."""
        while not self._leaving:
            self._hb_wakeup.clear()
            if self.state is not MemberState.STABLE or self._coordinator is None or self._rejoin_needed:
                await self._hb_wakeup.wait()
                continue
            due = self._last_sent + self._interval_s - self._monotonic()
            if not self._ack_needed and due > 0:
                await sleep_unless(self._hb_wakeup, due)
                continue
            self._ack_needed = False
            try:
                response = await self._send(self._epoch, full=False)
            except CONSUMER_FATAL_ERRORS as exc:
                self._fail(exc)
                return
            except (Errors.FencedMemberEpochError, Errors.UnknownMemberIdError) as exc:
                # transitionToFenced: the partitions are lost, not revoked; rejoin at epoch 0
                self._lose_session(f"heartbeat: {type(exc).__name__}", forget_member_id=False)
                continue
            except Errors.KafkaError as exc:
                self._sent_owned = None  # the next request is a full one
                if self._handle_error(exc, "heartbeat"):
                    await asyncio.sleep(self.settings.retry_backoff_ms / 1000)
                continue
            await self._apply(response)

    # -- leave ---------------------------------------------------------------------------------------

    async def _leave(self) -> None:
        """``AbstractMembershipManager.leaveGroup``: commit, revoke, then the leave heartbeat."""
        if self.state in (MemberState.LEFT, MemberState.FAILED) or self._leaving:
            return
        self._leaving = True
        await self._cancel_routines()
        epoch = self._epoch
        assert self._loop is not None
        deadline = self._loop.time() + self.settings.request_timeout_ms / 1000
        if self._owned and self.settings.enable_auto_commit:
            await self._commit_before_leave()
        self._revoke("leave")
        if self._kafka_member_id and self._coordinator is not None and epoch > 0:
            leave_epoch = LEAVE_EPOCH if self.config.group_instance_id is None else STATIC_LEAVE_EPOCH
            try:
                async with asyncio.timeout(max(0.0, deadline - self._loop.time())):
                    await self._send(leave_epoch, full=False)
            except (Errors.KafkaError, TimeoutError) as exc:
                log.warning(
                    "%s: leave heartbeat not delivered (%r); the coordinator expires our session",
                    self.member_id,
                    exc,
                )
        self._generation = NO_GENERATION
        self.state = MemberState.LEFT
        self.emit(
            EventKind.LEFT, generation=epoch if epoch > 0 else None, kafka_member_id=self._kafka_member_id
        )

    def _lose_session(self, reason: str, *, forget_member_id: bool) -> None:
        self._epoch = 0
        self._sent_owned = None
        super()._lose_session(reason, forget_member_id=forget_member_id)

    def __repr__(self) -> str:
        return f"<ConsumerProtocolMember {self.member_id} {self.state.value} epoch={self._epoch}>"

"""The broker's replica manager for ``__consumer_offsets``: which partitions it leads or follows,
the leader's appends and acks=all waits, the replica Fetch it serves, and the ISR it keeps.

It follows Kafka 3.9's ``kafka.server.ReplicaManager`` in ZooKeeper mode:

* **Roles** come from the partition states in ZooKeeper (``becomeLeaderOrFollower`` on a
  LeaderAndIsr request; here the broker's watches deliver them): the leader of epoch ``e`` appends,
  a follower truncates its replica to its high watermark and fetches from the leader
  (:mod:`.fetcher`; ``makeFollowers`` → ``ReplicaFetcherManager.addFetcherForPartitions``). Kafka 3.9
  truncates by leader epoch (KIP-101/KIP-279); truncating to the high watermark is the older rule and
  keeps every acknowledged record, since the new leader was in the ISR. The follower's high
  watermark is kept in memory only (Kafka checkpoints it in ``replication-offset-checkpoint``), so
  a restarted follower fetches its replica again from offset 0; it is out of the ISR by then (the
  controller removed it when its registration expired) unless it was the last ISR member, and then
  it leads and keeps its log.
* **Appends** (``appendRecords`` with ``requiredAcks = -1``, ``origin = Coordinator``): the leader
  appends to its own replica at once, and the request that caused the write is answered only once
  the ISR has it (``DelayedProduce`` / ``Partition.checkEnoughReplicasReachOffset``) or after
  ``offsets.commit.timeout.ms`` with ``REQUEST_TIMED_OUT`` (:meth:`ReplicaManager.wait_replicated`).
* **Replica Fetch** (``fetchMessages`` with a replica id): the leader records the follower's fetch
  offset as its log end (``Partition.updateFollowerFetchState``), may advance the high watermark and
  complete waiting writes, may add the follower back to the ISR, and answers with the records from
  that offset on and its high watermark; with nothing to send it holds the fetch up to the
  follower's ``max_wait_ms`` (``DelayedFetch``) and answers as soon as something is appended.
* **ISR shrink**: every ``replica.lag.time.max.ms / 2`` (``ReplicaManager.maybeShrinkIsr``'s
  schedule) followers not caught up within ``replica.lag.time.max.ms`` are dropped. The leader
  records the ISR in the partition's state znode itself, conditional on its version (Kafka before
  KIP-497's AlterPartition, ``Partition.updateIsr`` / ``ReplicationUtils.updateLeaderAndIsr``); a
  refused write means the controller changed the state first.

Everything runs on the broker's event loop; ZooKeeper writes run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..group.errors import ErrorCode, PersistError
from ..group.records import Record
from ..waiting import sleep_unless, wait_within
from .controller import PartitionLeader
from .offsets_log import OffsetsLog
from .partition import LeaderPartition
from .stats import BrokerStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicationConfig:
    """Kafka's defaults for the replication settings (``ReplicationConfigs``, ``GroupCoordinatorConfig``)."""

    replica_lag_time_max_ms: int = 30_000  # replica.lag.time.max.ms
    replica_fetch_wait_max_ms: int = 500  # replica.fetch.wait.max.ms
    replica_fetch_max_bytes: int = 1024 * 1024  # replica.fetch.max.bytes (per partition)
    replica_fetch_response_max_bytes: int = 10 * 1024 * 1024  # replica.fetch.response.max.bytes
    replica_fetch_backoff_ms: int = 1_000  # replica.fetch.backoff.ms
    offsets_commit_timeout_ms: int = 5_000  # offsets.commit.timeout.ms
    request_timeout_ms: int = 30_000  # replica.socket.timeout.ms


@dataclass(frozen=True)
class FetchedPartition:
    """The leader's answer for one partition of a replica Fetch."""

    error: ErrorCode
    high_watermark: int = -1
    log_start_offset: int = -1
    records: bytes = b""


IsrWriter = Callable[[int, PartitionLeader, tuple[int, ...]], PartitionLeader | None]


class ReplicaManager:
    """The offsets partitions' replicas of one broker (see the module)."""

    def __init__(
        self,
        broker_id: int,
        log_: OffsetsLog,
        stats: BrokerStats,
        config: ReplicationConfig,
        write_isr: IsrWriter,
        clock_ms: Callable[[], float] = lambda: time.monotonic() * 1000.0,
    ) -> None:
        self.broker_id = broker_id
        self.log = log_
        self.stats = stats
        self.config = config
        self.write_isr = write_isr
        self.clock_ms = clock_ms
        self.leading: dict[int, LeaderPartition] = {}
        self.states: dict[int, PartitionLeader] = {}  # the state znode a led partition was last seen at
        self.following: dict[int, PartitionLeader] = {}  # partition -> the state it follows
        self.high_watermarks: dict[int, int] = {}  # as follower: min(own end, the leader's high watermark)
        self._progress: dict[int, asyncio.Event] = {}
        self._isr_in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- progress: one event per partition, set and replaced on every change ------------------------

    def _event(self, partition: int) -> asyncio.Event:
        return self._progress.setdefault(partition, asyncio.Event())

    def _notify(self, partition: int) -> None:
        event = self._progress.pop(partition, None)
        if event is not None:
            event.set()

    # -- roles ---------------------------------------------------------------------------------------

    def become_leader(self, partition: int, state: PartitionLeader) -> None:
        """``Partition.makeLeader``: our replica is the log now; followers are caught up for now."""
        self.following.pop(partition, None)
        current = self.leading.get(partition)
        if current is not None and current.epoch == state.epoch:
            self.states[partition] = state
            if current.apply_isr(frozenset(state.isr)):
                self._notify(partition)
            return
        end = self.log.end_offset(partition)
        self.leading[partition] = LeaderPartition(
            partition,
            self.broker_id,
            state.epoch,
            state.replicas,
            frozenset(state.isr) | {self.broker_id},
            end,
            self.high_watermarks.get(partition, 0),
            self.clock_ms(),
        )
        self.states[partition] = state
        log.info(
            "offsets partition %d: leader at epoch %d (log end %d, ISR %s)",
            partition,
            state.epoch,
            end,
            list(state.isr),
        )
        self._notify(partition)

    def become_follower(self, partition: int, state: PartitionLeader) -> bool:
        """``Partition.makeFollower``; whether the partition is new to the fetcher (or its leader changed)."""
        led = self.leading.pop(partition, None)
        if led is not None:
            self.high_watermarks[partition] = led.high_watermark
        self.states.pop(partition, None)
        old = self.following.get(partition)
        if old is not None and (old.leader, old.epoch) == (state.leader, state.epoch):
            return False
        self.following[partition] = state
        self.log.truncate_to(partition, self.high_watermarks.get(partition, 0))
        log.info(
            "offsets partition %d: follower of broker %d at epoch %d from offset %d",
            partition,
            state.leader,
            state.epoch,
            self.log.end_offset(partition),
        )
        self._notify(partition)
        return True

    def stop_replica(self, partition: int) -> None:
        led = self.leading.pop(partition, None)
        if led is not None:
            self.high_watermarks[partition] = led.high_watermark
        self.states.pop(partition, None)
        self.following.pop(partition, None)
        self._notify(partition)

    # -- the leader's writes ----------------------------------------------------------------------

    def append(self, partition: int, records: list[Record]) -> int:
        """Append the coordinator's records as leader; the log end offset the write must reach."""
        led = self.leading.get(partition)
        if led is None:
            raise PersistError(ErrorCode.NOT_COORDINATOR, f"not the leader of offsets partition {partition}")
        end = self.log.append(partition, records, led.epoch)
        led.on_append(end)
        self._notify(partition)
        return end

    def end_offset(self, partition: int) -> int:
        led = self.leading.get(partition)
        return -1 if led is None else led.end_offset

    async def wait_replicated(self, partition: int, offset: int) -> ErrorCode:
        """acks=all: NONE once the ISR has the log up to ``offset``; ``NOT_LEADER_OR_FOLLOWER`` if the
        leadership is lost first, ``REQUEST_TIMED_OUT`` after ``offsets.commit.timeout.ms``."""
        deadline = time.monotonic() + self.config.offsets_commit_timeout_ms / 1000.0
        led = self.leading.get(partition)
        epoch = None if led is None else led.epoch
        while True:
            led = self.leading.get(partition)
            if led is None or led.epoch != epoch:
                return ErrorCode.NOT_LEADER_OR_FOLLOWER
            if led.reached(offset):
                return ErrorCode.NONE
            left = deadline - time.monotonic()
            if left <= 0:
                return ErrorCode.REQUEST_TIMED_OUT
            waiter = asyncio.ensure_future(self._event(partition).wait())
            try:
                await wait_within(waiter, left)
            finally:
                waiter.cancel()

    # -- the leader's side of replica Fetch -------------------------------------------------------

    def serve_fetch(
        self, replica_id: int, partition: int, fetch_offset: int, leader_epoch: int, max_bytes: int
    ) -> FetchedPartition:
        """One partition of a follower's Fetch (``ReplicaManager.readFromLog`` after
        ``Partition.updateFollowerFetchState``)."""
        led = self.leading.get(partition)
        if led is None:
            return FetchedPartition(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if leader_epoch >= 0 and leader_epoch != led.epoch:
            return FetchedPartition(
                ErrorCode.FENCED_LEADER_EPOCH if leader_epoch < led.epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
            )
        if replica_id not in led.followers:
            return FetchedPartition(ErrorCode.NOT_LEADER_OR_FOLLOWER)  # not a replica of this partition
        if not 0 <= fetch_offset <= led.end_offset:
            return FetchedPartition(ErrorCode.OFFSET_OUT_OF_RANGE, led.high_watermark, 0)
        if led.on_follower_fetch(replica_id, fetch_offset, self.clock_ms()):
            self._notify(partition)
        candidates = led.expand_candidates()
        if candidates:
            self._propose_isr(partition, led.isr | candidates)
        records = (
            self.log.read_from(partition, fetch_offset, max_bytes) if fetch_offset < led.end_offset else b""
        )
        if records:
            counter = self.stats.partition(partition)
            counter.fetches_served += 1
            counter.fetch_bytes_out += len(records)
        return FetchedPartition(ErrorCode.NONE, led.high_watermark, 0, records)

    async def wait_for_data(self, partitions: list[int], seconds: float) -> None:
        """``DelayedFetch``: return once any of ``partitions`` changes, or after ``seconds``."""
        if not partitions or seconds <= 0:
            return
        waits = [asyncio.ensure_future(self._event(p).wait()) for p in partitions]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    # -- the ISR ------------------------------------------------------------------------------------

    def shrink_isr(self) -> None:
        """``ReplicaManager.maybeShrinkIsr``: drop followers that lagged past replica.lag.time.max.ms."""
        now = self.clock_ms()
        for partition, led in list(self.leading.items()):
            lagging = led.out_of_sync(now, self.config.replica_lag_time_max_ms)
            if lagging:
                log.info("offsets partition %d: followers %s out of sync", partition, sorted(lagging))
                self._propose_isr(partition, led.isr - lagging)

    def _propose_isr(self, partition: int, isr: frozenset[int]) -> None:
        state = self.states.get(partition)
        if partition in self._isr_in_flight or state is None:
            return
        self._isr_in_flight.add(partition)
        ordered = tuple(r for r in state.replicas if r in isr)
        task = asyncio.ensure_future(self._write_isr(partition, state, ordered))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_isr(self, partition: int, state: PartitionLeader, isr: tuple[int, ...]) -> None:
        try:
            written = await asyncio.to_thread(self.write_isr, partition, state, isr)
        finally:
            self._isr_in_flight.discard(partition)
        led = self.leading.get(partition)
        if written is None or led is None or led.epoch != written.epoch:
            return  # the controller changed the state first: its watch brings the new one
        log.info("offsets partition %d: ISR %s -> %s", partition, list(state.isr), list(isr))
        self.states[partition] = written
        if led.apply_isr(frozenset(isr)):
            self._notify(partition)

    async def run_isr_checks(self, stopping: asyncio.Event) -> None:
        """Shrink every ``replica.lag.time.max.ms / 2``, as Kafka schedules ``isr-expiration``."""
        while not stopping.is_set():
            await sleep_unless(stopping, self.config.replica_lag_time_max_ms / 2000)
            self.shrink_isr()

    # -- the follower's side ---------------------------------------------------------------------

    def on_fetched(self, partition: int, state: PartitionLeader, data: bytes, leader_hw: int) -> None:
        """A fetch answer from the leader we follow at ``state``: append, then take its high watermark."""
        if self.following.get(partition) != state:
            return  # the role changed while the fetch was in flight
        end = self.log.end_offset(partition)
        if data:
            end = self.log.append_lines(partition, data)
            counter = self.stats.partition(partition)
            counter.fetches_received += 1
            counter.fetch_bytes_in += len(data)
        self.high_watermarks[partition] = max(self.high_watermarks.get(partition, 0), min(end, leader_hw))

    def fetch_offset(self, partition: int) -> int:
        return self.log.end_offset(partition)

    def followed_from(self, leader: int) -> dict[int, PartitionLeader]:
        return {p: s for p, s in self.following.items() if s.leader == leader}

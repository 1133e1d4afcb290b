"""The follower's replica fetchers: one per leader broker, each a Kafka-protocol connection of its own
on which it sends Fetch requests with its broker id as ``replica_id`` (Kafka's
``ReplicaFetcherThread`` / ``AbstractFetcherThread.processFetchRequest``, ``num.replica.fetchers=1``).

Each round asks for every partition followed from that leader at the replica's log end offset, with
the leader epoch it follows (``current_leader_epoch``), ``replica.fetch.wait.max.ms`` and
``min_bytes = 1``, so the leader holds the request until it has something or the wait is over. The
records are appended as they are and the leader's high watermark taken (``processPartitionData``).
A partition answered with an error waits ``replica.fetch.backoff.ms`` (the leader moved, or has not
yet learned of its leadership); a broken connection is opened again after the same backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from kafka.protocol.consumer import FetchRequest

from ..group.errors import ErrorCode
from ..waiting import run_within, sleep_unless
from .controller import OFFSETS_TOPIC, BrokerInfo, PartitionLeader
from .replication import ReplicaManager

log = logging.getLogger(__name__)

#: The Fetch version followers send: the newest this broker serves (``replica_id`` in the body, as up
#: to v14; current_leader_epoch since v9).
FETCH_VERSION = 12


class PeerConnection:
    """One Kafka-protocol connection to another broker: one request at a time, answered in order."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0

    async def request(self, request: Any, timeout_s: float) -> Any:
        if self._writer is None:
            self._reader, self._writer = await run_within(
                asyncio.open_connection(self.host, self.port), timeout_s
            )
        assert self._reader is not None
        self._correlation += 1
        request.with_header(correlation_id=self._correlation, client_id=self.client_id)
        response_class = request.header.get_response_class()
        self._writer.write(bytes(request.encode(header=True, framed=True)))
        await self._writer.drain()
        (size,) = struct.unpack(">i", await run_within(self._reader.readexactly(4), timeout_s))
        payload = await run_within(self._reader.readexactly(size), timeout_s)
        response = response_class.decode(payload, header=True)
        if response.header.correlation_id != self._correlation:
            raise ConnectionError(f"correlation id {response.header.correlation_id} != {self._correlation}")
        return response

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class ReplicaFetchers:
    """Starts one fetcher task per leader we follow partitions from; each ends when none are left."""

    def __init__(
        self,
        replicas: ReplicaManager,
        broker_of: Callable[[int], BrokerInfo | None],
        stopping: asyncio.Event,
    ) -> None:
        self.replicas = replicas
        self.broker_of = broker_of
        self.stopping = stopping
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def ensure(self) -> None:
        """A fetcher for every leader we follow something from (after a role change)."""
        leaders = {s.leader for s in self.replicas.following.values()}
        for leader in leaders:
            task = self._tasks.get(leader)
            if task is None or task.done():
                self._tasks[leader] = asyncio.ensure_future(self._run(leader))

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, leader: int) -> None:
        config = self.replicas.config
        backoff_s = config.replica_fetch_backoff_ms / 1000.0
        connection: PeerConnection | None = None
        backoff_until: dict[int, float] = {}
        try:
            while not self.stopping.is_set():
                followed = self.replicas.followed_from(leader)
                if not followed:
                    return
                info = self.broker_of(leader)
                if info is None:  # the leader is not registered (yet, or any more)
                    await sleep_unless(self.stopping, backoff_s)
                    continue
                if connection is None or (connection.host, connection.port) != (info.host, info.port):
                    if connection is not None:
                        await connection.close()
                    connection = PeerConnection(
                        info.host, info.port, f"broker-{self.replicas.broker_id}-fetcher"
                    )
                now = time.monotonic()
                ready = {p: s for p, s in followed.items() if backoff_until.get(p, 0.0) <= now}
                if not ready:
                    await sleep_unless(self.stopping, min(backoff_until.values()) - now)
                    continue
                try:
                    response = await connection.request(
                        self._request(ready),
                        config.request_timeout_ms / 1000.0 + config.replica_fetch_wait_max_ms / 1000.0,
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    log.info("replica fetch from broker %d failed: %r; retrying", leader, exc)
                    await connection.close()
                    await sleep_unless(self.stopping, backoff_s)
                    continue
                self._apply(leader, ready, response, backoff_until, backoff_s)
        finally:
            if connection is not None:
                await connection.close()

    def _request(self, partitions: dict[int, PartitionLeader]) -> Any:
        config = self.replicas.config
        part = FetchRequest.FetchTopic.FetchPartition
        return FetchRequest(
            version=FETCH_VERSION,
            cluster_id=None,
            replica_id=self.replicas.broker_id,
            max_wait_ms=config.replica_fetch_wait_max_ms,
            min_bytes=1,
            max_bytes=config.replica_fetch_response_max_bytes,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[
                FetchRequest.FetchTopic(
                    topic=OFFSETS_TOPIC,
                    partitions=[
                        part(
                            partition=p,
                            current_leader_epoch=s.epoch,
                            fetch_offset=self.replicas.fetch_offset(p),
                            last_fetched_epoch=-1,
                            log_start_offset=-1,
                            partition_max_bytes=config.replica_fetch_max_bytes,
                        )
                        for p, s in sorted(partitions.items())
                    ],
                )
            ],
            forgotten_topics_data=[],
            rack_id="",
        )

    def _apply(
        self,
        leader: int,
        asked: dict[int, PartitionLeader],
        response: Any,
        backoff_until: dict[int, float],
        backoff_s: float,
    ) -> None:
        for topic in response.responses or []:
            for p in topic.partitions or []:
                state = asked.get(p.partition_index)
                if topic.topic != OFFSETS_TOPIC or state is None:
                    continue
                error = p.error_code
                if error == ErrorCode.NONE:
                    try:
                        self.replicas.on_fetched(
                            p.partition_index, state, bytes(p.records or b""), p.high_watermark
                        )
                    except ValueError as exc:  # garbage from the leader: back off, never crash
                        log.warning("offsets partition %d: %s", p.partition_index, exc)
                        backoff_until[p.partition_index] = time.monotonic() + backoff_s
                    continue
                if error == ErrorCode.OFFSET_OUT_OF_RANGE:
                    # We are ahead of the leader (``handleOutOfRangeError``): cut back to its high watermark.
                    self.replicas.log.truncate_to(p.partition_index, max(p.high_watermark, 0))
                log.info(
                    "offsets partition %d: fetch from broker %d answered %s",
                    p.partition_index,
                    leader,
                    ErrorCode(error).name if error in ErrorCode._value2member_map_ else error,
                )
                backoff_until[p.partition_index] = time.monotonic() + backoff_s

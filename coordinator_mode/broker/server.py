"""One broker process: the network layer (framing, connections, dispatch), its ZooKeeper agent, the
coordinator's timers and the leadership of offsets partitions.

Requests are decoded and responses encoded with kafka-python's ``kafka.protocol`` message classes,
which are generated from Kafka's JSON message schemas. This module moves frames; the API handlers
(:mod:`.cluster_apis`, :mod:`.group_apis`) map their fields to the group coordinator
(:mod:`coordinator_mode.group.coordinator`) and the cluster view (:mod:`.controller`).

The connection protocol, as Kafka's ``SocketServer`` implements it:

* A frame is a 4-byte big-endian size and that many bytes: a request header (api key, api version,
  correlation id, client id; tagged fields too for flexible versions) and the request body.
  A size below the smallest header or above ``max_frame_bytes`` (``socket.request.max.bytes``) closes
  the connection: the stream cannot be trusted after that.
* Requests on one connection are handled one at a time and answered in order (Kafka mutes the
  channel while a request is in flight), so a parked JoinGroup holds its connection.
* An ApiVersions request of a version we do not know is answered with ``UNSUPPORTED_VERSION`` in the
  v0 format, listing our ranges, so the client can retry with a version we support (KIP-511). Any
  other unknown api key or version, or a body that does not parse, closes the connection, as Kafka
  does when it cannot parse a request.

The APIs and the versions advertised are exactly :data:`~.protocol.API_VERSIONS`.

Per-API counters (:mod:`.stats`: requests, bytes in and out) are rewritten every second to
``broker_stats.json`` in the broker's state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import (
    ApiVersionsResponse,
)

from ..group.coordinator import GroupCoordinator, PartitionState
from ..group.errors import ErrorCode
from ..hashing import partition_for
from ..waiting import run_within
from .cluster_apis import ClusterApis
from .config import BrokerConfig
from .controller import OFFSETS_TOPIC, BrokerInfo, BrokerZk, ClusterView, PartitionLeader
from .data_apis import DataApis
from .data_log import DataLogs
from .fetcher import ReplicaFetchers
from .group_apis import GroupApis
from .offsets_log import OffsetsLog
from .protocol import API_VERSIONS, REQUEST_CLASSES, RequestContext, api_key_ranges
from .replication import ReplicaManager
from .stats import BrokerStats

log = logging.getLogger(__name__)

#: The smallest request header: api key, api version, correlation id, client id length.
_MIN_FRAME = 10


class CloseConnection(Exception):
    """The request cannot be answered; the connection must be closed."""


class Broker:
    """One broker: a TCP server, its ZooKeeper agent and the group coordinator of its partitions."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.stats = BrokerStats()
        self.view = ClusterView()
        self.offsets_partitions = config.offsets_partitions
        self.log = OffsetsLog(
            Path(config.log_dir),
            flush_interval_messages=config.log_flush_interval_messages,
            counters=self.stats.partitions,
        )
        self.stopping = asyncio.Event()
        self.replicas = ReplicaManager(
            config.broker_id, self.log, self.stats, config.replication_config(), self._write_isr
        )
        self.fetchers = ReplicaFetchers(self.replicas, self._broker_info, self.stopping)
        self.coordinator = GroupCoordinator(
            partition_for=lambda group: partition_for(group, self.offsets_partitions),
            persist=self._persist,
            config=config.coordinator_config(),
            clock=self._clock_ms,
            topics=lambda: self.view.topics,
        )
        self._led: dict[int, int] = {}  # offsets partitions we lead (loading or active) -> leader epoch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._zk: BrokerZk | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.data_logs = DataLogs(
            Path(config.log_dir), config.segment_bytes, config.retention_bytes
        )  # the data partitions' logs, beside the offsets partitions'
        cluster_apis = ClusterApis(self)
        self._handlers: dict[int, Callable[[Any, RequestContext], Awaitable[Any]]] = {
            **cluster_apis.handlers(),
            **GroupApis(self).handlers(),
            **DataApis(self, self.data_logs, cluster_apis.replica_fetch).handlers(),
        }

    def _clock_ms(self) -> float:
        return time.monotonic() * 1000.0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then register in ZooKeeper (so a registered broker always accepts connections)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._handle_connection, self.config.host, self.config.port, reuse_address=True
        )
        self.config.stats_dir.mkdir(parents=True, exist_ok=True)
        self._zk = BrokerZk(
            self.config.zk_connect,
            self.config.broker_id,
            *self.config.advertised,
            root=self.config.zk_root,
            offsets_partitions=self.config.offsets_partitions,
            offsets_replication_factor=self.config.offsets_replication_factor,
            session_timeout_ms=self.config.zk_session_timeout_ms,
            leader_imbalance_check_interval_s=self.config.leader_imbalance_check_interval_s,
            leader_imbalance_per_broker_percentage=self.config.leader_imbalance_per_broker_percentage,
            on_view=self._on_view_threadsafe,
            on_session_lost=self._on_session_lost_threadsafe,
        )
        await asyncio.to_thread(self._zk.start)
        self.offsets_partitions = self._zk.offsets_partitions
        self._spawn(self._write_stats_forever())
        self._spawn(self.replicas.run_isr_checks(self.stopping))
        log.info(
            "broker %d serving on %s:%d, advertised as %s:%d (offsets partitions: %d)",
            self.config.broker_id,
            self.config.host,
            self.config.port,
            *self.config.advertised,
            self.offsets_partitions,
        )

    async def run(self) -> None:
        """Start and serve until SIGTERM/SIGINT or :meth:`request_stop`. SIGUSR1 writes
        ``broker_stats.json`` at once: the harness's sampler asks for counters as of the moment it
        reads them (as Jolokia's reading of a real broker is), not as of the last periodic write."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self._write_stats)
        await self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.stopping.wait()
        await self.stop()

    def request_stop(self) -> None:
        self.stopping.set()

    async def stop(self) -> None:
        log.info("broker %d stopping", self.config.broker_id)
        if self._server is not None:
            self._server.close()
        if self._zk is not None:
            await asyncio.to_thread(self._zk.stop)
        for partition in list(self._led):
            self._unload(partition)
        self.stopping.set()
        await self.fetchers.stop()
        for task in list(self._tasks):
            task.cancel()
        self.log.close()  # flushes, as Kafka does on a clean shutdown
        self.data_logs.close()
        self._write_stats()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- cluster view and offsets-partition leadership -------------------------------------------

    def _on_view_threadsafe(self, view: ClusterView) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._apply_view, view)

    def _on_session_lost_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._apply_view, ClusterView())

    def _apply_view(self, view: ClusterView) -> None:
        """Take the roles the partition states give us (Kafka's LeaderAndIsr): lead and load, follow, or
        drop each offsets partition; a leader whose epoch changed unloads first."""
        self.view = view
        if self._zk is not None:
            self.offsets_partitions = self._zk.offsets_partitions  # the cluster's count, from ZooKeeper
        me = self.config.broker_id
        states = {p: s for p, s in view.leaders.get(OFFSETS_TOPIC, {}).items() if p < self.offsets_partitions}
        mine = {p: s for p, s in states.items() if s.leader == me}
        for partition, epoch in list(self._led.items()):
            if partition not in mine or mine[partition].epoch != epoch:
                self._unload(partition)
        for partition, state in sorted(states.items()):
            if state.leader == me:
                self.replicas.become_leader(partition, state)
                if partition not in self._led:
                    self._led[partition] = state.epoch
                    self.coordinator.begin_loading(partition, state.epoch)
                    self._spawn(self._load(partition, state.epoch))
            elif me in state.replicas and state.leader in view.brokers:
                self.replicas.become_follower(partition, state)
            else:
                self.replicas.stop_replica(partition)
        for partition in (set(self.replicas.leading) | set(self.replicas.following)) - set(states):
            self.replicas.stop_replica(partition)  # e.g. the ZooKeeper session was lost
        self.fetchers.ensure()

    def _broker_info(self, broker_id: int) -> BrokerInfo | None:
        return self.view.brokers.get(broker_id)

    def _write_isr(
        self, partition: int, state: PartitionLeader, isr: tuple[int, ...]
    ) -> PartitionLeader | None:
        return None if self._zk is None else self._zk.update_isr(partition, state, isr)

    def _persist(self, partition: int, records: list[Any]) -> None:
        """The coordinator's write: appended to our replica as leader; acks=all is awaited by the handler."""
        self.replicas.append(partition, records)

    async def replicated(self, group_id: str) -> ErrorCode:
        """Wait until the ISR has everything appended so far to ``group_id``'s offsets partition."""
        partition = partition_for(group_id, self.offsets_partitions)
        end = self.replicas.end_offset(partition)
        if end < 0:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        return await self.replicas.wait_replicated(partition, end)

    async def _load(self, partition: int, epoch: int) -> None:
        """Replay our replica of the partition; its groups answer LOAD_IN_PROGRESS until this finishes."""
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(self.log.load, partition)
        except Exception as exc:
            log.warning("offsets partition %d: load at epoch %d failed: %s", partition, epoch, exc)
            if self._led.get(partition) == epoch:
                self._unload(partition)
            return
        if self._led.get(partition) != epoch:
            return  # leadership moved on meanwhile
        self.coordinator.complete_loading(partition, epoch, result.records)
        log.info(
            "offsets partition %d active at epoch %d after %.0f ms (%d records to offset %d)",
            partition,
            epoch,
            (time.monotonic() - started) * 1000,
            len(result.records),
            result.end_offset,
        )
        self.schedule_timer()

    def _unload(self, partition: int) -> None:
        self._led.pop(partition, None)
        self.coordinator.unload(partition)
        log.info("offsets partition %d unloaded", partition)

    # -- coordinator timers ----------------------------------------------------------------------

    def schedule_timer(self) -> None:
        """Arm one loop timer for the coordinator's earliest deadline."""
        deadline = self.coordinator.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            delay = max(0.0, (deadline - self._clock_ms()) / 1000.0)
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.coordinator.poll()
        except Exception:
            log.exception("coordinator timer failed")
        self.schedule_timer()

    # -- connections -----------------------------------------------------------------------------

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = f"/{peer[0]}" if isinstance(peer, tuple) else "/unknown"
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        try:
            while True:
                size_bytes = await run_within(reader.readexactly(4), self.config.idle_timeout_s)
                (size,) = struct.unpack(">i", size_bytes)
                if not _MIN_FRAME <= size <= self.config.max_frame_bytes:
                    self.stats.malformed_frames += 1
                    log.warning("closing connection from %s: frame size %d out of bounds", host, size)
                    return
                payload = await run_within(reader.readexactly(size), self.config.idle_timeout_s)
                response = await self._dispatch(payload, host)
                if response:  # a Produce with acks=0 gets none
                    writer.write(response)
                    await writer.drain()
        except CloseConnection as exc:
            log.warning("closing connection from %s: %s", host, exc)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("closing connection from %s after an unexpected error", host)
        finally:
            self.stats.connections_open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, payload: bytes, client_host: str) -> bytes:
        """Decode one request, run its handler, return the framed response."""
        api_key, version, correlation_id = struct.unpack_from(">hhi", payload)
        supported = API_VERSIONS.get(api_key)
        if supported is None or not supported[0] <= version <= supported[1]:
            self.stats.unsupported_requests += 1
            if api_key == ApiKey.ApiVersions:
                # KIP-511: we cannot parse a newer ApiVersions, so answer in v0 with our ranges.
                response = ApiVersionsResponse(
                    version=0, error_code=ErrorCode.UNSUPPORTED_VERSION, api_keys=api_key_ranges()
                )
                response.with_header(correlation_id=correlation_id)
                data = bytes(response.encode(header=True, framed=True))
                self.stats.count("ApiVersions", len(payload) + 4, len(data), ErrorCode.UNSUPPORTED_VERSION)
                return data
            raise CloseConnection(f"unsupported api key {api_key} version {version}")
        request_class = REQUEST_CLASSES[api_key]
        try:
            request = request_class.decode(payload, version=version, header=True)
        except Exception as exc:
            self.stats.malformed_frames += 1
            raise CloseConnection(f"cannot parse {request_class.__name__} v{version}: {exc!r}") from None
        header = request.header
        ctx = RequestContext(api_key, version, correlation_id, header.client_id or "", client_host)
        response = await self._handlers[api_key](request, ctx)
        if api_key == ApiKey.Produce and request.acks == 0:
            # KafkaApis.handleProduceRequest: no response for acks=0; an error closes the connection.
            failed = [p for t in response.responses for p in t.partition_responses if p.error_code]
            self.stats.count("Produce", len(payload) + 4, 0, failed[0].error_code if failed else 0)
            if failed:
                raise CloseConnection(f"acks=0 produce failed: {ErrorCode(failed[0].error_code).name}")
            return b""
        response.with_header(correlation_id=correlation_id)
        data = bytes(response.encode(header=True, framed=True))
        # Responses with a top-level error code (the group APIs, FindCoordinator v0-3) are counted by it.
        error_code = getattr(response, "error_code", 0) or 0
        # Kafka's RequestMetrics tell a follower's Fetch (FetchFollower) from a consumer's.
        name = ApiKey(api_key).name
        if api_key == ApiKey.Fetch and getattr(request, "replica_id", -1) >= 0:
            name = "FetchFollower"
        self.stats.count(name, len(payload) + 4, len(data), error_code)
        return data

    # -- stats -----------------------------------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        d = self.stats.to_dict()
        d.update(
            broker_id=self.config.broker_id,
            port=self.config.port,
            pid=os.getpid(),
            time=time.time(),
            is_controller=self._zk.is_controller if self._zk is not None else False,
            offsets_partitions_led=sorted(self._led),
            offsets_partitions_loading=sorted(
                p for p in self._led if self.coordinator.partition_state(p) is PartitionState.LOADING
            ),
            groups=len(self.coordinator.groups),
            # How the offsets topic is made durable, for the report (Kafka: replication, no fsync per append).
            offsets_replication_factor=self._zk.offsets_replication_factor if self._zk is not None else None,
            log_flush_interval_messages=self.config.log_flush_interval_messages,
            offsets_partitions_following=sorted(self.replicas.following),
        )
        return d

    def _write_stats(self) -> None:
        path = self.config.stats_dir / "broker_stats.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.stats_snapshot(), indent=1))
            os.replace(tmp, path)
        except OSError:
            log.warning("could not write %s", path, exc_info=True)

    async def _write_stats_forever(self) -> None:
        while True:
            self._write_stats()
            await asyncio.sleep(self.config.stats_interval_s)


def run_broker(config: BrokerConfig) -> None:
    """Run one broker until SIGTERM (the ``rebalance-lab broker`` command)."""
    asyncio.run(Broker(config).run())

"""A broker that speaks the Kafka wire protocol on loopback and coordinates consumer groups.

Requests are decoded and responses encoded with kafka-python's ``kafka.protocol`` message classes,
which are generated from Kafka's JSON message schemas; this module only maps their fields to the
group coordinator (:mod:`coordinator_mode.group`) and the cluster view (:mod:`coordinator_mode.controller`).

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

The APIs and the versions advertised are exactly :data:`API_VERSIONS`. ListOffsets and Fetch serve
empty partitions: every data partition is an empty log whose end is wherever the consumer stands
(high watermark = fetch offset), so real consumers keep polling quietly; this project studies
coordination, not data.

Group and offset requests go to the :class:`~coordinator_mode.group.GroupCoordinator`, which knows
only the offsets partitions this broker leads (learned from ZooKeeper watches); for other groups it
answers ``NOT_COORDINATOR``, and ``COORDINATOR_LOAD_IN_PROGRESS`` while a partition's log is being
loaded after a leadership change.

Per-API counters (requests, bytes in and out) are rewritten every second to ``broker_stats.json`` in
the broker's state directory.
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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka.protocol.admin import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)

from .controller import DEFAULT_ZK_ROOT, OFFSETS_TOPIC, BrokerZk, ClusterView
from .group.config import CoordinatorConfig
from .group.coordinator import GroupCoordinator, PartitionState
from .group.errors import ErrorCode
from .group.messages import JoinRequest, JoinResult, LeavingMember, OffsetCommit, SyncRequest, SyncResult
from .hashing import DEFAULT_OFFSETS_PARTITIONS, partition_for
from .offsets_log import OffsetsLog

log = logging.getLogger(__name__)

#: The api versions this broker implements and advertises (key -> (min, max)). Every range
#: overlaps what kafka-python 3.0 and librdkafka 2.x need (librdkafka's balanced consumer wants
#: FindCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit 1-2, OffsetFetch 1);
#: the upper ends stop before topic ids in requests (Fetch 13, OffsetCommit/OffsetFetch 10) and
#: KIP-848-only fields.
API_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.Fetch: (4, 12),
    ApiKey.ListOffsets: (1, 7),
    ApiKey.Metadata: (0, 12),
    ApiKey.OffsetCommit: (2, 9),
    ApiKey.OffsetFetch: (1, 9),
    ApiKey.FindCoordinator: (0, 4),
    ApiKey.JoinGroup: (0, 9),
    ApiKey.Heartbeat: (0, 4),
    ApiKey.LeaveGroup: (0, 5),
    ApiKey.SyncGroup: (0, 5),
    ApiKey.DescribeGroups: (0, 5),
    ApiKey.ListGroups: (0, 4),
    ApiKey.ApiVersions: (0, 4),
}

_REQUESTS: dict[int, Any] = {
    ApiKey.Fetch: FetchRequest,
    ApiKey.ListOffsets: ListOffsetsRequest,
    ApiKey.Metadata: MetadataRequest,
    ApiKey.OffsetCommit: OffsetCommitRequest,
    ApiKey.OffsetFetch: OffsetFetchRequest,
    ApiKey.FindCoordinator: FindCoordinatorRequest,
    ApiKey.JoinGroup: JoinGroupRequest,
    ApiKey.Heartbeat: HeartbeatRequest,
    ApiKey.LeaveGroup: LeaveGroupRequest,
    ApiKey.SyncGroup: SyncGroupRequest,
    ApiKey.DescribeGroups: DescribeGroupsRequest,
    ApiKey.ListGroups: ListGroupsRequest,
    ApiKey.ApiVersions: ApiVersionsRequest,
}

#: The smallest request header: api key, api version, correlation id, client id length.
_MIN_FRAME = 10
#: Authorized-operations bitfields when the client did not ask (encoded as Kafka's ``Integer.MIN_VALUE``).
_NO_AUTHORIZED_OPERATIONS = None
#: Longest a Fetch of empty partitions waits (clients ask for ``fetch.max.wait.ms``, 500 ms default).
_MAX_FETCH_WAIT_MS = 10_000
CLUSTER_ID = "rebalance-lab"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything one broker process needs; every default is declared here."""

    broker_id: int
    zk_connect: str
    port: int
    log_dir: Path
    host: str = "127.0.0.1"  # where to listen
    # What brokers register in ZooKeeper and clients get in Metadata/FindCoordinator (Kafka's
    # advertised.listeners): a container's service name, or a proxy's port. None: the listen address.
    advertised_host: str | None = None
    advertised_port: int | None = None
    zk_root: str = DEFAULT_ZK_ROOT
    offsets_partitions: int = DEFAULT_OFFSETS_PARTITIONS  # offsets.topic.num.partitions
    initial_rebalance_delay_ms: int = CoordinatorConfig.initial_rebalance_delay_ms
    min_session_timeout_ms: int = CoordinatorConfig.min_session_timeout_ms
    max_session_timeout_ms: int = CoordinatorConfig.max_session_timeout_ms
    # Kafka's zookeeper.session.timeout.ms is 18 s; brokers here fail over faster by default.
    zk_session_timeout_ms: int = 6_000
    max_frame_bytes: int = 100 * 1024 * 1024  # socket.request.max.bytes
    idle_timeout_s: float = 600.0  # connections.max.idle.ms
    state_dir: Path | None = None  # broker_stats.json; default <log_dir>/broker-<id>
    stats_interval_s: float = 1.0

    @property
    def stats_dir(self) -> Path:
        return (
            self.state_dir if self.state_dir is not None else Path(self.log_dir) / f"broker-{self.broker_id}"
        )

    @property
    def advertised(self) -> tuple[str, int]:
        return (self.advertised_host or self.host, self.advertised_port or self.port)

    def coordinator_config(self) -> CoordinatorConfig:
        return CoordinatorConfig(
            min_session_timeout_ms=self.min_session_timeout_ms,
            max_session_timeout_ms=self.max_session_timeout_ms,
            initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
        )


@dataclass
class ApiCounter:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # top-level error name -> responses


@dataclass
class BrokerStats:
    """Per-API request and byte counters, and what went wrong on the wire."""

    apis: dict[str, ApiCounter] = field(default_factory=dict)
    connections_total: int = 0
    connections_open: int = 0
    malformed_frames: int = 0
    unsupported_requests: int = 0

    def count(self, api: str, bytes_in: int, bytes_out: int, error_code: int = 0) -> None:
        c = self.apis.setdefault(api, ApiCounter())
        c.requests += 1
        c.bytes_in += bytes_in
        c.bytes_out += bytes_out
        if error_code:
            name = (
                ErrorCode(error_code).name if error_code in ErrorCode._value2member_map_ else str(error_code)
            )
            c.errors[name] = c.errors.get(name, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "apis": {name: asdict(c) for name, c in sorted(self.apis.items())},
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "malformed_frames": self.malformed_frames,
            "unsupported_requests": self.unsupported_requests,
        }


class CloseConnection(Exception):
    """The request cannot be answered; the connection must be closed."""


@dataclass(frozen=True)
class RequestContext:
    api_key: int
    version: int
    correlation_id: int
    client_id: str
    client_host: str


def topic_id(name: str) -> uuid.UUID:
    """A stable id per topic name, the same on every broker (Kafka's are random but cluster-wide)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"rebalance-lab/topic/{name}")


class Broker:
    """One broker: a TCP server, its ZooKeeper agent and the group coordinator of its partitions."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.stats = BrokerStats()
        self.view = ClusterView()
        self.offsets_partitions = config.offsets_partitions
        self.log = OffsetsLog(Path(config.log_dir))
        self.coordinator = GroupCoordinator(
            partition_for=lambda group: partition_for(group, self.offsets_partitions),
            persist=self.log.append,
            config=config.coordinator_config(),
            clock=self._clock_ms,
        )
        self._led: dict[int, int] = {}  # offsets partitions we lead (loading or active) -> leader epoch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._zk: BrokerZk | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._handlers: dict[int, Callable[[Any, RequestContext], Awaitable[Any]]] = {
            ApiKey.ApiVersions: self._api_versions,
            ApiKey.Metadata: self._metadata,
            ApiKey.FindCoordinator: self._find_coordinator,
            ApiKey.JoinGroup: self._join_group,
            ApiKey.SyncGroup: self._sync_group,
            ApiKey.Heartbeat: self._heartbeat,
            ApiKey.LeaveGroup: self._leave_group,
            ApiKey.OffsetCommit: self._offset_commit,
            ApiKey.OffsetFetch: self._offset_fetch,
            ApiKey.DescribeGroups: self._describe_groups,
            ApiKey.ListGroups: self._list_groups,
            ApiKey.ListOffsets: self._list_offsets,
            ApiKey.Fetch: self._fetch,
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
            session_timeout_ms=self.config.zk_session_timeout_ms,
            on_view=self._on_view_threadsafe,
            on_session_lost=self._on_session_lost_threadsafe,
        )
        await asyncio.to_thread(self._zk.start)
        self.offsets_partitions = self._zk.offsets_partitions
        self._spawn(self._write_stats_forever())
        log.info(
            "broker %d serving on %s:%d, advertised as %s:%d (offsets partitions: %d)",
            self.config.broker_id,
            self.config.host,
            self.config.port,
            *self.config.advertised,
            self.offsets_partitions,
        )

    async def run(self) -> None:
        """Start and serve until SIGTERM/SIGINT or :meth:`request_stop`."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self._stopping.wait()
        await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        log.info("broker %d stopping", self.config.broker_id)
        if self._server is not None:
            self._server.close()
        if self._zk is not None:
            await asyncio.to_thread(self._zk.stop)
        for partition in list(self._led):
            self._unload(partition)
        for task in list(self._tasks):
            task.cancel()
        self._write_stats()
        self.log.close()

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
        self.view = view
        if self._zk is not None:
            self.offsets_partitions = self._zk.offsets_partitions  # the cluster's count, from ZooKeeper
        mine = {
            p: state.epoch
            for p, state in view.leaders.get(OFFSETS_TOPIC, {}).items()
            if state.leader == self.config.broker_id and p < self.offsets_partitions
        }
        for partition, epoch in list(self._led.items()):
            if mine.get(partition) != epoch:
                self._unload(partition)
        for partition, epoch in sorted(mine.items()):
            if partition not in self._led:
                self._led[partition] = epoch
                self.coordinator.begin_loading(partition, epoch)
                self._spawn(self._load(partition, epoch))

    async def _load(self, partition: int, epoch: int) -> None:
        """Replay the partition's log; its groups answer LOAD_IN_PROGRESS until this finishes."""
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(self.log.load, partition, epoch)
        except Exception as exc:
            log.warning("offsets partition %d: load at epoch %d failed: %s", partition, epoch, exc)
            if self._led.get(partition) == epoch:
                self._unload(partition)
            return
        if self._led.get(partition) != epoch:
            await asyncio.to_thread(self.log.release, partition, epoch)  # leadership moved on meanwhile
            return
        self.coordinator.complete_loading(partition, epoch, result.records)
        log.info(
            "offsets partition %d active at epoch %d after %.0f ms",
            partition,
            epoch,
            (time.monotonic() - started) * 1000,
        )
        self._schedule_timer()

    def _unload(self, partition: int) -> None:
        epoch = self._led.pop(partition, None)
        self.coordinator.unload(partition)
        self._spawn(asyncio.to_thread(self.log.release, partition, epoch))
        log.info("offsets partition %d unloaded", partition)

    # -- coordinator timers ----------------------------------------------------------------------

    def _schedule_timer(self) -> None:
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
        self._schedule_timer()

    # -- connections -----------------------------------------------------------------------------

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = f"/{peer[0]}" if isinstance(peer, tuple) else "/unknown"
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        try:
            while True:
                size_bytes = await asyncio.wait_for(reader.readexactly(4), self.config.idle_timeout_s)
                (size,) = struct.unpack(">i", size_bytes)
                if not _MIN_FRAME <= size <= self.config.max_frame_bytes:
                    self.stats.malformed_frames += 1
                    log.warning("closing connection from %s: frame size %d out of bounds", host, size)
                    return
                payload = await asyncio.wait_for(reader.readexactly(size), self.config.idle_timeout_s)
                response = await self._dispatch(payload, host)
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
                    version=0, error_code=ErrorCode.UNSUPPORTED_VERSION, api_keys=self._api_key_ranges()
                )
                response.with_header(correlation_id=correlation_id)
                data = bytes(response.encode(header=True, framed=True))
                self.stats.count("ApiVersions", len(payload) + 4, len(data), ErrorCode.UNSUPPORTED_VERSION)
                return data
            raise CloseConnection(f"unsupported api key {api_key} version {version}")
        request_class = _REQUESTS[api_key]
        try:
            request = request_class.decode(payload, version=version, header=True)
        except Exception as exc:
            self.stats.malformed_frames += 1
            raise CloseConnection(f"cannot parse {request_class.__name__} v{version}: {exc!r}") from None
        header = request.header
        ctx = RequestContext(api_key, version, correlation_id, header.client_id or "", client_host)
        response = await self._handlers[api_key](request, ctx)
        response.with_header(correlation_id=correlation_id)
        data = bytes(response.encode(header=True, framed=True))
        # Responses with a top-level error code (the group APIs, FindCoordinator v0-3) are counted by it.
        error_code = getattr(response, "error_code", 0) or 0
        self.stats.count(ApiKey(api_key).name, len(payload) + 4, len(data), error_code)
        return data

    def _api_key_ranges(self) -> list[Any]:
        return [
            ApiVersionsResponse.ApiVersion(api_key=int(k), min_version=lo, max_version=hi)
            for k, (lo, hi) in sorted(API_VERSIONS.items())
        ]

    # -- ApiVersions, Metadata, FindCoordinator --------------------------------------------------

    async def _api_versions(self, req: Any, ctx: RequestContext) -> Any:
        return ApiVersionsResponse(
            version=ctx.version, error_code=0, api_keys=self._api_key_ranges(), throttle_time_ms=0
        )

    async def _metadata(self, req: Any, ctx: RequestContext) -> Any:
        """Brokers from ZooKeeper; for each requested topic (or all) its partitions' leaders."""
        view = self.view
        v = ctx.version
        ids_to_names = {topic_id(name): name for name in view.topics}
        requested: list[tuple[str | None, uuid.UUID | None]]
        if req.topics is None or (v == 0 and not req.topics):
            # All topics: v0 asks with an empty list, v1+ with null (an empty list means none).
            requested = [(name, None) for name in sorted(view.topics)]
        else:
            # v10+ may name a topic by id alone.
            requested = [(t.name, t.topic_id if v >= 10 else None) for t in req.topics]
        topics = []
        for name, tid in requested:
            if name is None and tid is not None:
                name = ids_to_names.get(tid)
            if name is None or name not in view.topics:
                unknown = ErrorCode.UNKNOWN_TOPIC_ID if name is None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                topics.append(
                    MetadataResponse.MetadataResponseTopic(
                        error_code=unknown,
                        name=name,
                        topic_id=tid,
                        is_internal=False,
                        partitions=[],
                        authorized_operations=_NO_AUTHORIZED_OPERATIONS,
                    )
                )
                continue
            partitions = []
            for p in range(view.topics[name]):
                state = view.leader(name, p)
                alive = state is not None and state.leader in view.brokers
                leader = state.leader if alive and state is not None else -1
                partitions.append(
                    MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
                        error_code=ErrorCode.NONE if alive else ErrorCode.LEADER_NOT_AVAILABLE,
                        partition_index=p,
                        leader_id=leader,
                        leader_epoch=state.epoch if state is not None else -1,
                        replica_nodes=[leader] if alive else [],
                        isr_nodes=[leader] if alive else [],
                        offline_replicas=[],
                    )
                )
            topics.append(
                MetadataResponse.MetadataResponseTopic(
                    error_code=ErrorCode.NONE,
                    name=name,
                    topic_id=topic_id(name),
                    is_internal=name == OFFSETS_TOPIC,
                    partitions=partitions,
                    authorized_operations=_NO_AUTHORIZED_OPERATIONS,
                )
            )
        brokers = [
            MetadataResponse.MetadataResponseBroker(node_id=b.broker_id, host=b.host, port=b.port, rack=None)
            for b in sorted(view.brokers.values(), key=lambda b: b.broker_id)
        ]
        return MetadataResponse(
            version=v,
            throttle_time_ms=0,
            brokers=brokers,
            cluster_id=CLUSTER_ID,
            controller_id=view.controller_id,
            topics=topics,
            authorized_operations=_NO_AUTHORIZED_OPERATIONS,
            error_code=0,
        )

    def _coordinator_node(self, key: str, key_type: int) -> tuple[ErrorCode, int, str, int]:
        """(error, node id, host, port) of the leader of the group's offsets partition."""
        if key_type != 0:
            return ErrorCode.INVALID_REQUEST, -1, "", -1  # transaction/share coordinators: not here
        node = self.view.live_leader(OFFSETS_TOPIC, partition_for(key, self.offsets_partitions))
        if node is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
        return ErrorCode.NONE, node.broker_id, node.host, node.port

    async def _find_coordinator(self, req: Any, ctx: RequestContext) -> Any:
        key_type = req.key_type if ctx.version >= 1 else 0
        if ctx.version < 4:
            error, node_id, host, port = self._coordinator_node(req.key or "", key_type)
            return FindCoordinatorResponse(
                version=ctx.version,
                throttle_time_ms=0,
                error_code=error,
                error_message=None if error is ErrorCode.NONE else error.name,
                node_id=node_id,
                host=host,
                port=port,
            )
        coordinators = []
        for key in req.coordinator_keys or []:
            error, node_id, host, port = self._coordinator_node(key, key_type)
            coordinators.append(
                FindCoordinatorResponse.Coordinator(
                    key=key,
                    node_id=node_id,
                    host=host,
                    port=port,
                    error_code=error,
                    error_message=None if error is ErrorCode.NONE else error.name,
                )
            )
        return FindCoordinatorResponse(version=ctx.version, throttle_time_ms=0, coordinators=coordinators)

    # -- the group APIs --------------------------------------------------------------------------

    async def _await_callback(self, start: Callable[[Callable[[Any], None]], None]) -> Any:
        """Run ``start(callback)`` and wait until the coordinator calls back (maybe much later)."""
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()

        def callback(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        start(callback)
        self._schedule_timer()
        return await future

    async def _join_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        join = JoinRequest(
            group_id=req.group_id,
            member_id=req.member_id or "",
            protocol_type=req.protocol_type or "",
            protocols=tuple((p.name, bytes(p.metadata or b"")) for p in req.protocols or []),
            session_timeout_ms=req.session_timeout_ms,
            # JoinGroup v0 has no rebalance timeout: the session timeout stands in (apache/kafka#7072).
            rebalance_timeout_ms=req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
            group_instance_id=req.group_instance_id if v >= 5 else None,
            client_id=ctx.client_id,
            client_host=ctx.client_host,
            require_known_member_id=v >= 4,
            supports_skip_assignment=v >= 9,
            reason=req.reason if v >= 8 else None,
        )
        result: JoinResult = await self._await_callback(lambda cb: self.coordinator.join(join, cb))
        members = [
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id, metadata=m.metadata
            )
            for m in result.members
        ]
        return JoinGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            generation_id=result.generation_id,
            protocol_type=result.protocol_type,
            # Before v7 the protocol name is not nullable.
            protocol_name=result.protocol_name if v >= 7 else (result.protocol_name or ""),
            leader=result.leader_id,
            skip_assignment=result.skip_assignment,
            member_id=result.member_id,
            members=members,
        )

    async def _sync_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        sync = SyncRequest(
            group_id=req.group_id,
            member_id=req.member_id or "",
            generation_id=req.generation_id,
            assignments=tuple((a.member_id, bytes(a.assignment or b"")) for a in req.assignments or []),
            group_instance_id=req.group_instance_id if v >= 3 else None,
            protocol_type=req.protocol_type if v >= 5 else None,
            protocol_name=req.protocol_name if v >= 5 else None,
        )
        result: SyncResult = await self._await_callback(lambda cb: self.coordinator.sync(sync, cb))
        return SyncGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            assignment=result.assignment,
        )

    async def _heartbeat(self, req: Any, ctx: RequestContext) -> Any:
        error = self.coordinator.heartbeat(
            req.group_id,
            req.member_id or "",
            req.group_instance_id if ctx.version >= 3 else None,
            req.generation_id,
        )
        self._schedule_timer()
        return HeartbeatResponse(version=ctx.version, throttle_time_ms=0, error_code=error)

    async def _leave_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        if v < 3:
            leaving = [LeavingMember(req.member_id or "")]
        else:
            leaving = [
                LeavingMember(m.member_id or "", m.group_instance_id, m.reason if v >= 5 else None)
                for m in req.members or []
            ]
        result = self.coordinator.leave(req.group_id, leaving)
        self._schedule_timer()
        if v < 3:
            # One member, one error: v0-2 carry it at the top level.
            error = result.error if result.error is not ErrorCode.NONE else result.members[0][1]
            return LeaveGroupResponse(version=v, throttle_time_ms=0, error_code=error)
        return LeaveGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            members=[
                LeaveGroupResponse.MemberResponse(
                    member_id=who.member_id, group_instance_id=who.group_instance_id, error_code=error
                )
                for who, error in result.members
            ],
        )

    async def _offset_commit(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        commits = [
            OffsetCommit(
                topic=t.name,
                partition=p.partition_index,
                offset=p.committed_offset,
                leader_epoch=p.committed_leader_epoch if v >= 6 else -1,
                metadata=p.committed_metadata,
            )
            for t in req.topics or []
            for p in t.partitions or []
        ]
        results = self.coordinator.commit_offsets(
            req.group_id,
            req.member_id or "",
            req.group_instance_id if v >= 7 else None,
            req.generation_id_or_member_epoch,
            commits,
        )
        self._schedule_timer()
        by_topic: dict[str, list[Any]] = {}
        for commit, error in results:
            by_topic.setdefault(commit.topic, []).append(
                OffsetCommitResponse.OffsetCommitResponseTopic.OffsetCommitResponsePartition(
                    partition_index=commit.partition, error_code=error
                )
            )
        return OffsetCommitResponse(
            version=v,
            throttle_time_ms=0,
            topics=[
                OffsetCommitResponse.OffsetCommitResponseTopic(name=name, partitions=parts)
                for name, parts in by_topic.items()
            ],
        )

    def _fetch_group_offsets(
        self, group_id: str, topics: list[Any] | None
    ) -> tuple[ErrorCode, list[tuple[str, list[tuple[int, Any]]]]]:
        """(group error, [(topic, [(partition, OffsetAndMetadata)])]) in request order."""
        wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes or []]
        error, offsets = self.coordinator.fetch_offsets(group_id, wanted)
        grouped: dict[str, list[tuple[int, Any]]] = {}
        if wanted is None:
            for (topic, partition), om in sorted(offsets.items()):
                grouped.setdefault(topic, []).append((partition, om))
        else:
            for topic, partition in wanted:
                grouped.setdefault(topic, []).append((partition, offsets.get((topic, partition))))
        return error, list(grouped.items())

    async def _offset_fetch(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        if v < 8:
            error, topics = self._fetch_group_offsets(req.group_id, req.topics)
            cls = OffsetFetchResponse.OffsetFetchResponseTopic
            part_cls = cls.OffsetFetchResponsePartition
            # v0-1 have no top-level error: a group error goes into every partition.
            per_partition_error = error if v < 2 else ErrorCode.NONE
            out_topics = (
                []
                if error is not ErrorCode.NONE and v >= 2
                else [
                    cls(
                        name=topic,
                        partitions=[
                            part_cls(
                                partition_index=p,
                                committed_offset=om.offset if om is not None else -1,
                                committed_leader_epoch=om.leader_epoch if om is not None else -1,
                                metadata=om.metadata if om is not None else "",
                                error_code=per_partition_error,
                            )
                            for p, om in parts
                        ],
                    )
                    for topic, parts in topics
                ]
            )
            return OffsetFetchResponse(version=v, throttle_time_ms=0, topics=out_topics, error_code=error)
        groups = []
        gcls = OffsetFetchResponse.OffsetFetchResponseGroup
        tcls = gcls.OffsetFetchResponseTopics
        pcls = tcls.OffsetFetchResponsePartitions
        for g in req.groups or []:
            error, topics = self._fetch_group_offsets(g.group_id, g.topics)
            groups.append(
                gcls(
                    group_id=g.group_id,
                    error_code=error,
                    topics=[
                        tcls(
                            name=topic,
                            partitions=[
                                pcls(
                                    partition_index=p,
                                    committed_offset=om.offset if om is not None else -1,
                                    committed_leader_epoch=om.leader_epoch if om is not None else -1,
                                    metadata=om.metadata if om is not None else "",
                                    error_code=ErrorCode.NONE,
                                )
                                for p, om in parts
                            ],
                        )
                        for topic, parts in topics
                    ]
                    if error is ErrorCode.NONE
                    else [],
                )
            )
        return OffsetFetchResponse(version=v, throttle_time_ms=0, groups=groups)

    async def _describe_groups(self, req: Any, ctx: RequestContext) -> Any:
        cls = DescribeGroupsResponse.DescribedGroup
        mcls = cls.DescribedGroupMember
        groups = []
        for group_id in req.groups or []:
            d = self.coordinator.describe(group_id)
            groups.append(
                cls(
                    error_code=d.error,
                    error_message=None,
                    group_id=group_id,
                    group_state=d.state,
                    protocol_type=d.protocol_type,
                    protocol_data=d.protocol,
                    members=[
                        mcls(
                            member_id=m.member_id,
                            group_instance_id=m.group_instance_id,
                            client_id=m.client_id,
                            client_host=m.client_host,
                            member_metadata=m.metadata,
                            member_assignment=m.assignment,
                        )
                        for m in d.members
                    ],
                    authorized_operations=_NO_AUTHORIZED_OPERATIONS,
                )
            )
        return DescribeGroupsResponse(version=ctx.version, throttle_time_ms=0, groups=groups)

    async def _list_groups(self, req: Any, ctx: RequestContext) -> Any:
        states = (req.states_filter or []) if ctx.version >= 4 else []
        error, groups = self.coordinator.list_groups(states)
        cls = ListGroupsResponse.ListedGroup
        return ListGroupsResponse(
            version=ctx.version,
            throttle_time_ms=0,
            error_code=error,
            groups=[cls(group_id=g, protocol_type=pt, group_state=state) for g, pt, state in groups],
        )

    # -- the data plane: empty partitions --------------------------------------------------------

    def _partition_error(self, topic: str, partition: int) -> ErrorCode:
        if topic not in self.view.topics or not 0 <= partition < self.view.topics[topic]:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        state = self.view.leader(topic, partition)
        if state is None or state.leader != self.config.broker_id:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        return ErrorCode.NONE

    def _leader_epoch(self, topic: str, partition: int) -> int:
        state = self.view.leader(topic, partition)
        return -1 if state is None else state.epoch

    async def _list_offsets(self, req: Any, ctx: RequestContext) -> Any:
        """Every partition is empty: earliest and latest are offset 0."""
        tcls = ListOffsetsResponse.ListOffsetsTopicResponse
        pcls = tcls.ListOffsetsPartitionResponse
        topics = []
        for t in req.topics or []:
            parts = []
            for p in t.partitions or []:
                error = self._partition_error(t.name, p.partition_index)
                parts.append(
                    pcls(
                        partition_index=p.partition_index,
                        error_code=error,
                        timestamp=-1,
                        offset=0 if error is ErrorCode.NONE else -1,
                        leader_epoch=self._leader_epoch(t.name, p.partition_index),
                    )
                )
            topics.append(tcls(name=t.name, partitions=parts))
        return ListOffsetsResponse(version=ctx.version, throttle_time_ms=0, topics=topics)

    async def _fetch(self, req: Any, ctx: RequestContext) -> Any:
        """No records ever; wait up to ``max_wait_ms`` like a long poll on an idle partition."""
        tcls = FetchResponse.FetchableTopicResponse
        pcls = tcls.PartitionData
        any_error = False
        responses = []
        for t in req.topics or []:
            parts = []
            for p in t.partitions or []:
                error = self._partition_error(t.topic, p.partition)
                any_error |= error is not ErrorCode.NONE
                end = max(p.fetch_offset, 0) if error is ErrorCode.NONE else -1
                parts.append(
                    pcls(
                        partition_index=p.partition,
                        error_code=error,
                        high_watermark=end,
                        last_stable_offset=end,
                        log_start_offset=0 if error is ErrorCode.NONE else -1,
                        aborted_transactions=None,
                        preferred_read_replica=-1,
                        records=b"",
                    )
                )
            responses.append(tcls(topic=t.topic, partitions=parts))
        if not any_error:
            wait_ms = min(max(req.max_wait_ms, 0), _MAX_FETCH_WAIT_MS)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait_ms / 1000.0)
        # Fetch sessions (v7+): session id 0 means none was created, so clients send full fetches.
        return FetchResponse(
            version=ctx.version, throttle_time_ms=0, error_code=0, session_id=0, responses=responses
        )

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

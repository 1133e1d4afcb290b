"""An asyncio Kafka client: connections, version negotiation, request/response correlation.

Every message is a kafka-python ``kafka.protocol`` class (generated from Kafka's JSON schemas) and
:class:`kafka.protocol.parser.KafkaProtocol` adds headers and checks correlation ids; this module
only moves frames and futures. Per connection, Kafka answers requests in the order they were sent,
so responses are matched to a FIFO of waiting futures.

A request that times out or is cancelled closes its connection, as the Java client does: the
broker may still be holding it (a parked JoinGroup) and everything sent after it on the same
connection would wait behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import kafka.errors as Errors
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    FindCoordinatorRequest,
    MetadataRequest,
)
from kafka.protocol.parser import KafkaProtocol

from coordinator_mode.waiting import run_within, wait_within

log = logging.getLogger(__name__)

#: Largest response frame we accept (Kafka's ``socket.request.max.bytes`` default is 100 MiB).
MAX_FRAME_BYTES = 100 * 1024 * 1024
#: Group-coordinator key type in FindCoordinator (v1+).
GROUP_KEY_TYPE = 0
_CLIENT_SOFTWARE = ("rebalance-lab", "0.1.0")


@dataclass
class ClientApiCounter:
    """Traffic of one API: requests sent and bytes each way (frames, including the size prefix)."""

    requests: int = 0
    bytes_sent: int = 0
    responses: int = 0
    bytes_received: int = 0


class RequestStats:
    """Per-API counters shared by every connection of one member; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_api: dict[str, ClientApiCounter] = {}

    def _counter(self, api: str) -> ClientApiCounter:
        return self._by_api.setdefault(api, ClientApiCounter())

    def sent(self, api: str, nbytes: int) -> None:
        with self._lock:
            counter = self._counter(api)
            counter.requests += 1
            counter.bytes_sent += nbytes

    def received(self, api: str, nbytes: int) -> None:
        with self._lock:
            counter = self._counter(api)
            counter.responses += 1
            counter.bytes_received += nbytes

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {api: asdict(counter) for api, counter in sorted(self._by_api.items())}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    node_id: int | None = None

    def __str__(self) -> str:
        node = "" if self.node_id is None else f"node {self.node_id} "
        return f"{node}{self.host}:{self.port}"


def parse_bootstrap(servers: str) -> list[BrokerAddress]:
    """``host:port,host:port`` -> addresses (IPv6 as ``[::1]:9092``)."""
    addresses = []
    for item in servers.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap: expected host:port, got {item!r}")
        addresses.append(BrokerAddress(host.strip("[]"), int(port)))
    if not addresses:
        raise ValueError("bootstrap: expected at least one host:port")
    return addresses


@dataclass
class _Pending:
    api: str
    future: asyncio.Future[Any]


class KafkaConnection:
    """One TCP connection to one broker. Create with :meth:`open`."""

    def __init__(
        self,
        address: BrokerAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_id: str,
        stats: RequestStats,
        request_timeout: float,
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._parser = KafkaProtocol(client_id=client_id, ident=str(address))
        self._stats = stats
        self._request_timeout = request_timeout
        self._pending: deque[_Pending] = deque()
        self._versions: dict[int, tuple[int, int]] = {}
        self._closed = False
        self._close_reason: Exception | None = None
        self._read_task = asyncio.get_running_loop().create_task(self._read_routine())

    @classmethod
    async def open(
        cls,
        address: BrokerAddress,
        *,
        client_id: str,
        stats: RequestStats,
        request_timeout: float,
    ) -> KafkaConnection:
        """Connect and negotiate API versions (ApiVersions) before returning."""
        try:
            reader, writer = await run_within(
                asyncio.open_connection(address.host, address.port), request_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise Errors.KafkaConnectionError(f"connect to {address} failed: {exc!r}") from exc
        conn = cls(address, reader, writer, client_id=client_id, stats=stats, request_timeout=request_timeout)
        try:
            await conn._negotiate_versions()
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def closed(self) -> bool:
        return self._closed

    async def _negotiate_versions(self) -> None:
        # Kafka answers an ApiVersions version it does not know with UNSUPPORTED_VERSION and its own
        # ranges (in the v0 layout), so asking for our newest first costs at most one retry.
        version = ApiVersionsRequest.max_version
        for _ in range(2):
            request = ApiVersionsRequest(
                client_software_name=_CLIENT_SOFTWARE[0], client_software_version=_CLIENT_SOFTWARE[1]
            )
            request.API_VERSION = version
            response = await self.send(request)
            ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
            if response.error_code == 0:
                self._versions = ranges
                return
            if (
                response.error_code != Errors.UnsupportedVersionError.errno
                or ApiVersionsRequest.API_KEY not in ranges
            ):
                raise Errors.for_code(response.error_code)(f"ApiVersions from {self.address}")
            version = min(version, ranges[ApiVersionsRequest.API_KEY][1])
        raise Errors.UnsupportedVersionError(f"ApiVersions negotiation with {self.address} failed")

    def version_for(self, request: ApiMessage) -> int:
        """The newest version both we (the class, capped by ``max_version=``) and the broker speak."""
        ours = type(request).max_version
        cap = getattr(request, "_max_version", None)
        if cap is not None:
            ours = min(ours, cap)
        floor = getattr(request, "_min_version", None) or 0
        broker = self._versions.get(request.API_KEY)
        if broker is None or broker[0] > ours or broker[1] < floor:
            raise Errors.UnsupportedVersionError(
                f"{type(request).__name__}: we speak {floor}-{ours}, {self.address} speaks {broker}"
            )
        return min(ours, broker[1])

    async def send(self, request: ApiMessage, timeout: float | None = None) -> Any:
        """Send ``request`` and wait for its response (raises KafkaConnectionError / RequestTimedOutError)."""
        if self._closed:
            raise Errors.KafkaConnectionError(f"connection to {self.address} is closed: {self._close_reason}")
        if request.API_VERSION is None:
            request.API_VERSION = self.version_for(request)
        api = type(request).__name__.removesuffix("Request")
        self._parser.send_request(request)
        data = self._parser.send_bytes()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(api, future))
        self._stats.sent(api, len(data))
        try:
            self._writer.write(data)
            answered = await wait_within(future, timeout or self._request_timeout)
        except asyncio.CancelledError:
            future.cancel()
            self.close(Errors.KafkaConnectionError(f"{api} to {self.address} was abandoned"))
            raise
        if not answered:
            future.cancel()
            self.close(Errors.RequestTimedOutError(f"{api} to {self.address}"))
            raise Errors.RequestTimedOutError(f"{api} to {self.address} timed out")
        return future.result()

    async def _read_routine(self) -> None:
        reason: Exception = Errors.KafkaConnectionError(f"{self.address} closed the connection")
        try:
            while True:
                head = await self._reader.readexactly(4)
                size = int.from_bytes(head, "big", signed=True)
                if not 0 <= size <= MAX_FRAME_BYTES:
                    raise Errors.InvalidReceiveError(f"frame of {size} bytes from {self.address}")
                body = await self._reader.readexactly(size)
                if not self._pending:
                    raise Errors.CorrelationIdError(f"unsolicited response from {self.address}")
                pending = self._pending.popleft()
                self._stats.received(pending.api, 4 + size)
                ((_, response),) = self._parser.receive_bytes(head + body)
                if not pending.future.done():
                    pending.future.set_result(response)
        except asyncio.CancelledError:
            reason = Errors.KafkaConnectionError(f"connection to {self.address} closed")
        except (asyncio.IncompleteReadError, OSError) as exc:
            reason = Errors.KafkaConnectionError(f"{self.address}: {exc!r}")
        except Errors.KafkaError as exc:
            log.warning("protocol error on %s: %r", self.address, exc)
            reason = exc
        finally:
            self._shutdown(reason)

    def _shutdown(self, reason: Exception) -> None:
        if not self._closed:
            self._closed = True
            self._close_reason = reason
            log.debug("closing connection to %s: %s", self.address, reason)
        with contextlib.suppress(Exception):
            self._writer.close()
        while self._pending:
            future = self._pending.popleft().future
            if not future.done():
                future.set_exception(
                    type(reason)(str(reason)) if isinstance(reason, Errors.KafkaError) else reason
                )

    def close(self, reason: Exception | None = None) -> None:
        self._shutdown(reason or Errors.KafkaConnectionError(f"connection to {self.address} closed"))
        if not self._read_task.done():
            self._read_task.cancel()


class KafkaClient:
    """Bootstrap servers, the brokers Metadata names, and one connection per broker address."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        stats: RequestStats,
        request_timeout: float,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.client_id = client_id
        self.stats = stats
        self.request_timeout = request_timeout
        self.brokers: dict[int, BrokerAddress] = {}
        #: partition counts of the topics the last Metadata answers named (the Java client's
        #: ``Metadata`` cache, which the leader assigns from)
        self.partition_counts: dict[str, int] = {}
        self._connections: dict[tuple[str, int], KafkaConnection] = {}
        self._rotation = itertools.count()

    async def connection(self, address: BrokerAddress) -> KafkaConnection:
        key = (address.host, address.port)
        conn = self._connections.get(key)
        if conn is None or conn.closed:
            conn = await KafkaConnection.open(
                address, client_id=self.client_id, stats=self.stats, request_timeout=self.request_timeout
            )
            self._connections[key] = conn
        return conn

    def drop(self, address: BrokerAddress) -> None:
        """Close and forget the connection to ``address`` (after an error on it)."""
        conn = self._connections.pop((address.host, address.port), None)
        if conn is not None:
            conn.close()

    async def any_connection(self) -> KafkaConnection:
        """A connection to some live broker: known brokers first, then the bootstrap list, rotating
        the starting point so a dead broker does not stay first in line."""
        candidates = list(dict.fromkeys([*self.brokers.values(), *self.bootstrap]))
        start = next(self._rotation) % len(candidates)
        errors = []
        for address in candidates[start:] + candidates[:start]:
            try:
                return await self.connection(address)
            except Errors.KafkaError as exc:
                errors.append(exc)
        raise Errors.KafkaConnectionError(f"no broker reachable: {errors}")

    async def metadata(self, topics: list[str] | None) -> Any:
        """Metadata for ``topics`` (``None``: all topics); also refreshes the broker list."""
        conn = await self.any_connection()
        request = MetadataRequest(
            topics=None if topics is None else [MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
            include_cluster_authorized_operations=False,
        )
        try:
            response = await conn.send(request)
        except Errors.KafkaConnectionError:
            self.drop(conn.address)
            raise
        self.brokers = {b.node_id: BrokerAddress(b.host, b.port, b.node_id) for b in response.brokers}
        self.partition_counts.update(
            {t.name: len(t.partitions) for t in response.topics if t.error_code == 0}
        )
        return response

    async def partitions_per_topic(self, topics: list[str]) -> dict[str, int]:
        """Partition counts of the topics that exist (unknown topics are left out), from the cache;
        a Metadata request only when a topic is not in it, as the Java client requests an update
        for new topics only (``ConsumerCoordinator.updateGroupSubscription``)."""
        wanted = sorted(set(topics))
        if any(t not in self.partition_counts for t in wanted):
            await self.metadata(wanted)
        return {t: self.partition_counts[t] for t in wanted if t in self.partition_counts}

    async def find_coordinator(self, group: str) -> BrokerAddress:
        """FindCoordinator (key_type 0) on any live broker; raises the error Kafka answers with."""
        conn = await self.any_connection()
        request = FindCoordinatorRequest(key=group, key_type=GROUP_KEY_TYPE, coordinator_keys=[group])
        try:
            response = await conn.send(request)
        except Errors.KafkaConnectionError:
            self.drop(conn.address)
            raise
        # v4+ batches keys in `coordinators`; v0-3 answer at the top level.
        result = response.coordinators[0] if request.API_VERSION >= 4 else response
        if result.error_code != 0:
            raise Errors.for_code(result.error_code)(f"FindCoordinator({group}) via {conn.address}")
        address = BrokerAddress(result.host, result.port, result.node_id)
        self.brokers[result.node_id] = address
        return address

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

"""A userspace TCP proxy for loopback links: delay and jitter per direction, blackhole, cut.

Members connect to the proxy instead of ZooKeeper or a broker; every byte then passes through an
asyncio loop that runs in its own thread, so the runner's thread changes the link at any time::

    with Proxy(("127.0.0.1", 2181)) as proxy:        # listens on a free port
        connect_to(proxy.address)
        proxy.set_rtt(10, jitter_ms=2)                # +5 ms each way, +0..1 ms jitter each way
        proxy.blackhole()                             # bytes are held, connections stay open
        proxy.heal()                                  # held bytes are delivered, in order
        proxy.cut()                                   # connections reset, new ones refused
        proxy.heal()

Delay applies to bytes read after it was set; each chunk is delivered at ``read time + delay +
uniform(0, jitter)`` but never before an earlier chunk (TCP keeps order), so jitter never
reorders. A blackhole stops delivery in both directions without closing anything, as a network
partition does; ``cut`` resets every connection (RST) and resets new ones until ``heal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

log = logging.getLogger(__name__)

_CHUNK = 65536
_CALL_TIMEOUT_S = 10.0
T = TypeVar("T")


class Direction(StrEnum):
    UP = "up"  # client -> target
    DOWN = "down"  # target -> client


class LinkState(StrEnum):
    OPEN = "open"
    BLACKHOLE = "blackhole"  # bytes held until heal
    CUT = "cut"  # connections reset, new ones refused until heal


@dataclass(frozen=True)
class Delay:
    ms: float = 0.0
    jitter_ms: float = 0.0  # extra uniform(0, jitter_ms), so the delay is never below ``ms``


@dataclass(frozen=True)
class ProxyStats:
    connections: int  # accepted since start
    open_connections: int
    bytes_up: int
    bytes_down: int


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: what a cut link looks like to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)
        self._cancel()

    def close(self) -> None:
        self.client.close()
        self.upstream.close()
        self._cancel()

    def _cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


class Proxy:
    """Forwards one listening port to ``target``; all public methods are safe from any thread."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.target = target
        self.name = name or f"proxy->{target[0]}:{target[1]}"
        self._listen = (listen_host, listen_port)
        self._random = random.Random(seed)
        self._delay = {Direction.UP: Delay(), Direction.DOWN: Delay()}
        self._state = LinkState.OPEN
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._connections: set[_Connection] = set()
        self._accepted = 0
        self._bytes = {Direction.UP: 0, Direction.DOWN: 0}
        self.address: tuple[str, int] = self._listen

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Proxy:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, ready), name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        self._call(self._serve)
        log.info("%s listening on %s:%d", self.name, *self.address)
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, *self._listen)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (host, port)

    @property
    def port(self) -> int:
        return self.address[1]

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop and its thread. Idempotent."""
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            with contextlib.suppress(RuntimeError, TimeoutError):
                self._call(self._shutdown)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)
        self._loop = None
        self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for conn in list(self._connections):
            conn.close()
        pending = [t for conn in self._connections for t in conn.tasks]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._connections.clear()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control, from any thread ----------------------------------------------------------------

    def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(_CALL_TIMEOUT_S)  # type: ignore[arg-type]

    def set_delay(self, ms: float, jitter_ms: float = 0.0, direction: Direction | None = None) -> None:
        """Delay bytes read from now on by ``ms`` (+ uniform(0, jitter_ms)) in one or both directions."""
        if ms < 0 or jitter_ms < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {ms}, {jitter_ms}")
        for d in [direction] if direction is not None else list(Direction):
            self._delay[d] = Delay(ms, jitter_ms)

    def set_rtt(self, rtt_ms: float, jitter_ms: float = 0.0) -> None:
        """Add ``rtt_ms`` of round trip: half in each direction (jitter likewise split)."""
        self.set_delay(rtt_ms / 2, jitter_ms / 2)

    def delay(self, direction: Direction) -> Delay:
        return self._delay[direction]

    @property
    def state(self) -> LinkState:
        return self._state

    def blackhole(self) -> None:
        """Hold every byte in both directions; connections stay open."""
        self._call(self._set_state(LinkState.BLACKHOLE))

    def cut(self) -> None:
        """Reset every connection and reset new ones until :meth:`heal`."""
        self._call(self._set_state(LinkState.CUT))

    def heal(self) -> None:
        """Back to forwarding; held bytes are delivered in order."""
        self._call(self._set_state(LinkState.OPEN))

    def _set_state(self, state: LinkState) -> Callable[[], Awaitable[None]]:
        async def apply() -> None:
            assert self._flowing is not None
            self._state = state
            if state == LinkState.OPEN:
                self._flowing.set()
            else:
                self._flowing.clear()
            if state == LinkState.CUT:
                for conn in list(self._connections):
                    conn.reset()
            log.info("%s: link %s", self.name, state)

        return apply

    def stats(self) -> ProxyStats:
        return ProxyStats(
            self._accepted, len(self._connections), self._bytes[Direction.UP], self._bytes[Direction.DOWN]
        )

    # -- forwarding ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted += 1
        if self._state == LinkState.CUT:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.info("%s: target unreachable (%s); resetting the client", self.name, exc)
            _reset(writer)
            return
        conn = _Connection(writer, up_writer)
        if self._state == LinkState.CUT:  # cut while we were connecting
            conn.reset()
            return
        self._connections.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, Direction.UP)),
            asyncio.create_task(self._pipe(up_reader, writer, Direction.DOWN)),
        ]
        try:
            done, _ = await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                conn.reset()  # one side failed: the other sees a reset too, as through a real link
        finally:
            self._connections.discard(conn)
            for w in (writer, up_writer):
                w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        """Read chunks as they come; a second task delivers each at its due time."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(queue, writer, direction))
        last_due = 0.0
        try:
            while True:
                data = await reader.read(_CHUNK)
                delay = self._delay[direction]
                due = loop.time() + (delay.ms + self._random.uniform(0, delay.jitter_ms)) / 1000
                last_due = max(due, last_due)  # jitter must not reorder a byte stream
                await queue.put((last_due, data))
                if not data:
                    break
            await deliver
        finally:
            if not deliver.done():
                deliver.cancel()

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        loop = asyncio.get_running_loop()
        assert self._flowing is not None
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            if not data:  # the sender closed its side: pass the half-close on
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            self._bytes[direction] += len(data)  # before the write: a reader never sees more than counted
            writer.write(data)
            await writer.drain()


L = TypeVar("L")  # a link's handle: a Proxy, or what a backend keeps for one


def links_meant(target: str, zk: list[tuple[str, L]], brokers: list[tuple[str, L]]) -> list[tuple[str, L]]:
    """The member links a fault's target means: ``all``, ``zk``, ``brokers``, or one by its name
    (``zk-<i>``, ``broker-<i>``); the same on every backend."""
    if target == "all":
        return zk + brokers
    if target == "zk":
        return zk
    if target == "brokers":
        return brokers
    return [(n, p) for n, p in zk + brokers if n == target]

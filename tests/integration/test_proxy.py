"""The TCP proxy on loopback, in front of a tiny echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from bench.services.proxy import Direction, LinkState, Proxy
from tests.conftest import wait_until

# Generous: only bounds how long a failing test waits, never what passes.
RECV_TIMEOUT_S = 10.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionResetError:
            pass  # the proxy cut the link


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[Proxy]:
    with Proxy(echo, seed=7) as p:
        yield p


def connect(proxy: Proxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=RECV_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            # Not a ConnectionError: a test expecting a reset (RST) must not pass on a clean close.
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def round_trip(sock: socket.socket, payload: bytes) -> float:
    """Send ``payload``, assert that exactly it comes back; the seconds that took."""
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def test_forwards_both_ways(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        payload = bytes(range(256)) * 1000
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
    stats = proxy.stats()
    assert stats.connections == 1
    assert stats.bytes_up == len(payload) and stats.bytes_down == len(payload)


def test_delay_adds_at_least_the_configured_time_each_way(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        proxy.set_delay(60, direction=Direction.UP)
        proxy.set_delay(40, direction=Direction.DOWN)
        assert round_trip(sock, b"ping") >= 0.100
        proxy.set_rtt(30, jitter_ms=20)  # 15 ms + 0..10 ms each way
        assert proxy.delay(Direction.UP).ms == 15 and proxy.delay(Direction.DOWN).jitter_ms == 10
        assert round_trip(sock, b"ping") >= 0.030


def test_jitter_never_reorders_bytes(proxy: Proxy) -> None:
    proxy.set_delay(1, jitter_ms=20)
    with connect(proxy) as sock:
        chunks = [f"{i:05d}".encode() for i in range(200)]
        for chunk in chunks:
            sock.sendall(chunk)
        assert recv_exactly(sock, 5 * len(chunks)) == b"".join(chunks)


def test_blackhole_holds_bytes_and_heal_delivers_them(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        round_trip(sock, b"before")  # echoed through the proxy
        proxy.blackhole()
        assert proxy.state == LinkState.BLACKHOLE
        sock.sendall(b"held")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(16)  # nothing comes through while the link is a blackhole
        proxy.heal()
        sock.settimeout(RECV_TIMEOUT_S)
        assert recv_exactly(sock, 4) == b"held"
        round_trip(sock, b"after")  # echoed through the proxy


def test_cut_resets_connections_and_refuses_new_ones_until_healed(proxy: Proxy) -> None:
    sock = connect(proxy)
    round_trip(sock, b"x")  # echoed through the proxy
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        sock.sendall(b"y")
        recv_exactly(sock, 1)
    sock.close()
    # The proxy accepts and resets at once: the reset comes right after the connect.
    with pytest.raises(ConnectionResetError), connect(proxy) as refused:
        recv_exactly(refused, 1)
    proxy.heal()
    with connect(proxy) as again:
        round_trip(again, b"z")  # echoed through the proxy


def test_settings_change_from_another_thread_during_traffic(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        changer = threading.Thread(target=proxy.set_delay, args=(50,))
        changer.start()
        changer.join()
        assert round_trip(sock, b"later") >= 0.100


def test_stop_closes_everything(echo: tuple[str, int]) -> None:
    p = Proxy(echo).start()
    sock = connect(p)
    round_trip(sock, b"x")  # echoed through the proxy
    address = p.address
    p.stop()
    assert sock.recv(1) == b"", "the proxy closed our connection"
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=RECV_TIMEOUT_S)
    p.stop()  # idempotent
    with pytest.raises(RuntimeError):
        p.heal()


def test_unreachable_target_resets_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = placeholder.getsockname()[:2]  # bound, never listening: connections are refused
        with Proxy(dead) as p:
            with pytest.raises(ConnectionResetError), connect(p) as sock:  # reset right after the connect
                recv_exactly(sock, 1)
            wait_until(lambda: p.stats().connections == 1, what="the proxy to count the attempt")

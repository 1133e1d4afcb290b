"""A launcher for a cluster of broker processes on loopback: start, kill, pause, restart, stop.

Each broker is ``python -m bench -v broker ...`` in its own session (``start_new_session``), on a free
port, with its state (stdout log, ``broker_stats.json``) in ``<base_dir>/broker-<id>/`` and its own
log directory, its replicas of ``__consumer_offsets``, in ``<base_dir>/broker-<id>/logs/`` (no
directory is shared: the offsets topic is replicated between the brokers, with replication factor
``min(3, size)``). The brokers' ids, ports and pids are
recorded in ``<base_dir>/brokers.json`` so another process can stop them later
(:func:`stop_recorded`, used by ``rebalance-lab cluster down``).

Example::

    with BrokerCluster(zk.connect_string, 3, tmp, topics={"orders": 6}) as cluster:
        consumer = KafkaConsumer("orders", group_id="g", bootstrap_servers=cluster.bootstrap)
        cluster.coordinator_for("g").kill()
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kafka.protocol.admin import DescribeGroupsRequest
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest
from kazoo.client import KazooClient

from bench.services.catalog import write_catalogs
from bench.services.polling import wait_until
from bench.services.ports import free_port
from bench.services.process import ChildProcess, terminate_pid
from coordinator_mode.broker.config import BrokerConfig
from coordinator_mode.broker.controller import (
    DEFAULT_ZK_ROOT,
    OFFSETS_TOPIC,
    ClusterView,
    read_view,
)
from coordinator_mode.hashing import DEFAULT_OFFSETS_PARTITIONS, partition_for

log = logging.getLogger(__name__)

RECORD_FILE = "brokers.json"


@dataclass
class BrokerProcess:
    """One broker process; ``kill``/``stop``/``restart`` act on it alone."""

    id: int
    port: int
    state_dir: Path
    command: list[str]
    _child: ChildProcess = field(init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._child = ChildProcess(f"broker {self.id}")

    @property
    def log_dir(self) -> Path:
        """The broker's own log directory (its replicas of the offsets partitions)."""
        return self.state_dir / "logs"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._child.proc

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "broker.log"

    @property
    def stats_path(self) -> Path:
        return self.state_dir / "broker_stats.json"

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_log
        proc = self._child.spawn(self.command, stdout=self._log)
        log.info("broker %d started (pid %d, port %d)", self.id, proc.pid, self.port)

    def is_running(self) -> bool:
        return self._child.running()

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no ZooKeeper goodbye; its session must expire."""
        if self.is_running():
            log.info("broker %d killed (pid %s)", self.id, self.pid)
        self._child.kill()
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (the broker closes its ZooKeeper session at once), SIGKILL after ``grace``."""
        # wake=False: a paused broker is not woken to shut down cleanly; it is killed after ``grace``.
        self._child.terminate(grace, wake=False)
        self._close_log()

    def pause(self) -> None:
        """SIGSTOP, returning once every thread has stopped: a long GC pause, sockets left open."""
        self._child.pause()

    def resume(self) -> None:
        self._child.resume()

    def restart(self) -> None:
        """Stop it if running, then start it again with the same id and port."""
        self.stop()
        self.start()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stats(self) -> dict[str, Any] | None:
        """The broker's last ``broker_stats.json`` (None before it wrote one)."""
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    def ask_stats(self) -> float | None:
        """Ask the broker to write its counters now (SIGUSR1); the wall time asked, or None when this
        process cannot be asked (not running, or no stats file of its own yet: it may not handle the
        signal yet). A paused broker writes when it resumes."""
        last = self.stats()
        if self.pid is None or not self.is_running() or last is None or last.get("pid") != self.pid:
            return None
        asked = time.time()
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return None
        return asked

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def send_request(address: str, request: Any, timeout: float = 10.0, client_id: str = "rebalance-lab") -> Any:
    """Send one kafka-python request object (with its version set) to ``host:port``; its response.

    A blocking one-shot client for the harness and tests (e.g. DescribeGroups on a coordinator).
    """
    host, _, port = address.rpartition(":")
    request.with_header(correlation_id=1, client_id=client_id)
    response_class = request.header.get_response_class()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(bytes(request.encode(header=True, framed=True)))
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        payload = _recv_exactly(sock, size)
    return response_class.decode(payload, header=True)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks += chunk
    return bytes(chunks)


def placement_settled(view: ClusterView, running: Iterable[int], topics: Iterable[str]) -> bool:
    """Every running broker registered; every partition of ``topics`` and the offsets topic led by
    a live broker; every offsets partition's replicas all in its ISR (replication caught up); and the
    controller has spread each data topic evenly over the running brokers (a broker that registered
    late gets its share a moment later)."""
    running = set(running)
    if not running <= set(view.brokers):
        return False
    for topic in [OFFSETS_TOPIC, *topics]:
        n = view.topics.get(topic)
        if n is None or any(view.live_leader(topic, p) is None for p in range(n)):
            return False
        if topic == OFFSETS_TOPIC:
            states = view.leaders.get(topic, {})
            if any((set(states[p].replicas) & running) - set(states[p].isr) for p in range(n)):
                return False
            continue
        counts = Counter(s.leader for s in view.leaders.get(topic, {}).values())
        if max(counts[b] for b in running) - min(counts[b] for b in running) > 1:
            return False
    return True


class BrokerCluster:
    """``size`` brokers sharing ZooKeeper ``zk_connect`` under ``zk_root``, each with its own log directory.

    Args:
        zk_connect: ZooKeeper connect string.
        size: number of brokers (ids 1..size).
        base_dir: where logs, state and ``brokers.json`` go.
        topics: data topics to create in the catalog (name -> partitions) before the brokers start.
        offsets_partitions: ``offsets.topic.num.partitions``.
        initial_rebalance_delay_ms: ``group.initial.rebalance.delay.ms``.
        zk_root: the cluster's root znode.
        zk_session_timeout_ms: the brokers' ZooKeeper session timeout (how fast a dead broker is noticed).
        extra_args: more ``rebalance-lab broker`` options for every broker.
        advertise: called with a broker's id and listen port before it starts; returns the port the
            broker advertises instead (e.g. a proxy's, so clients reach it through the proxy).
    """

    def __init__(
        self,
        zk_connect: str,
        size: int,
        base_dir: Path,
        topics: dict[str, int] | None = None,
        offsets_partitions: int = DEFAULT_OFFSETS_PARTITIONS,
        initial_rebalance_delay_ms: int = BrokerConfig.initial_rebalance_delay_ms,
        zk_root: str = DEFAULT_ZK_ROOT,
        zk_session_timeout_ms: int = BrokerConfig.zk_session_timeout_ms,
        extra_args: tuple[str, ...] = (),
        advertise: Callable[[int, int], int] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.zk_connect = zk_connect
        self.size = size
        self.base_dir = Path(base_dir)
        self.topics = dict(topics or {})
        self.offsets_partitions = offsets_partitions
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.zk_root = zk_root
        self.zk_session_timeout_ms = zk_session_timeout_ms
        self.extra_args = tuple(extra_args)
        self.advertise = advertise
        self.brokers: list[BrokerProcess] = []
        self._zk: KazooClient | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def _command(
        self, broker_id: int, port: int, state_dir: Path, advertised_port: int | None = None
    ) -> list[str]:
        advertised = [] if advertised_port is None else ["--advertised-port", str(advertised_port)]
        return [
            sys.executable,
            "-m",
            "bench",
            "-v",
            "broker",
            "--id",
            str(broker_id),
            "--zk",
            self.zk_connect,
            "--port",
            str(port),
            "--log-dir",
            str(state_dir / "logs"),
            "--offsets-replication-factor",
            str(min(3, self.size)),
            "--state-dir",
            str(state_dir),
            "--offsets-partitions",
            str(self.offsets_partitions),
            "--initial-rebalance-delay-ms",
            str(self.initial_rebalance_delay_ms),
            "--zk-root",
            self.zk_root,
            "--zk-session-timeout-ms",
            str(self.zk_session_timeout_ms),
            *advertised,
            *self.extra_args,
        ]

    @property
    def zk(self) -> KazooClient:
        if self._zk is None:
            self._zk = KazooClient(hosts=self.zk_connect, timeout=10.0)
            self._zk.start(timeout=30.0)
        return self._zk

    def start(self, timeout: float = 60.0) -> BrokerCluster:
        """Spawn every broker and wait until all registered and every partition has a live leader."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.topics:
            write_catalogs(self.zk, self.topics, broker_root=self.zk_root)
        try:
            for broker_id in range(1, self.size + 1):
                state_dir = self.base_dir / f"broker-{broker_id}"
                port = free_port()
                advertised = None if self.advertise is None else self.advertise(broker_id, port)
                command = self._command(broker_id, port, state_dir, advertised)
                broker = BrokerProcess(broker_id, port, state_dir, command)
                self.brokers.append(broker)  # recorded before it starts: stopped even if start fails
                broker.start()
            self._record()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> ClusterView:
        """Every running broker registered; every partition of every topic led by a live broker."""
        running = {b.id for b in self.brokers if b.is_running()}

        def ready() -> ClusterView | None:
            for b in self.brokers:
                if b.proc is not None and b.proc.poll() is not None and b.id in running:
                    raise RuntimeError(f"broker {b.id} exited with {b.proc.returncode}:\n{b.log_tail()}")
            view = read_view(self.zk, self.zk_root)
            if not placement_settled(view, running, self.topics):
                return None
            return view if all(self._serves(b, view) for b in self.brokers if b.id in running) else None

        return wait_until(
            ready, timeout, 0.1, "brokers to register, lead an even share of every topic and all say so"
        )

    @staticmethod
    def _serves(broker: BrokerProcess, view: ClusterView) -> bool:
        """The broker's own Metadata names the leaders ZooKeeper records: each broker learns them
        through its watches a moment after the controller writes them, and FindCoordinator answers
        from that view (COORDINATOR_NOT_AVAILABLE until then)."""
        try:
            answer = send_request(broker.address, MetadataRequest(version=1, topics=None), timeout=5.0)
        except OSError:
            return False
        served = {
            (t.name, p.partition_index): p.leader_id
            for t in answer.topics
            if t.error_code == 0
            for p in t.partitions
            if p.error_code == 0
        }
        return all(
            served.get((topic, p)) == state.leader
            for topic, states in view.leaders.items()
            for p, state in states.items()
        )

    def stop(self) -> None:
        """Stop every broker (SIGTERM, then SIGKILL); idempotent."""
        for broker in self.brokers:
            broker.stop()
        if self._zk is not None:
            try:
                self._zk.stop()
                self._zk.close()
            finally:
                self._zk = None
        record = self.base_dir / RECORD_FILE
        if record.exists():
            record.unlink()

    def __enter__(self) -> BrokerCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _record(self) -> None:
        data = {
            "zk_connect": self.zk_connect,
            "zk_root": self.zk_root,
            "bootstrap": self.bootstrap,
            "brokers": [
                {"id": b.id, "port": b.port, "pid": b.pid, "match": str(b.state_dir)} for b in self.brokers
            ],
        }
        (self.base_dir / RECORD_FILE).write_text(json.dumps(data, indent=1))

    # -- queries ---------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def broker(self, broker_id: int) -> BrokerProcess:
        for b in self.brokers:
            if b.id == broker_id:
                return b
        raise KeyError(f"no broker {broker_id}")

    def view(self) -> ClusterView:
        return read_view(self.zk, self.zk_root)

    def coordinator_for(self, group: str) -> BrokerProcess | None:
        """The broker that leads the group's offsets partition, as recorded in ZooKeeper."""
        view = self.view()
        n = view.topics.get(OFFSETS_TOPIC, self.offsets_partitions)
        leader = view.live_leader(OFFSETS_TOPIC, partition_for(group, n))
        return None if leader is None else self.broker(leader.broker_id)

    def find_coordinator(self, group: str) -> BrokerProcess | None:
        """The broker coordinating ``group`` as FindCoordinator answers, asked of the first running
        broker: how a client finds it, and how the harness asks real Kafka's brokers
        (:meth:`bench.services.kafka.KafkaCluster.coordinator_for`). A run asks this, not
        :meth:`coordinator_for`, whose ZooKeeper reads would count as the brokers' own."""
        request = FindCoordinatorRequest(version=2, key=group, key_type=0)
        for b in self.brokers:
            if not b.is_running():
                continue
            try:
                response = send_request(b.address, request)
            except OSError:
                continue
            return self.broker(response.node_id) if response.error_code == 0 else None
        return None

    def describe_group(self, group: str, timeout: float = 10.0) -> Any:
        """DescribeGroups (v5) for ``group``, asked of its coordinator; None if it has none now."""
        coordinator = self.coordinator_for(group)
        if coordinator is None:
            return None
        response = send_request(
            coordinator.address, DescribeGroupsRequest(version=5, groups=[group]), timeout
        )
        return response.groups[0]

    def stats(self, fresh: bool = False, timeout: float = 0.2) -> dict[int, dict[str, Any] | None]:
        """Each broker's last ``broker_stats.json``: per-API requests and bytes, and more. With
        ``fresh``, each running broker is asked to write it now (:meth:`BrokerProcess.ask_stats`)
        and read once it did (at most ``timeout`` seconds), so that a reading taken right at an
        action counts every request before it. Otherwise the counters are those of the broker's
        last periodic write (once a second): a reading up to a second old, which puts the members'
        heartbeat round or commits of that second into the next episode."""
        if not fresh:
            return {b.id: b.stats() for b in self.brokers}
        asked = {b.id: b.ask_stats() for b in self.brokers}

        def written() -> dict[int, dict[str, Any] | None] | None:
            now = {b.id: b.stats() for b in self.brokers}
            fresh_ones = (
                now[b] is not None and now[b]["time"] >= t for b, t in asked.items() if t is not None
            )
            return now if all(fresh_ones) else None

        try:
            return wait_until(written, timeout, interval=0.01, what="the brokers' counters")
        except TimeoutError:
            return {b.id: b.stats() for b in self.brokers}  # a paused broker: its last counters

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- broker {b.id} ---\n{b.log_tail(lines)}" for b in self.brokers)


def stop_recorded(base_dir: Path, grace: float = 10.0) -> list[int]:
    """Stop the brokers a (maybe gone) :class:`BrokerCluster` recorded in ``base_dir``; their pids."""
    record = Path(base_dir) / RECORD_FILE
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    stopped = []
    for entry in data.get("brokers", []):
        pid, match = int(entry.get("pid") or 0), str(entry.get("match", ""))
        if pid > 0 and match and terminate_pid(pid, match, grace):
            stopped.append(pid)
    record.unlink(missing_ok=True)
    return stopped

"""A launcher for a real ZooKeeper on loopback: one standalone server or an N-node ensemble.

Each server is one JVM running ``QuorumPeerMain`` with its own directory (``zoo.cfg``, ``data/``,
``zookeeper.log``, ``zookeeper.pid``) and free loopback ports. One server runs standalone (no
``server.N`` lines); more form a quorum. JVMs run in their own session, so a Ctrl-C in the terminal
reaches only us and we stop them in order; their pids are also written to disk so another process
(``rebalance-lab cluster down``) can stop servers it did not start.

JVM start on this project's 2-core machine (OpenJDK 17, Debian ZooKeeper 3.8.0): ``ruok`` answers
~0.15 s after exec, ``srvr`` reports standalone ~0.3 s after exec. ``-XX:TieredStopAtLevel=1`` made no
measurable difference and would slow the server we measure, so it is not used; class data sharing
(``-Xshare:auto``) is the JDK default and stays on.

Over the ~500-line guide on purpose: one server and the ensemble share the configuration, ports,
classpath discovery and pid files; apart they would only pass those back and forth.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.services.mntr import Mntr, MntrUnavailable, four_letter, read_mntr
from bench.services.ports import HOST, free_ports
from bench.services.process import ChildProcess, freeze, pid_alive, terminate_pid

log = logging.getLogger(__name__)

DEBIAN_JAR = Path("/usr/share/java/zookeeper.jar")
#: Jars Debian's zookeeper.jar manifest lacks. slf4j-simple makes the server log readable (without a
#: binding it logs nothing, and a broken server fails silently); the netty ones are needed only with
#: ``serverCnxnFactory=...NettyServerCnxnFactory`` and servlet-api only with the admin server, so both
#: are added when present but not required (the default NIO factory needs neither).
DEBIAN_REQUIRED_EXTRAS = ("slf4j-simple.jar",)
DEBIAN_OPTIONAL_EXTRAS = (
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
    "servlet-api.jar",
)

FOUR_LETTER_WHITELIST = "mntr,srvr,ruok,stat,conf,cons,wchs,srst"

DEFAULT_CFG: dict[str, str] = {
    "tickTime": "500",
    # minSessionTimeout defaults to 2 ticks (1 s); 60 s lets members ask for long sessions.
    "maxSessionTimeout": "60000",
    # Followers get 10 s to sync at start (3 JVMs share 2 cores) and are dropped after 2.5 s silence.
    "initLimit": "20",
    "syncLimit": "5",
    "admin.enableServer": "false",
    # Every member has its own session from 127.0.0.1; the default cap of 60 per address is too few.
    "maxClientCnxns": "0",
    "4lw.commands.whitelist": FOUR_LETTER_WHITELIST,
    # The txn log otherwise preallocates 64 MB per file.
    "preAllocSize": "4096",
    "autopurge.purgeInterval": "0",
}

JVM_OPTS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-XX:+ExitOnOutOfMemoryError",
    f"-Dzookeeper.4lw.commands.whitelist={FOUR_LETTER_WHITELIST}",
    "-Dzookeeper.admin.enableServer=false",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
)

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_SERVING_MODES = ("leader", "follower", "standalone", "observer")
_MODE_RE = re.compile(r"^Mode:\s*(\S+)", re.MULTILINE)


def server_mode(host: str, port: int, timeout: float = 2.0) -> str | None:
    """What ``srvr`` says a server is: ``leader`` | ``follower`` | ``standalone`` (| ``observer``);
    None while it does not serve or cannot be reached."""
    try:
        answer = four_letter(host, port, "srvr", timeout=timeout)
    except OSError:
        return None
    match = _MODE_RE.search(answer)
    return match.group(1) if match else None


class ZooKeeperNotFound(RuntimeError):
    """No ZooKeeper jars or no ``java`` on this machine."""


class ZooKeeperStartError(RuntimeError):
    """A server or the ensemble did not come up; the message ends with the tail of the server logs."""


def zookeeper_classpath() -> str:
    """The JVM classpath for ZooKeeper's server.

    ``ZOOKEEPER_CLASSPATH`` is used verbatim; else ``ZOOKEEPER_HOME`` (an Apache release: its jars,
    ``lib/*.jar`` and ``conf/``); else Debian's package.
    """
    explicit = os.environ.get("ZOOKEEPER_CLASSPATH")
    if explicit:
        entries = [e for e in explicit.split(os.pathsep) if e]
        missing = [e for e in entries if not glob.glob(e)]  # also expands Java's `dir/*`
        if not entries or missing:
            raise ZooKeeperNotFound(
                f"ZOOKEEPER_CLASSPATH={explicit!r} names files that do not exist ({', '.join(missing)}); "
                "unset it to use Debian's package (run `make setup`) or set ZOOKEEPER_HOME"
            )
        return explicit
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:
        root = Path(home)
        jars = sorted(root.glob("*.jar")) + sorted((root / "lib").glob("*.jar"))
        if not any(j.name.startswith("zookeeper") for j in jars):
            raise ZooKeeperNotFound(
                f"ZOOKEEPER_HOME={home!r} has no zookeeper*.jar in it or in lib/; "
                "point it at an Apache ZooKeeper release or run `make setup`"
            )
        entries = [str(j) for j in jars]
        if (root / "conf").is_dir():
            entries.insert(0, str(root / "conf"))  # its logback.xml / log4j.properties
        return os.pathsep.join(entries)
    if DEBIAN_JAR.is_file():
        share = DEBIAN_JAR.parent
        missing = [name for name in DEBIAN_REQUIRED_EXTRAS if not (share / name).is_file()]
        if missing:
            raise ZooKeeperNotFound(
                f"{DEBIAN_JAR} is there but {', '.join(missing)} is not; run `make setup` "
                "(apt-get install zookeeper) or set ZOOKEEPER_HOME"
            )
        extras = [share / n for n in DEBIAN_REQUIRED_EXTRAS + DEBIAN_OPTIONAL_EXTRAS if (share / n).is_file()]
        return os.pathsep.join([str(DEBIAN_JAR), *map(str, extras)])
    raise ZooKeeperNotFound(
        "ZooKeeper not found: no ZOOKEEPER_CLASSPATH or ZOOKEEPER_HOME set and no "
        f"{DEBIAN_JAR}; run `make setup` (installs Debian's zookeeper package) or set ZOOKEEPER_HOME"
    )


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ZooKeeperNotFound("no `java` on PATH and no JAVA_HOME; run `make setup` (installs a JRE)")
    return java


@dataclass(frozen=True)
class Peer:
    """One member of the quorum, as every server's zoo.cfg lists it."""

    id: int
    client_port: int
    quorum_port: int
    election_port: int


def _cfg_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ZooKeeperServer:
    """One ZooKeeper JVM. Ports, id and directory stay fixed across stop/start, so a restart rejoins."""

    def __init__(
        self,
        id: int,
        server_dir: Path,
        peer: Peer,
        peers: list[Peer],
        cfg: Mapping[str, str],
        classpath: str | None = None,
        java: str | None = None,
    ) -> None:
        self.id = id
        self.dir = Path(server_dir)
        self.peer = peer
        self.peers = peers
        self.cfg = dict(cfg)
        self._classpath = classpath
        self._java = java
        self._child = ChildProcess(f"zookeeper {id}")  # None proc: not started by us, or detached
        self.pid: int | None = None
        self._log_offset = 0  # where this run's output starts in the (appended) log

    # -- layout ---------------------------------------------------------------------------------

    @property
    def client_port(self) -> int:
        return self.peer.client_port

    @property
    def address(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "zookeeper.log"

    @property
    def cfg_path(self) -> Path:
        return self.dir / "zoo.cfg"

    @property
    def pid_path(self) -> Path:
        return self.dir / "zookeeper.pid"

    def config_text(self) -> str:
        lines = [
            f"dataDir={self.data_dir}",
            f"clientPort={self.client_port}",
            f"clientPortAddress={HOST}",
        ]
        lines += [f"{k}={_cfg_value(v)}" for k, v in self.cfg.items()]
        if len(self.peers) > 1:
            lines += [f"server.{p.id}={HOST}:{p.quorum_port}:{p.election_port}" for p in self.peers]
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        classpath = self._classpath or zookeeper_classpath()
        java = self._java or java_executable()
        return [java, "-cp", classpath, *JVM_OPTS, MAIN_CLASS, str(self.cfg_path)]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch the JVM (returns at once; see :meth:`wait_serving`)."""
        if self.is_running():
            raise RuntimeError(f"zookeeper {self.id} already runs as pid {self.pid}")
        command = self.command()  # may raise ZooKeeperNotFound before we touch the disk
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.id}\n")
        self.cfg_path.write_text(self.config_text())
        with self.log_path.open("ab") as logfile:
            self._log_offset = logfile.tell()
            logfile.write(f"--- starting zookeeper {self.id}: {' '.join(command)}\n".encode())
            logfile.flush()
            proc = self._child.spawn(command, stdout=logfile, cwd=self.dir)
        self.pid = proc.pid
        self.pid_path.write_text(f"{self.pid}\n")
        log.info("zookeeper %d started: pid %d, client port %d", self.id, self.pid, self.client_port)

    def is_running(self) -> bool:
        if self._child.proc is not None:
            return self._child.running()
        return self.pid is not None and pid_alive(self.pid, str(self.cfg_path))

    def _signal(self, sig: int) -> None:
        if self.pid is not None and self.is_running():
            os.kill(self.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds; a no-op when not running."""
        if self._child.proc is not None:
            self._child.terminate(grace)  # with SIGCONT, in case it is paused
            self._child.proc = None
        elif self.pid is not None:
            terminate_pid(self.pid, str(self.cfg_path), grace)
        self.pid = None
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self._child.proc is not None:
            self._child.kill()
            self._child.proc = None
        elif self.pid is not None and pid_alive(self.pid, str(self.cfg_path)):
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        self.pid_path.unlink(missing_ok=True)

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP: the JVM freezes with its sockets open (a GC pause or a hung host, not a crash).

        Returns once every JVM thread has stopped; until then one could still answer a request.
        """
        if self.pid is not None and self.is_running():
            freeze(self.pid, timeout)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def detach(self) -> None:
        """Forget the child handle, leaving the JVM running; :meth:`stop` then works by pid."""
        self._child.forget()

    # -- queries --------------------------------------------------------------------------------

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        return four_letter(HOST, self.client_port, cmd, timeout)

    def mode(self) -> str | None:
        """``leader`` | ``follower`` | ``standalone`` (| ``observer``), or None while not serving."""
        return server_mode(HOST, self.client_port)

    def mntr(self, timeout: float = 5.0) -> Mntr:
        return read_mntr(HOST, self.client_port, timeout)

    def port_taken(self) -> bool:
        """Whether this run failed to bind a port (a quorum/election bind failure exits only seconds later)."""
        try:
            with self.log_path.open("rb") as logfile:
                logfile.seek(self._log_offset)
                return b"Address already in use" in logfile.read()
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "zookeeper",
            "name": f"zk-{self.id}",
            "id": self.id,
            "pid": self.pid,
            "match": str(self.cfg_path),  # in the JVM's command line: guards against pid reuse
            "address": self.address,
            "client_port": self.client_port,
            "quorum_port": self.peer.quorum_port,
            "election_port": self.peer.election_port,
            "dir": str(self.dir),
            "log": str(self.log_path),
        }

    def __repr__(self) -> str:
        return f"ZooKeeperServer(id={self.id}, port={self.client_port}, pid={self.pid})"


class ZooKeeperEnsemble:
    """``size`` servers on loopback. ``cfg_overrides`` are zoo.cfg keys (``admin.enableServer=True`` ...).

    Use as a context manager, or call :meth:`start` and, in a ``finally``, :meth:`stop`.
    """

    def __init__(
        self,
        size: int = 1,
        base_dir: Path | None = None,
        *,
        classpath: str | None = None,
        java: str | None = None,
        **cfg_overrides: Any,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._own_dir = base_dir is None
        # Absolute: the JVM runs in its own directory, where a relative zoo.cfg path means nothing.
        self.base_dir = (
            Path(base_dir).resolve() if base_dir is not None else Path(tempfile.mkdtemp(prefix="zk-"))
        )
        self.cfg = {**DEFAULT_CFG, **{k: _cfg_value(v) for k, v in cfg_overrides.items()}}
        self._classpath = classpath
        self._java = java
        self.servers: list[ZooKeeperServer] = []
        self._allocate()
        self._stopped = False

    def _allocate(self) -> None:
        ports = free_ports(3 * self.size)
        peers = [Peer(i + 1, *ports[3 * i : 3 * i + 3]) for i in range(self.size)]
        self.servers = [
            ZooKeeperServer(
                p.id,
                self.base_dir / f"zk-{p.id}",
                p,
                peers,
                self.cfg,
                classpath=self._classpath,
                java=self._java,
            )
            for p in peers
        ]

    @property
    def connect_string(self) -> str:
        return ",".join(s.address for s in self.servers)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start every server and wait for a quorum; on failure stop them and raise with the log tails."""
        # A port handed out by free_ports may be taken by another process before the JVM binds it.
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                for server in self.servers:
                    server.start()
                self.wait_for_quorum(timeout)
                return
            except BaseException as exc:
                port_taken = any(s.port_taken() for s in self.servers)
                tails = self.log_tails()
                self._stop_servers()
                if isinstance(exc, ZooKeeperStartError) and port_taken and attempt < attempts:
                    log.warning("a zookeeper port was taken meanwhile; retrying with new ports")
                    for server in self.servers:
                        # Its epoch files belong to a quorum that never formed.
                        shutil.rmtree(server.data_dir, ignore_errors=True)
                    self._allocate()
                    continue
                if isinstance(exc, ZooKeeperStartError):
                    raise ZooKeeperStartError(f"{exc}\n{tails}") from None
                raise

    def wait_for_quorum(self, timeout: float = 60.0) -> None:
        """Until every running server serves and exactly one of them leads (or one runs standalone)."""
        deadline = time.monotonic() + timeout
        modes: dict[int, str | None] = {}
        while True:
            running = [s for s in self.servers if s.is_running()]
            for s in self.servers:
                if s.pid is not None and not s.is_running():
                    raise ZooKeeperStartError(f"zookeeper {s.id} (pid {s.pid}) exited; see {s.log_path}")
            modes = {s.id: s.mode() for s in running}
            values = list(modes.values())
            # A server whose election port was taken can still serve, then exits a few seconds later.
            taken = [s.id for s in running if s.port_taken()]
            if taken:
                raise ZooKeeperStartError(f"zookeeper {taken} could not bind a port (Address already in use)")
            if running and all(m in _SERVING_MODES for m in values):
                leaders = values.count("leader") + values.count("standalone")
                if leaders == 1:
                    return
            if time.monotonic() > deadline:
                raise ZooKeeperStartError(
                    f"no quorum after {timeout:.0f}s: modes {modes} (connect {self.connect_string})"
                )
            time.sleep(0.05)

    def _stop_servers(self) -> None:
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception:
                log.exception("stopping zookeeper %d failed; killing it", server.id)
                server.kill()

    def stop(self) -> None:
        """Stop every server; remove the directory if we created it. Idempotent."""
        self._stop_servers()
        if self._own_dir and not self._stopped:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self._stopped = True

    def stop_server(self, i: int) -> None:
        """Stop server ``i`` (index into :attr:`servers`) gracefully; it keeps its id, ports and data."""
        self.servers[i].stop()

    def restart_server(self, i: int, timeout: float = 60.0) -> None:
        """Start server ``i`` again and wait until the ensemble (it included) serves."""
        server = self.servers[i]
        if server.is_running():
            server.stop()
        server.start()
        try:
            self.wait_for_quorum(timeout)
        except ZooKeeperStartError as exc:
            raise ZooKeeperStartError(f"{exc}\n{server.log_tail()}") from None

    def detach(self) -> None:
        """Leave the servers running when this object goes away (``cluster up``)."""
        for server in self.servers:
            server.detach()
        self._own_dir = False

    # -- queries --------------------------------------------------------------------------------

    def leader(self) -> ZooKeeperServer | None:
        for server in self.servers:
            if server.is_running() and server.mode() in ("leader", "standalone"):
                return server
        return None

    def mntr(self, strict: bool = True) -> list[Mntr]:
        """One reading per running server.

        A running server that does not serve (electing a leader, paused) raises
        :class:`~bench.services.mntr.MntrUnavailable` or ``OSError``, unless ``strict`` is False: then it is left out.
        """
        readings = []
        for server in self.servers:
            if not server.is_running():
                continue
            try:
                readings.append(server.mntr(timeout=5.0 if strict else 2.0))
            except (OSError, MntrUnavailable):
                if strict:
                    raise
                log.info("zookeeper %d gave no mntr reading; leaving it out", server.id)
        return readings

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- zookeeper {s.id} log ({s.log_path}):\n{s.log_tail(lines)}" for s in self.servers
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "zookeeper-ensemble",
            "connect": self.connect_string,
            "dir": str(self.base_dir),
            "servers": [s.describe() for s in self.servers],
        }

    def __enter__(self) -> ZooKeeperEnsemble:
        try:
            self.start()
        except BaseException:
            self.stop()  # __exit__ will not run; the error already carries the log tails
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ZooKeeperEnsemble(size={self.size}, connect={self.connect_string!r})"

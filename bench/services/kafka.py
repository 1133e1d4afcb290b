"""A launcher for a cluster of real Apache Kafka brokers on loopback: start, kill, stop.

The reference targets of :mod:`bench.services.kafka_config`: Kafka 3.9 in ZooKeeper mode on one of
our ensembles (its own chroot below ``/realkafka``), or Kafka 4.0 in KRaft combined mode (every
broker also a controller voter; the launcher formats the storage with ``kafka.tools.StorageTool``).
Each broker is ``java ... kafka.Kafka server.properties`` in its own session, on free ports, with a
small heap and the serial collector (two cores for everything), the Jolokia JVM agent attached for
the sampler (:mod:`bench.services.jolokia`), and its config, data and log in
``<base_dir>/broker-<id>/``. The jars come from ``make setup`` (:mod:`bench.services.java`).

Example::

    with KafkaCluster(kafka_target("3.9-classic"), 3, tmp, zk_connect=zk.connect_string,
                      topics={"orders": 6}) as cluster:
        consumer = KafkaConsumer("orders", group_id="g", bootstrap_servers=cluster.bootstrap)
        cluster.coordinator_for("g").kill()
"""

from __future__ import annotations

import base64
import logging
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kafka.protocol.admin import CreateTopicsRequest, DescribeGroupsRequest
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest

from bench.services.brokers import send_request
from bench.services.java import JavaUnavailable, java_binary, java_module
from bench.services.kafka_config import (
    ZK_CHROOT_BASE,
    KafkaSettings,
    KafkaTarget,
    kafka_target,
    render,
    server_properties,
)
from bench.services.polling import wait_until
from bench.services.ports import free_port
from bench.services.process import ChildProcess

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
#: Small JVMs: a broker with a few groups needs far less than Kafka's 1 GiB default heap.
JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # C1 only: less compile time on shared cores
    "-Djava.awt.headless=true",
)
#: Seconds a broker gets after SIGTERM (a controlled shutdown) before SIGKILL.
STOP_GRACE_S = 20.0
_TOPIC_EXISTS = 36  # TOPIC_ALREADY_EXISTS

_LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.kafka.request.logger=WARN
"""
_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
"""


def unavailable(target: str) -> str | None:
    """Why the real-Kafka target ``target`` cannot run here (its jars, the Jolokia agent or, for
    Java members, java/member not built: no Java 17 or Maven), or None."""
    spec = kafka_target(target)
    for name in (spec.module, "jolokia", *(("member",) if spec.java_members else ())):
        module = java_module(name)
        if not module.available:
            return module.reason
    return None


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (``Uuid.randomUuid``)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class KafkaBroker:
    """One real Kafka broker process; ``kill``/``stop``/``start`` act on it alone."""

    id: int
    port: int  # the clients' listener
    internal_port: int  # replication between brokers
    controller_port: int | None  # KRaft only
    jolokia_port: int
    state_dir: Path
    command: list[str]
    _child: ChildProcess = field(init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._child = ChildProcess(f"kafka broker {self.id}")

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def jolokia_url(self) -> str:
        return f"http://127.0.0.1:{self.jolokia_port}/jolokia/"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "broker.log"

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_log
        proc = self._child.spawn(self.command, stdout=self._log, cwd=self.state_dir)
        log.info("kafka broker %d started (pid %d, port %d)", self.id, proc.pid, self.port)

    def is_running(self) -> bool:
        return self._child.running()

    def exit_code(self) -> int | None:
        return None if self._child.proc is None else self._child.proc.poll()

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown; the cluster notices by its session (3.9) or heartbeats (KRaft)."""
        if self.is_running():
            log.info("kafka broker %d killed (pid %s)", self.id, self.pid)
        self._child.kill()
        self._close_log()

    def signal_stop(self) -> None:
        """SIGTERM without waiting (:meth:`stop` waits)."""
        self._child.send(signal.SIGTERM)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after ``grace``."""
        self._child.terminate(grace, wake=False)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class KafkaCluster:
    """``size`` real Kafka brokers of ``target`` (ids 1..size), data and logs under ``base_dir``.

    Args:
        target: which Kafka and group protocols (:data:`bench.services.kafka_config.KAFKA_TARGETS`).
        size: number of brokers.
        base_dir: where each broker's config, data and log go.
        settings: the run's broker knobs (the profile's), mapped onto Kafka's properties.
        zk_connect: the ensemble's connect string (3.9 only); the brokers use a chroot of their own.
        chroot: that chroot (default ``/realkafka/<random>``).
        topics: data topics to create (name -> partitions) once the brokers are up.
        advertise: called with a broker's id and client port before it starts; returns the port the
            broker advertises instead (a proxy's, so members reach it through the proxy).
    """

    def __init__(
        self,
        target: KafkaTarget,
        size: int,
        base_dir: Path,
        settings: KafkaSettings | None = None,
        zk_connect: str | None = None,
        chroot: str | None = None,
        topics: dict[str, int] | None = None,
        advertise: Callable[[int, int], int] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not target.kraft and not zk_connect:
            raise ValueError(f"Kafka {target.name} runs in ZooKeeper mode: zk_connect is required")
        self.target = target
        self.size = size
        self.base_dir = Path(base_dir)
        self.settings = settings or KafkaSettings()
        self.chroot = chroot or f"{ZK_CHROOT_BASE}/{uuid.uuid4().hex[:8]}"
        self.zk_connect = None if zk_connect is None else f"{zk_connect}{self.chroot}"
        self.topics = dict(topics or {})
        self.advertise = advertise
        self.brokers: list[KafkaBroker] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def _java_command(
        self, main: str, *args: str, jolokia_port: int | None = None, log_config: Path
    ) -> list[str]:
        module = java_module(self.target.module)
        command = [java_binary(), *JVM_OPTIONS]
        if self.target.kraft:
            command.append(f"-Dlog4j2.configurationFile={log_config}")
        else:
            command.append(f"-Dlog4j.configuration=file:{log_config}")
        if jolokia_port is not None:
            agent = java_module("jolokia")
            jar = agent.jar("jolokia-agent-jvm")
            command.append(f"-javaagent:{jar}=host=127.0.0.1,port={jolokia_port},discoveryEnabled=false")
        return [*command, "-cp", module.classpath, main, *args]

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Spawn every broker, wait until all answer Metadata, then create the topics and the offsets
        topic (Kafka creates it on the first FindCoordinator)."""
        reason = unavailable(self.target.name)
        if reason is not None:
            raise JavaUnavailable(reason)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._create()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        ids = range(1, self.size + 1)
        controller_ports = {i: free_port() for i in ids} if self.target.kraft else None
        cluster_id = _cluster_id()
        for broker_id in ids:
            state_dir = self.base_dir / f"broker-{broker_id}"
            state_dir.mkdir(parents=True, exist_ok=True)
            port, internal, jolokia = free_port(), free_port(), free_port()
            advertised = port if self.advertise is None else self.advertise(broker_id, port)
            props = server_properties(
                self.target,
                broker_id,
                self.size,
                port,
                advertised,
                internal,
                state_dir / "data",
                self.settings,
                zk_connect=self.zk_connect,
                controller_ports=controller_ports,
            )
            config = state_dir / "server.properties"
            config.write_text(render(props))
            log_config = state_dir / ("log4j2.properties" if self.target.kraft else "log4j.properties")
            log_config.write_text(_LOG4J2 if self.target.kraft else _LOG4J)
            if self.target.kraft:
                self._format(cluster_id, config, log_config)
            command = self._java_command(
                "kafka.Kafka", str(config), jolokia_port=jolokia, log_config=log_config
            )
            broker = KafkaBroker(
                broker_id,
                port,
                internal,
                None if controller_ports is None else controller_ports[broker_id],
                jolokia,
                state_dir,
                command,
            )
            self.brokers.append(broker)  # recorded before it starts: stopped even if start fails
            broker.start()

    def _format(self, cluster_id: str, config: Path, log_config: Path) -> None:
        """``kafka-storage.sh format`` (``kafka.tools.StorageTool``): a KRaft broker's log directory
        must hold ``meta.properties`` with the cluster id before the broker starts."""
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            # one argument: a random id may begin with "-", which the tool would take for an option
            f"--cluster-id={cluster_id}",
            "-c",
            str(config),
            log_config=log_config,
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"kafka-storage format failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Every running broker in Metadata, the topics created and every offsets partition led."""
        running = {b.id for b in self.brokers if b.is_running()}

        def brokers_up() -> Any:
            self._check_alive(running)
            try:
                response = self.metadata(None)
            except OSError:
                return None
            return response if running <= {b.node_id for b in response.brokers} else None

        wait_until(brokers_up, timeout, 0.2, f"{len(running)} Kafka broker(s) to answer Metadata")
        self._create_topics()

        def offsets_led() -> bool:
            self._check_alive(running)
            try:
                self._find_coordinator("rebalance-lab-probe")
                topics = {t.name: t for t in self.metadata([OFFSETS_TOPIC, *self.topics]).topics}
            except (OSError, RuntimeError):
                return False
            return all(
                name in topics
                and topics[name].error_code == 0
                and all(p.leader_id in running for p in topics[name].partitions)
                for name in [OFFSETS_TOPIC, *self.topics]
            )

        wait_until(offsets_led, timeout, 0.2, "the offsets topic and the data topics to have live leaders")

    def _check_alive(self, running: set[int]) -> None:
        for b in self.brokers:
            if b.id in running and b.exit_code() is not None:
                raise RuntimeError(f"kafka broker {b.id} exited with {b.exit_code()}:\n{b.log_tail()}")

    def _create_topics(self) -> None:
        if not self.topics:
            return
        request = CreateTopicsRequest(
            version=4,
            topics=[
                CreateTopicsRequest.CreatableTopic(
                    name=t, num_partitions=n, replication_factor=1, assignments=[], configs=[]
                )
                for t, n in self.topics.items()
            ],
            timeout_ms=30_000,
            validate_only=False,
        )
        # ZooKeeper mode takes CreateTopics at the controller only; KRaft brokers forward it.
        controller = self.metadata(None).controller_id
        address = next((b.address for b in self.brokers if b.id == controller), self.running_address())
        response = send_request(address, request, timeout=60.0)
        for topic in response.topics:
            if topic.error_code not in (0, _TOPIC_EXISTS):
                raise RuntimeError(
                    f"CreateTopics {topic.name}: error {topic.error_code} {topic.error_message}"
                )

    def stop(self) -> None:
        """Stop every broker (SIGTERM, then SIGKILL); idempotent."""
        # A controlled shutdown needs the active controller. KRaft: SIGTERM to all at once, or the
        # last brokers would wait for a quorum already gone. ZooKeeper mode: the controller last, or
        # every other broker's ControlledShutdown fails over to a new one and retries after 5 s.
        if self.target.kraft:
            for broker in self.brokers:
                broker.signal_stop()
            order = self.brokers
        else:
            controller = self._zk_controller()
            order = sorted(self.brokers, key=lambda b: b.id == controller)
        for broker in order:
            broker.stop()

    def _zk_controller(self) -> int | None:
        """The controller's id, as Metadata says (None when no broker answers)."""
        try:
            return int(self.metadata(None).controller_id)
        except (OSError, RuntimeError):
            return None

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- queries ---------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def running_address(self) -> str:
        for b in self.brokers:
            if b.is_running():
                return b.address
        raise RuntimeError("no Kafka broker is running")

    def broker(self, broker_id: int) -> KafkaBroker:
        for b in self.brokers:
            if b.id == broker_id:
                return b
        raise KeyError(f"no broker {broker_id}")

    def metadata(self, topics: list[str] | None, broker: KafkaBroker | None = None) -> Any:
        """Metadata (v4) from ``broker`` (default: a running one): brokers, controller, ``topics``
        (None: all)."""
        request = MetadataRequest(
            version=4,
            topics=None if topics is None else [MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
        )
        return send_request(self.running_address() if broker is None else broker.address, request)

    def _find_coordinator(self, group: str) -> int:
        request = FindCoordinatorRequest(version=2, key=group, key_type=0)
        response = send_request(self.running_address(), request)
        if response.error_code != 0:
            raise RuntimeError(f"FindCoordinator({group}): error {response.error_code}")
        return int(response.node_id)

    def coordinator_for(self, group: str) -> KafkaBroker | None:
        """The broker coordinating ``group``, as FindCoordinator answers (None: none now)."""
        try:
            return self.broker(self._find_coordinator(group))
        except (OSError, RuntimeError):
            return None

    def find_coordinator(self, group: str) -> KafkaBroker | None:
        """As :meth:`coordinator_for` (the name the local backend asks both kinds of cluster by)."""
        return self.coordinator_for(group)

    def describe_group(self, coordinator: KafkaBroker, group: str) -> Any:
        """DescribeGroups (v5) for ``group``, asked of ``coordinator``."""
        response = send_request(coordinator.address, DescribeGroupsRequest(version=5, groups=[group]))
        return response.groups[0]

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- kafka broker {b.id} ---\n{b.log_tail(lines)}" for b in self.brokers)

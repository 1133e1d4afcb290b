"""The compose backend: the fault interface over a docker-compose project, through the Docker API.

``rebalance-lab run SCENARIO --target compose`` runs in the project's ``bench`` service (``docker
compose run --rm bench ...``) with the Docker socket mounted. The servers are the project's
services, reached by service name on its network: ZooKeeper ``zk1``..``zk3`` and brokers
``broker1``..``broker3`` (:class:`ComposeLayout`; ``tests/unit/test_compose_file.py`` holds
``docker-compose.yml`` to it). Each member process is a container of its own, made from the image
the runner runs in (the project image, the ``member`` service's too) on the project's network and
labelled as a one-off of the ``member`` service; its stdout events go into the run's history as a
local member process's do, its stderr into the member's log file.

Faults go through the Docker API: a member is killed (SIGKILL), paused (``docker pause``: the cgroup
freezer), terminated (SIGTERM: its members leave); ``kill_broker`` SIGKILLs the broker's container,
``stop_zk`` / ``restart_zk`` stop and start a ZooKeeper container. Whatever a run stopped is
started again when it ends, so the next run finds the cluster whole.

Where compose differs from the local backend:

* The cluster is the compose file's, started beforehand and kept between runs: a scenario's
  ``cluster`` sizes are a minimum; group state (generations, committed offsets) carries over from
  run to run as in a long-lived Kafka cluster (``docker compose down -v`` resets it). The brokers'
  ``group.initial.rebalance.delay.ms`` is fixed when they start, so a run whose profile wants
  another refuses to start and says how to restart them.
* Link faults (``set_delay``, ``cut_link``, ``heal_link``) are not supported: members reach the
  servers straight over the compose network, with no proxy in between.
* Members stamp events with their container's monotonic clock, which is the host kernel's: every
  container must run on one Docker engine (compose's usual case).
* Broker counters come from ``broker_stats.json`` on the brokers' shared volume, which ``bench``
  mounts at the same path; without it a run has no broker samples (logged once).

Over the ~500-line guide on purpose: the layout, the container member handle and the backend share
one Docker client, the project's labels and the engine's error handling.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, NotFound
from kazoo.client import KazooClient
from requests.exceptions import RequestException

from bench.backends import ClusterSpec, TargetError, pick_zk
from bench.backends.samples import broker_sample, zk_sample
from bench.experiment.history import History
from bench.services.brokers import placement_settled
from bench.services.catalog import write_catalogs
from bench.services.polling import wait_until
from bench.services.zookeeper import server_mode
from coordinator_mode.broker.cli import config_from_args
from coordinator_mode.broker.config import BrokerConfig
from coordinator_mode.broker.controller import OFFSETS_TOPIC, read_view
from coordinator_mode.hashing import partition_for
from group_api import read_events

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
#: How long a server may take to serve again (quorum, broker placement) before a run gives up.
READY_TIMEOUT_S = 60.0
#: How long a SIGKILLed container may take to be gone.
KILL_TIMEOUT_S = 30.0


class ComposeError(TargetError):
    """The compose project cannot do what the run asks; the message says what to do instead."""


def engine_address() -> str:
    """Where the Docker SDK looks for the engine: ``DOCKER_HOST``, else the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect_engine() -> Any:
    """A client of a Docker engine that answers, or a ComposeError saying where none did."""
    try:
        client = docker.from_env()
        client.ping()
    except (DockerException, RequestException) as exc:
        log.debug("no Docker engine: %s", exc)
        raise ComposeError(
            f"no Docker engine reachable at {engine_address()}; start one or use --target local"
        ) from None
    return client


def preflight() -> None:
    """Raise :class:`ComposeError` when no Docker engine answers (``--target compose``'s check)."""
    connect_engine().close()


@dataclass(frozen=True)
class ComposeLayout:
    """The services of ``docker-compose.yml`` that runs use."""

    zk_services: tuple[str, ...] = ("zk1", "zk2", "zk3")
    zk_client_port: int = 2181
    broker_services: tuple[str, ...] = ("broker1", "broker2", "broker3")
    member_service: str = "member"
    #: Where the runner reaches a ZooKeeper service, if not at its name on the compose network.
    zk_addresses: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    def zk_address(self, index: int) -> tuple[str, int]:
        service = self.zk_services[index]
        return self.zk_addresses.get(service, (service, self.zk_client_port))

    @property
    def zk_connect(self) -> str:
        return ",".join("{}:{}".format(*self.zk_address(i)) for i in range(len(self.zk_services)))


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from a log stream whose chunks need not end at line ends."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


class MemberContainer:
    """A :class:`~bench.backends.MemberHandle` backed by a container running ``rebalance-lab member``."""

    def __init__(self, container: Any, history: History, log_path: Path | None) -> None:
        self.container = container
        self.pid: str = container.id
        self.history = history
        self.log_path = log_path
        self.member_ids: list[str] = []
        self.returncode: int | None = None
        self._paused = False
        self._exited = threading.Event()
        self._log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed in close()
        self._log_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read_events, daemon=True, name=f"member-{self.pid[:12]}"),
            threading.Thread(target=self._wait_exit, daemon=True, name=f"wait-{self.pid[:12]}"),
        ]
        if self._log is not None:
            self._threads.append(threading.Thread(target=self._copy_stderr, daemon=True))
        for thread in self._threads:
            thread.start()

    def _read_events(self) -> None:
        stream = self.container.logs(stream=True, follow=True, stdout=True, stderr=False)
        for event in read_events(_lines(stream)):
            if event.member not in self.member_ids:
                self.member_ids.append(event.member)
            self.history.append(event)

    def _copy_stderr(self) -> None:
        for chunk in self.container.logs(stream=True, follow=True, stdout=False, stderr=True):
            with self._log_lock:
                if self._log is None:
                    return
                self._log.write(chunk)
                self._log.flush()

    def _wait_exit(self) -> None:
        try:
            self.returncode = int(self.container.wait()["StatusCode"])
        except APIError as exc:
            log.warning("lost track of member container %s: %s", self.pid[:12], exc)
        finally:
            self._exited.set()

    def _signal(self, sig: str) -> None:
        try:
            self.container.kill(signal=sig)
        except APIError as exc:  # it exited in the meantime
            log.debug("%s to member container %s: %s", sig, self.pid[:12], exc)

    def alive(self) -> bool:
        return not self._exited.is_set()

    def terminate(self, timeout: float = 30.0, on_escalate: Callable[[], None] | None = None) -> int | None:
        """Graceful leave: SIGTERM, wait for the exit; SIGKILL if it hangs (``on_escalate`` runs just
        before). Returns the exit code."""
        if self.alive():
            if self._paused:
                self.resume()
            self._signal("SIGTERM")
        if not self._exited.wait(timeout):
            log.warning("member container %s ignored SIGTERM for %.0fs; killing it", self.pid[:12], timeout)
            if on_escalate is not None:
                on_escalate()
            self.kill()
        self._threads[0].join(5)
        return self.returncode

    def kill(self) -> None:
        if self.alive():
            self._signal("SIGKILL")
        if not self._exited.wait(KILL_TIMEOUT_S):
            raise ComposeError(
                f"member container {self.pid[:12]} still runs {KILL_TIMEOUT_S:.0f}s after SIGKILL"
            )
        self._threads[0].join(5)  # every event it wrote before dying is in the history

    def pause(self) -> None:
        self.container.pause()
        self._paused = True

    def resume(self) -> None:
        self.container.unpause()
        self._paused = False

    def close(self) -> None:
        """Make sure the container is gone (used in finally blocks)."""
        if self.alive():
            if self._paused:
                self.resume()
            self.kill()
        try:
            self.container.remove(force=True)
        except NotFound:
            pass
        for thread in self._threads:
            thread.join(5)
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None


class ComposeBackend:
    """The compose :class:`~bench.backends.Backend`: servers and members are containers of a project.

    Args:
        spec: what the run asks for.
        client: a Docker SDK client (default :func:`connect_engine`: the mounted socket).
        project: the compose project (default: the one of the container the runner runs in).
        image: the image of member containers (default: the one the runner runs in).
        layout: the compose file's services.
    """

    def __init__(
        self,
        spec: ClusterSpec,
        client: Any = None,
        project: str | None = None,
        image: str | None = None,
        layout: ComposeLayout | None = None,
    ) -> None:
        self.layout = layout or ComposeLayout()
        if spec.proxied:
            raise ComposeError(
                "link faults (set_delay, cut_link, heal_link) are not supported on --target compose: "
                "members reach the servers straight over the compose network; run this scenario with --target local"
            )
        if spec.kafka is not None:
            raise ComposeError(
                f"the real-Kafka target kafka/{spec.kafka} is not supported on --target compose (the compose "
                "project runs our brokers); run it with --target local"
            )
        zk, brokers = len(self.layout.zk_services), len(self.layout.broker_services)
        if spec.zk_nodes > zk or spec.brokers > brokers:
            raise ComposeError(
                f"the scenario needs {spec.zk_nodes} ZooKeeper node(s) and {spec.brokers} broker(s); "
                f"the compose project has {zk} and {brokers}"
            )
        self.spec = spec
        #: every broker of the project serves coordinator-mode runs (0 in zk mode)
        self.brokers = brokers if spec.brokers else 0
        self._client = client
        self._project = project
        self._image = image
        self._network: str | None = None
        self._zk: KazooClient | None = None
        self._broker_configs: dict[int, BrokerConfig] = {}
        self._broker_services: dict[int, str] = {}
        self._stopped_zk: list[int] = []
        self._killed_brokers: list[int] = []
        self._members: list[MemberContainer] = []
        self._stats_missing_logged = False

    # -- the project -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect_engine()
        return self._client

    def _own_container(self) -> Any | None:
        """The container this process runs in (Docker names a container's host after its id)."""
        try:
            return self.client.containers.get(socket.gethostname())
        except NotFound:
            return None

    @property
    def project(self) -> str:
        if self._project is None:
            own = self._own_container()
            if own is None or PROJECT_LABEL not in own.labels:
                raise ComposeError(
                    "--target compose runs inside the compose project: "
                    "docker compose run --rm bench rebalance-lab run SCENARIO --target compose"
                )
            self._project = own.labels[PROJECT_LABEL]
        return self._project

    @property
    def image(self) -> str:
        if self._image is None:
            own = self._own_container()
            if own is None:
                raise ComposeError("no image for member containers: run through the bench service")
            self._image = own.attrs["Image"]
        return self._image

    @property
    def network(self) -> str:
        if self._network is None:
            networks = self._container(self.layout.zk_services[0]).attrs["NetworkSettings"]["Networks"]
            self._network = next(iter(networks))
        return self._network

    def _container(self, service: str) -> Any:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"{PROJECT_LABEL}={self.project}",
                    f"{SERVICE_LABEL}={service}",
                    f"{ONEOFF_LABEL}=False",
                ]
            },
        )
        if not found:
            services = " ".join([*self.layout.zk_services, *self.layout.broker_services])
            raise ComposeError(
                f"compose project {self.project!r} has no container of service {service}; "
                f"start the cluster first: docker compose up -d {services}"
            )
        return found[0]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            services = [*self.layout.zk_services, *(self.layout.broker_services if self.brokers else ())]
            for service in services:
                container = self._container(service)
                if container.status == "paused":
                    container.unpause()
                elif container.status != "running":
                    log.info("starting %s (it was %s)", service, container.status)
                    container.start()
            self._wait_for_quorum()
            self._zk = KazooClient(hosts=self.layout.zk_connect, timeout=10.0)
            self._zk.start(timeout=30)
            write_catalogs(self._zk, self.spec.topics, zk_root=self.spec.zk_root)
            if self.brokers:
                self._start_brokers()
            self._record()
        except BaseException:
            self.stop()
            raise

    def _wait_for_quorum(self) -> None:
        def serving() -> bool:
            return all(
                server_mode(*self.layout.zk_address(i)) is not None
                for i in range(len(self.layout.zk_services))
                if i not in self._stopped_zk
            )

        wait_until(serving, READY_TIMEOUT_S, 0.1, "the ZooKeeper services to serve", ComposeError)

    def _start_brokers(self) -> None:
        """Read each broker's configuration off its container's command, then place the run's topics."""
        assert self._zk is not None
        for service in self.layout.broker_services:
            command = list(self._container(service).attrs["Config"]["Cmd"])
            if "broker" not in command:
                raise ComposeError(f"service {service} does not run `rebalance-lab broker`: {command}")
            config = config_from_args(command[command.index("broker") + 1 :])
            self._broker_configs[config.broker_id] = config
            self._broker_services[config.broker_id] = service
        wanted = self.spec.initial_rebalance_delay_ms
        for broker_id, config in self._broker_configs.items():
            if config.initial_rebalance_delay_ms != wanted:
                raise ComposeError(
                    f"broker {broker_id} runs with group.initial.rebalance.delay.ms="
                    f"{config.initial_rebalance_delay_ms} but the scenario's profile wants {wanted}: "
                    f"INITIAL_REBALANCE_DELAY_MS={wanted} docker compose up -d {' '.join(self.layout.broker_services)}"
                )
        root = self._broker_root
        write_catalogs(self._zk, self.spec.topics, broker_root=root)
        wait_until(
            lambda: placement_settled(read_view(self._zk, root), self._broker_configs, self.spec.topics),
            READY_TIMEOUT_S,
            0.1,
            "the brokers to lead an even share of every topic",
            ComposeError,
        )

    @property
    def _broker_root(self) -> str:
        return next(iter(self._broker_configs.values())).zk_root

    def _record(self) -> None:
        """What the run ran on, next to where the local backend keeps its servers."""
        services = [*self.layout.zk_services, *self._broker_services.values()]
        record = {
            "project": self.project,
            "containers": {
                s: {"id": c.id, "image": c.attrs.get("Image")} for s in services for c in [self._container(s)]
            },
            "zk_connect": self.layout.zk_connect,
            "brokers": {b: "{}:{}".format(*c.advertised) for b, c in self._broker_configs.items()},
        }
        self.spec.base_dir.mkdir(parents=True, exist_ok=True)
        (self.spec.base_dir / "compose.json").write_text(json.dumps(record, indent=2))

    def stop(self) -> None:
        """Remove the run's member containers and start again whatever the run stopped."""
        for member in self._members:
            try:
                member.close()
            except Exception:
                log.exception("removing member container %s", member.pid[:12])
        self._members.clear()
        stopped = [self.layout.zk_services[i] for i in self._stopped_zk]
        stopped += [self._broker_services[b] for b in self._killed_brokers]
        for service in stopped:
            try:
                self._container(service).start()
                log.info("started %s again for the next run", service)
            except Exception:
                log.exception("starting %s again", service)
        self._stopped_zk.clear()
        self._killed_brokers.clear()
        if self._zk is not None:
            self._zk.stop()
            self._zk.close()
            self._zk = None

    # -- members ---------------------------------------------------------------------------------

    def member_args(self, mode: str) -> list[str]:
        if mode == "coordinator":
            return [
                "--bootstrap",
                ",".join("{}:{}".format(*c.advertised) for c in self._broker_configs.values()),
            ]
        return ["--zk", self.layout.zk_connect, "--zk-root", self.spec.zk_root]

    def spawn_member(self, args: list[str], history: History, log_path: Path) -> MemberContainer:
        labels = {
            PROJECT_LABEL: self.project,
            SERVICE_LABEL: self.layout.member_service,
            ONEOFF_LABEL: "True",
        }
        # init: signals reach the member as they would a process that is not pid 1
        container = self.client.containers.create(
            self.image, command=["rebalance-lab", *args], network=self.network, labels=labels, init=True
        )
        try:
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        member = MemberContainer(container, history, log_path)
        self._members.append(member)
        return member

    # -- samples -------------------------------------------------------------------------------

    def samples(self) -> list[dict[str, Any]]:
        out = []
        for i in range(len(self.layout.zk_services)):
            if i not in self._stopped_zk:
                sample = zk_sample(*self.layout.zk_address(i))
                if sample is not None:
                    out.append(sample)
        mono, wall = time.monotonic_ns(), time.time()
        for broker_id, config in self._broker_configs.items():
            stats = self._broker_stats(config)
            if stats:
                out.append(broker_sample(broker_id, stats, mono, wall))
        return out

    def _broker_stats(self, config: BrokerConfig) -> dict[str, Any] | None:
        path = config.stats_dir / "broker_stats.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            if not self._stats_missing_logged:
                log.warning("no broker counters: %s is not here (mount the brokers' volume into bench)", path)
                self._stats_missing_logged = True
        except (OSError, ValueError):
            pass  # being replaced at this moment: the next sample has it
        return None

    # -- faults ----------------------------------------------------------------------------------

    def coordinator_for(self, group: str) -> int:
        assert self._zk is not None
        view = read_view(self._zk, self._broker_root)
        n = view.topics.get(OFFSETS_TOPIC, next(iter(self._broker_configs.values())).offsets_partitions)
        leader = view.live_leader(OFFSETS_TOPIC, partition_for(group, n))
        if leader is None:
            raise ComposeError(f"group {group} has no live coordinator")
        return leader.broker_id

    def kill_broker(self, broker_id: int) -> None:
        container = self._container(self._broker_services[broker_id])
        container.kill()
        self._killed_brokers.append(broker_id)
        container.wait(timeout=KILL_TIMEOUT_S)

    def zk_index(self, node: int | str) -> int:
        modes = [
            None if i in self._stopped_zk else server_mode(*self.layout.zk_address(i))
            for i in range(len(self.layout.zk_services))
        ]
        return pick_zk(modes, node)

    def stop_zk(self, index: int) -> None:
        self._container(self.layout.zk_services[index]).stop(timeout=10)
        self._stopped_zk.append(index)

    def stopped_zk(self) -> list[int]:
        return list(self._stopped_zk)

    def restart_zk(self, index: int) -> None:
        self._container(self.layout.zk_services[index]).start()
        self._stopped_zk.remove(index)
        self._wait_for_quorum()

    def _unsupported(self, action: str) -> ComposeError:
        return ComposeError(
            f"{action} is not supported on --target compose (no proxies there); use --target local"
        )

    def links(self, target: str) -> list[str]:
        raise self._unsupported("a link fault")

    def set_rtt(self, target: str, rtt_ms: float, jitter_ms: float) -> None:
        raise self._unsupported("set_delay")

    def cut(self, target: str, reset: bool) -> None:
        raise self._unsupported("cut_link")

    def heal(self, target: str) -> None:
        raise self._unsupported("heal_link")

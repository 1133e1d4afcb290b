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
* Link faults (``set_delay``, ``cut_link``, ``heal_link``) go through the same proxies as the local
  backend's (:mod:`bench.services.proxy`), run by the runner in the ``bench`` container: a run with
  link faults starts a member container as root with ``NET_ADMIN``, whose entry point adds one
  iptables DNAT rule per server (its address on the project network -> the runner's proxy of it)
  and then drops to the unprivileged user. Members still name the servers (``zk1:2181``,
  ``broker1:9092``), and the coordinator a member finds through Metadata is reached through its
  proxy too, so a fault means what it means locally: the link between members and a server, half
  the added round trip each way, a blackhole holding bytes, a cut resetting connections. (tc
  netem is not used: the kernels this runs on are built without ``sch_netem``.)
* Members stamp events with their container's monotonic clock, which is the host kernel's: every
  container must run on one Docker engine (compose's usual case).
* Broker counters come from ``broker_stats.json`` on each broker's own volume, which ``bench``
  mounts at the path the broker's command names; without it a run has no broker samples (logged
  once).

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
from bench.services.proxy import Proxy, links_meant
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
#: The unprivileged user of the project image (Dockerfile) a proxied member's entry point drops to.
MEMBER_USER = "lab"


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
        #: link name (``zk-<i>``, ``broker-<i>``) -> the proxy members reach that server through
        self._proxies: dict[str, Proxy] = {}
        #: link name -> the server address members' DNAT rules redirect
        self._redirected: dict[str, str] = {}

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
            if self.spec.proxied:
                self._start_proxies()
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

    def _servers(self) -> list[tuple[str, str, int]]:
        """(link name, service, port) of every server members reach: the local backend's link names."""
        servers = [
            (f"zk-{i}", service, self.layout.zk_client_port)
            for i, service in enumerate(self.layout.zk_services)
        ]
        for broker_id, config in sorted(self._broker_configs.items()):
            servers.append((f"broker-{broker_id - 1}", self._broker_services[broker_id], config.port))
        return servers

    def _start_proxies(self) -> None:
        """One proxy per server, listening on the runner's address on the project network."""
        for name, service, port in self._servers():
            self._redirected[name] = self._address(self._container(service))
            proxy = Proxy((service, port), name=name, listen_host="0.0.0.0")
            self._proxies[name] = proxy
            proxy.start()

    def _address(self, container: Any) -> str:
        """A container's address on the project network."""
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"].get(self.network, {}).get("IPAddress")
        if not address:
            raise ComposeError(f"container {container.name} has no address on network {self.network}")
        return str(address)

    def _redirect_script(self) -> str:
        """The proxied member's entry point: DNAT each server's address to its proxy, then drop to
        the unprivileged user and run the member (``"$@"``)."""
        own = self._own_container()
        if own is None:
            raise ComposeError("link faults need the runner's proxies: run through the bench service")
        runner = self._address(own)
        rules = [" ".join(self._dnat("-A", name, port, runner)) for name, _, port in self._servers()]
        drop = f'exec setpriv --reuid={MEMBER_USER} --regid={MEMBER_USER} --init-groups "$@"'
        return "set -e\n" + "\n".join([*rules, drop])

    def _dnat(self, op: str, name: str, port: int, runner: str) -> list[str]:
        """The iptables command that adds (``-A``) or deletes (``-D``) link ``name``'s redirection."""
        return [
            "iptables", "-t", "nat", op, "OUTPUT", "-p", "tcp", "-d", self._redirected[name],
            "--dport", str(port), "-j", "DNAT", "--to-destination", f"{runner}:{self._proxies[name].port}",
        ]  # fmt: skip

    def _follow_address(self, index: int) -> None:
        """A restarted ZooKeeper container may get another address: move the members' redirection
        of its link there, or they would reach it past the proxy."""
        name, service, port = self._servers()[index]
        address = self._address(self._container(service))
        if self._redirected[name] == address:
            return
        own = self._own_container()
        assert own is not None  # proxies run only in the bench container
        runner = self._address(own)
        delete = self._dnat("-D", name, port, runner)
        self._redirected[name] = address
        add = self._dnat("-A", name, port, runner)
        log.info("%s moved to %s: redirecting the members' link there", service, address)
        for member in self._members:
            if member.alive():
                for command in (delete, add):
                    code, output = member.container.exec_run(command, user="root")
                    if code != 0:
                        raise ComposeError(
                            f"member container {member.pid[:12]}: {' '.join(command)}: {output!r}"
                        )

    @property
    def _broker_root(self) -> str:
        return next(iter(self._broker_configs.values())).zk_root

    def _record(self) -> None:
        """What the run ran on, next to where the local backend keeps its servers."""
        self.spec.base_dir.mkdir(parents=True, exist_ok=True)
        (self.spec.base_dir / "compose.json").write_text(json.dumps(self.describe(), indent=2))

    def describe(self) -> dict[str, Any]:
        """The run's target for its environment record: the engine, the project, each server's
        container and image, and the member containers' image."""
        services = [*self.layout.zk_services, *self._broker_services.values()]
        containers = {}
        for service in services:
            container = self._container(service)
            containers[service] = {
                "id": container.id,
                "image": container.attrs["Config"].get("Image"),  # as the compose file names it
                "image_id": container.attrs.get("Image"),
            }
        try:
            engine = self.client.version().get("Version")
        except APIError:
            engine = None
        return {
            "name": "compose",
            "engine": engine,
            "project": self.project,
            "network": self.network,
            "member_image": self.image,
            "containers": containers,
            "zk_connect": self.layout.zk_connect,
            "brokers": {b: "{}:{}".format(*c.advertised) for b, c in self._broker_configs.items()},
            "links": "proxies in the runner, iptables DNAT in members" if self._proxies else None,
        }

    def stop(self) -> None:
        """Remove the run's member containers and start again whatever the run stopped."""
        for member in self._members:
            try:
                member.close()
            except Exception:
                log.exception("removing member container %s", member.pid[:12])
        self._members.clear()
        for proxy in self._proxies.values():
            proxy.stop()
        self._proxies.clear()
        self._redirected.clear()
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
        options: dict[str, Any] = {}
        # the resolver options the compose file gives its services (docker-compose.yml says why)
        own = self._own_container()
        dns_options = None if own is None else (own.attrs.get("HostConfig") or {}).get("DnsOptions")
        if dns_options:
            options["dns_opt"] = dns_options
        if self._proxies:
            # root only for the entry point's iptables rules; the member runs as MEMBER_USER
            options |= {
                "entrypoint": ["sh", "-c", self._redirect_script(), "member"],
                "user": "root",
                "cap_add": ["NET_ADMIN"],
            }
        # init: signals reach the member as they would a process that is not pid 1
        container = self.client.containers.create(
            self.image,
            command=["rebalance-lab", *args],
            network=self.network,
            labels=labels,
            init=True,
            **options,
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
                log.warning(
                    "no broker counters: %s is not here (mount each broker's volume into bench)", path
                )
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
        if self._proxies:
            self._follow_address(index)
        self._wait_for_quorum()

    def links(self, target: str) -> list[str]:
        """Names of the member links a target means: ``all``, ``zk``, ``brokers``, ``zk-<i>``, ``broker-<i>``."""
        return [name for name, _ in self._links(target)]

    def _links(self, target: str) -> list[tuple[str, Proxy]]:
        if not self._proxies:
            raise ComposeError("this run has no link proxies: its scenario has no link fault step")
        zk = [(n, p) for n, p in self._proxies.items() if n.startswith("zk-")]
        brokers = [(n, p) for n, p in self._proxies.items() if n.startswith("broker-")]
        return links_meant(target, zk, brokers)

    def set_rtt(self, target: str, rtt_ms: float, jitter_ms: float) -> None:
        for _, proxy in self._links(target):
            proxy.set_rtt(rtt_ms, jitter_ms)

    def cut(self, target: str, reset: bool) -> None:
        for _, proxy in self._links(target):
            if reset:
                proxy.cut()
            else:
                proxy.blackhole()

    def heal(self, target: str) -> None:
        for _, proxy in self._links(target):
            proxy.heal()

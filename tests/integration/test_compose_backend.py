"""The compose backend against the same fault interface as the local one.

No Docker engine runs here, so the compose side talks to :class:`Engine`, a double of the Docker
SDK client (the only double in this project) whose containers are real local processes: a member
or broker container runs its ``rebalance-lab`` command, a ZooKeeper container is a server of a real
local ensemble. Faults therefore have real effects on both sides, checked the same way, and the
engine records which container got which call.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from bench.backends import Backend, ClusterSpec, backend_for, pick_zk
from bench.backends.compose import (
    ONEOFF_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ComposeBackend,
    ComposeError,
    ComposeLayout,
)
from bench.backends.local import LocalTopology
from bench.experiment.history import History
from bench.services.ports import free_port
from bench.services.process import all_threads_stopped, freeze, pid_alive
from bench.services.zookeeper import ZooKeeperEnsemble, ZooKeeperServer, server_mode
from group_api import EventKind
from tests.conftest import wait_until

PROJECT = "lab"
NETWORK = "lab_default"
IMAGE = "sha256:rebalance-lab"
TOPICS = {"orders": 4}


# -- the Docker SDK double -------------------------------------------------------------------------


@dataclass
class Container:
    """A container whose main process is a local process (or a ZooKeeper server of a real ensemble)."""

    engine: Engine
    id: str
    labels: dict[str, str]
    command: list[str]
    image: str
    server: ZooKeeperServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    removed: bool = False
    out: Path = field(init=False)
    err: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.engine.dir / f"{self.id}.out"
        self.err = self.engine.dir / f"{self.id}.err"

    @property
    def service(self) -> str:
        return self.labels[SERVICE_LABEL]

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            "Image": self.image,
            "Config": {"Cmd": self.command, "Image": self.image},
            "NetworkSettings": {"Networks": {NETWORK: {}}},
        }

    @property
    def status(self) -> str:
        if self.server is not None:
            return "running" if self.server.is_running() else "exited"
        if self.proc is None:
            return "created"
        if self.proc.poll() is not None:
            return "exited"
        return "paused" if self.paused else "running"

    def _call(self, name: str, *args: Any) -> None:
        self.engine.calls.append((self.service, name, *args))

    def start(self) -> None:
        self._call("start")
        if self.server is not None:
            self.server.start()
            return
        if self.status == "running":
            raise APIError("already running")
        # `rebalance-lab ARGS` as the console script would run it
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench", *self.command[1:]],
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def kill(self, signal: str = "SIGKILL") -> None:
        self._call("kill", signal)
        if self.server is not None:
            self.server.kill()
        elif self.status in ("running", "paused"):
            assert self.proc is not None
            self.proc.send_signal(_signals[signal])
        else:
            raise APIError(f"container {self.id} is not running")

    def stop(self, timeout: int = 10) -> None:
        self._call("stop")
        if self.server is not None:
            self.server.stop(grace=timeout)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def pause(self) -> None:
        self._call("pause")
        assert self.proc is not None
        freeze(self.proc.pid)  # docker pause returns once the cgroup is frozen
        self.paused = True

    def unpause(self) -> None:
        self._call("unpause")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        if self.server is not None:
            return {"StatusCode": 0}
        assert self.proc is not None
        code = self.proc.wait(timeout)
        return {"StatusCode": 128 - code if code < 0 else code}  # as Docker reports a signal's death

    def logs(self, stream: bool, follow: bool, stdout: bool, stderr: bool) -> Iterator[bytes]:
        """The file the process writes to, followed until the process has exited."""
        assert stream and follow and stdout != stderr
        with (self.out if stdout else self.err).open("rb") as f:
            while True:
                exited = self.status == "exited"
                chunk = f.read(65536)
                if chunk:
                    yield chunk
                elif exited:
                    return
                else:
                    time.sleep(0.01)

    def remove(self, force: bool = False) -> None:
        self._call("remove")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.removed = True


_signals = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}


class Containers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, container_id: str) -> Container:
        for c in self.engine.containers_:
            if c.id == container_id and not c.removed:
                return c
        raise NotFound(f"no container {container_id}")

    def list(self, all: bool, filters: dict[str, list[str]]) -> list[Container]:
        wanted = dict(label.split("=", 1) for label in filters["label"])
        return [
            c for c in self.engine.containers_ if not c.removed and all and wanted.items() <= c.labels.items()
        ]

    def create(
        self, image: str, command: list[str], network: str, labels: dict[str, str], init: bool
    ) -> Container:
        # no entrypoint, user or capabilities: members of runs without link faults run as they are
        assert network == NETWORK and init
        self.engine.calls.append((labels[SERVICE_LABEL], "create", image))
        return self.engine.add(labels, command, image)


class Engine:
    """A double of ``docker.DockerClient``: ``containers.get/list/create`` and the containers' calls."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.containers_: list[Container] = []
        self.calls: list[tuple[Any, ...]] = []
        self.containers = Containers(self)
        # the container the runner runs in (the bench service), named as Docker names its host
        self.add(
            {PROJECT_LABEL: PROJECT, SERVICE_LABEL: "bench", ONEOFF_LABEL: "True"},
            [],
            IMAGE,
            socket.gethostname(),
        )

    def add(
        self,
        labels: dict[str, str],
        command: list[str],
        image: str,
        container_id: str | None = None,
        **kw: Any,
    ) -> Container:
        c = Container(self, container_id or uuid.uuid4().hex, labels, command, image, **kw)
        self.containers_.append(c)
        return c

    def version(self) -> dict[str, str]:
        return {"Version": "double"}

    def service(self, name: str, command: list[str], image: str = IMAGE, **kw: Any) -> Container:
        """A container of a compose service, as `docker compose up` makes it."""
        labels = {PROJECT_LABEL: PROJECT, SERVICE_LABEL: name, ONEOFF_LABEL: "False"}
        return self.add(labels, command, image, **kw)

    def close(self) -> None:
        for c in self.containers_:
            if c.server is None and c.proc is not None:
                c.remove(force=True)


# -- both backends, one interface ------------------------------------------------------------------


@dataclass
class Side:
    """A backend and how a test sees its servers: ZooKeeper ``host:port`` and broker pids by id."""

    backend: Backend
    zk: list[tuple[str, int]]
    broker_pid: Any
    engine: Engine | None = None


def spec(tmp_path: Path, zk_nodes: int = 3, brokers: int = 3) -> ClusterSpec:
    return ClusterSpec(
        zk_nodes=zk_nodes,
        brokers=brokers,
        base_dir=tmp_path / "servers",
        topics=TOPICS,
        zk_root=f"/zkmode/run-{uuid.uuid4().hex[:8]}",
        initial_rebalance_delay_ms=0,
        proxied=False,
    )


def broker_command(broker_id: int, zk_connect: str, base: Path) -> list[str]:
    return [
        "rebalance-lab",
        "-v",
        "broker",
        "--id",
        str(broker_id),
        "--zk",
        zk_connect,
        "--port",
        str(free_port()),
        "--log-dir",
        str(base / "logs"),
        "--state-dir",
        str(base / f"stats/broker-{broker_id}"),
        "--initial-rebalance-delay-ms",
        "0",
    ]


@pytest.fixture
def compose_project(tmp_path: Path) -> Iterator[tuple[Engine, ComposeLayout]]:
    """`docker compose up -d zk1 zk2 zk3 broker1 broker2 broker3`, with local processes as containers."""
    ensemble = ZooKeeperEnsemble(3, base_dir=tmp_path / "zk")
    engine = Engine(tmp_path / "engine")
    try:
        ensemble.start()
        names = ("zk1", "zk2", "zk3")
        for name, server in zip(names, ensemble.servers, strict=True):
            engine.service(name, [], "zookeeper:3.8", server=server)
        for i in (1, 2, 3):
            engine.service(
                f"broker{i}", broker_command(i, ensemble.connect_string, tmp_path / "brokers")
            ).start()
        addresses = {n: ("127.0.0.1", s.client_port) for n, s in zip(names, ensemble.servers, strict=True)}
        engine.calls.clear()
        yield engine, ComposeLayout(zk_addresses=addresses)
    finally:
        engine.close()
        ensemble.stop()


@pytest.fixture(params=["local", "compose"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Side]:
    if request.param == "local":
        local = LocalTopology(spec(tmp_path))
        pids = lambda b: local.broker_cluster.broker(b).pid  # noqa: E731
        yield Side(local, [], pids)
        local.stop()
        return
    engine, layout = request.getfixturevalue("compose_project")
    backend = ComposeBackend(spec(tmp_path), client=engine, layout=layout)

    def pid(broker_id: int) -> int | None:
        (c,) = engine.containers.list(all=True, filters={"label": [f"{SERVICE_LABEL}=broker{broker_id}"]})
        return None if c.proc is None else c.proc.pid

    yield Side(backend, [layout.zk_address(i) for i in range(3)], pid, engine)
    backend.stop()


def zk_addresses(side: Side) -> list[tuple[str, int]]:
    if isinstance(side.backend, LocalTopology):
        return [("127.0.0.1", s.client_port) for s in side.backend.ensemble.servers]
    return side.zk


def test_server_faults_have_the_same_effect_on_both(side: Side) -> None:
    backend = side.backend
    backend.start()
    assert backend.brokers == 3
    zk = zk_addresses(side)

    leader = backend.zk_index("leader")
    assert server_mode(*zk[leader]) == "leader"
    follower = backend.zk_index("follower")
    assert server_mode(*zk[follower]) == "follower"

    backend.stop_zk(leader)
    assert backend.stopped_zk() == [leader]
    assert server_mode(*zk[leader]) is None
    backend.restart_zk(leader)
    assert backend.stopped_zk() == []
    assert all(server_mode(*a) in ("leader", "follower") for a in zk)

    broker = backend.coordinator_for("g0")
    pid = side.broker_pid(broker)
    backend.kill_broker(broker)
    assert not pid_alive(pid)

    def moved() -> bool:
        try:
            return backend.coordinator_for("g0") != broker
        except RuntimeError:  # none while the controller reassigns
            return False

    wait_until(moved, 30, what="a new coordinator for g0")

    samples = backend.samples()
    assert len([s for s in samples if s["source"] == "zk"]) == 3
    assert {s["broker"] for s in samples if s["source"] == "broker"} == {1, 2, 3}

    if side.engine is not None:
        zk_service = f"zk{leader + 1}"
        assert side.engine.calls == [
            (zk_service, "stop"),
            (zk_service, "start"),
            (f"broker{broker}", "kill", "SIGKILL"),
        ]


def owned_by(history: History, member: str) -> set[tuple[str, int]]:
    owned: set[tuple[str, int]] = set()
    for e in history.snapshot():
        if e.member == member and e.kind == EventKind.ASSIGNED:
            owned = set(e.partitions or ())
    return owned


def os_pid(side: Side, handle: Any) -> int:
    if side.engine is None:
        return handle.pid
    return side.engine.containers.get(handle.pid).proc.pid


def test_member_faults_have_the_same_effect_on_both(side: Side, tmp_path: Path) -> None:
    backend = side.backend
    backend.start()
    history = History()
    args = [
        "member",
        *backend.member_args("zk"),
        "--group",
        "g0",
        "--topic",
        "orders",
        "--session-timeout-ms",
        "4000",
    ]
    first = backend.spawn_member([*args, "--name", "first"], history, tmp_path / "first.log")
    second = backend.spawn_member(
        [*args, "--name", "second", "--count", "2"], history, tmp_path / "second.log"
    )
    try:
        wait_until(
            lambda: len(first.member_ids) == 1 and len(second.member_ids) == 2, what="members reporting"
        )
        assert first.alive() and second.alive()
        wait_until(lambda: owned_by(history, first.member_ids[0]), what="first to own partitions")

        first.pause()
        assert all_threads_stopped(os_pid(side, first))
        first.resume()
        assert not all_threads_stopped(os_pid(side, first))

        pid = os_pid(side, second)
        second.kill()
        assert not second.alive() and not pid_alive(pid)
        wait_until(lambda: len(owned_by(history, first.member_ids[0])) == 4, what="first to own everything")

        assert first.terminate(timeout=20) == 0
        assert not first.alive()
        left = [e for e in history.snapshot() if e.kind == EventKind.LEFT]
        assert [e.member for e in left] == first.member_ids  # a graceful leave, reported
        assert first.log_path is not None and first.log_path.exists()
    finally:
        first.close()
        second.close()
        history.close()
    if side.engine is not None:
        member_calls = [c[1:] for c in side.engine.calls if c[0] == "member"]
        assert member_calls == [
            ("create", IMAGE),
            ("start",),
            ("create", IMAGE),
            ("start",),
            ("pause",),
            ("unpause",),
            ("kill", "SIGKILL"),
            ("kill", "SIGTERM"),
            ("remove",),
            ("remove",),
        ]


# -- compose only ----------------------------------------------------------------------------------


def test_a_run_restores_what_it_stopped(
    compose_project: tuple[Engine, ComposeLayout], tmp_path: Path
) -> None:
    engine, layout = compose_project
    backend = ComposeBackend(spec(tmp_path), client=engine, layout=layout)
    try:
        backend.start()
        backend.kill_broker(2)
        backend.stop_zk(0)
    finally:
        backend.stop()
    assert engine.calls[-2:] == [("zk1", "start"), ("broker2", "start")]
    record = json.loads((tmp_path / "servers" / "compose.json").read_text())
    assert record["name"] == "compose" and record["engine"] == "double"
    assert record["containers"]["broker1"]["image"] == IMAGE
    assert record["project"] == PROJECT and set(record["containers"]) == {f"zk{i}" for i in (1, 2, 3)} | {
        f"broker{i}" for i in (1, 2, 3)
    }


def test_link_faults_without_proxies_say_why(tmp_path: Path) -> None:
    """Link faults run through proxies the backend starts only for scenarios with link steps
    (tests/system/test_compose_demo.py runs them on real containers)."""
    backend = ComposeBackend(spec(tmp_path), client=Engine(tmp_path))
    for call in [
        lambda: backend.set_rtt("brokers", 20, 0),
        lambda: backend.cut("zk", True),
        lambda: backend.heal("all"),
    ]:
        with pytest.raises(ComposeError, match="no link proxies"):
            call()


def test_what_compose_cannot_give_is_said_before_a_run_starts(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="needs 5 ZooKeeper node"):
        ComposeBackend(spec(tmp_path, zk_nodes=5), client=Engine(tmp_path))
    engine = Engine(tmp_path)  # nothing up
    with pytest.raises(ComposeError, match="docker compose up -d zk1 zk2 zk3 broker1 broker2 broker3"):
        ComposeBackend(spec(tmp_path), client=engine).start()


def test_without_a_docker_engine_run_says_so_before_claiming_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bench.experiment.runner import run

    address = f"unix://{tmp_path}/docker.sock"  # nothing listens there
    monkeypatch.setenv("DOCKER_HOST", address)
    out = tmp_path / "out"
    result = CliRunner().invoke(run, ["demo", "--target", "compose", "--out", str(out)])
    assert result.exit_code == 1
    assert f"no Docker engine reachable at {address}; start one or use --target local" in result.output
    assert "starting" not in result.output and "Traceback" not in result.output
    assert not out.exists()
    with pytest.raises(ComposeError, match="no Docker engine reachable"):
        ComposeBackend(spec(tmp_path)).client  # noqa: B018 (the property connects)


def test_a_broker_delay_other_than_the_profile_s_is_refused(
    compose_project: tuple[Engine, ComposeLayout], tmp_path: Path
) -> None:
    engine, layout = compose_project
    wanted = replace(spec(tmp_path), initial_rebalance_delay_ms=3000)
    with pytest.raises(ComposeError, match="INITIAL_REBALANCE_DELAY_MS=3000 docker compose up -d broker1"):
        ComposeBackend(wanted, client=engine, layout=layout).start()


def test_the_runner_finds_both_targets() -> None:
    assert backend_for("local") is LocalTopology
    assert backend_for("compose") is ComposeBackend


def test_pick_zk() -> None:
    assert pick_zk(["follower", "leader", None], "leader") == 1
    assert pick_zk(["standalone"], "leader") == 0
    assert pick_zk([None, "leader", "follower"], "follower") == 2
    assert pick_zk(["leader", "follower"], 1) == 1
    with pytest.raises(RuntimeError, match="no ZooKeeper server is serving as a follower"):
        pick_zk(["leader", None, None], "follower")


def test_member_containers_are_found_from_the_runner_s_own_container(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    engine.service("zk1", [], "zookeeper:3.8")
    backend = ComposeBackend(spec(tmp_path, brokers=0), client=engine)
    assert (backend.project, backend.image, backend.network) == (PROJECT, IMAGE, NETWORK)

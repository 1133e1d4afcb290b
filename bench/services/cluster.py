"""``rebalance-lab cluster up|down``: a local ZooKeeper ensemble that outlives the command.

``up`` starts the servers as detached JVMs, waits until they serve, writes the topic catalog and
records everything in ``<state-dir>/cluster.json``; ``down`` (any later process) stops them by pid.
The state dir is per user (:func:`default_state_dir`, or ``--state-dir`` / ``REBALANCE_LAB_STATE_DIR``),
so ``down`` finds the cluster from any working directory.

``cluster.json`` lists every process under ``services``: each entry has ``kind``, ``name``, ``pid``,
``match`` (a string that must be in the process's command line, so a reused pid is never signalled)
and ``dir`` (removed on ``down``). Other kinds of service (brokers) append entries of their own and
their connect info as top-level keys (``zk`` now, ``bootstrap`` later); ``down`` needs nothing else.

``topics`` writes topics into the catalogs of a cluster ``up`` did not start (docker compose's).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import click

from bench.services.process import pid_alive, terminate_pid
from coordinator_mode.broker.controller import DEFAULT_ZK_ROOT
from coordinator_mode.group.config import CoordinatorConfig
from group_api import MemberConfig

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
STATE_VERSION = 1
#: Overrides the default state dir, for `up` and `down` alike.
STATE_DIR_ENV = "REBALANCE_LAB_STATE_DIR"
#: Marks a data dir as ours, so `up` never wipes a directory it did not create.
MARKER = ".rebalance-lab-cluster"
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


# -- cluster.json --------------------------------------------------------------------------------


def default_state_dir() -> Path:
    """Per user, not per working directory, so `down` run anywhere finds what `up` started:
    ``$XDG_STATE_HOME/rebalance-lab/cluster``, else ``~/.local/state/rebalance-lab/cluster``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rebalance-lab" / "cluster"


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load_state(state_dir: Path) -> dict[str, Any] | None:
    """The recorded cluster, or None when there is none (or its file is unreadable)."""
    path = state_path(state_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    # Write then rename, so a reader never sees half a file.
    path = state_path(state_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def running_services(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in state.get("services", []) if s.get("pid") and pid_alive(int(s["pid"]), s.get("match"))]


def stop_orphans(zk_dir: Path) -> int:
    """Stop servers an interrupted ``up`` left without a record (they still have pid files)."""
    count = 0
    for pid_file in zk_dir.glob("zk-*/zookeeper.pid"):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if terminate_pid(pid, str(pid_file.parent / "zoo.cfg")):
            log.warning("stopped zookeeper pid %d left behind in %s", pid, pid_file.parent)
            count += 1
    return count


def stop_services(state: dict[str, Any], grace: float = 10.0) -> list[dict[str, Any]]:
    """Stop every recorded process (last started first) and remove their dirs; returns those that ran."""
    stopped = []
    for service in reversed(state.get("services", [])):
        pid = service.get("pid")
        if pid and terminate_pid(int(pid), service.get("match"), grace):
            stopped.append(service)
    for path in [*(s.get("dir") for s in state.get("services", [])), *state.get("dirs", [])]:
        if path:
            shutil.rmtree(path, ignore_errors=True)
    return stopped


# -- options -------------------------------------------------------------------------------------


def parse_topics(
    ctx: click.Context | None, param: click.Parameter | None, values: tuple[str, ...]
) -> dict[str, int]:
    """``NAME:PARTITIONS`` values -> {name: partitions}; errors name the bad value and the format."""
    topics: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition(":")
        if not sep:
            raise click.BadParameter(f"expected NAME:PARTITIONS (e.g. orders:6), got {value!r}: no ':'")
        if not _TOPIC_RE.match(name):
            raise click.BadParameter(f"topic name in {value!r} must be 1-200 of [A-Za-z0-9._-]")
        try:
            partitions = int(count)
        except ValueError:
            raise click.BadParameter(
                f"partitions in {value!r} must be a whole number, got {count!r}"
            ) from None
        if partitions < 1:
            raise click.BadParameter(f"partitions in {value!r} must be at least 1, got {partitions}")
        if name in topics:
            raise click.BadParameter(f"topic {name!r} given twice")
        topics[name] = partitions
    return topics


_state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=STATE_DIR_ENV,
    default=default_state_dir,
    show_default="$XDG_STATE_HOME/rebalance-lab/cluster or ~/.local/state/rebalance-lab/cluster",
    help=f"Where cluster.json, the data and the logs live (or set {STATE_DIR_ENV}).",
)


# -- commands ------------------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """Start or stop a local ZooKeeper ensemble that keeps running between commands."""


@cluster.command()
@click.option(
    "--zk", "zk_size", type=click.IntRange(min=1), default=1, show_default=True, help="ZooKeeper servers."
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    callback=parse_topics,
    metavar="NAME:PARTITIONS",
    help="A topic for the catalog; repeat for more.",
)
@click.option(
    "--brokers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Kafka-wire brokers (coordinator mode).",
)
@click.option(
    "--initial-rebalance-delay-ms",
    type=click.IntRange(min=0),
    default=CoordinatorConfig.initial_rebalance_delay_ms,
    show_default=True,
    help="The brokers' group.initial.rebalance.delay.ms.",
)
@_state_dir_option
@click.option(
    "--zk-root", default=MemberConfig.zk_root, show_default=True, help="Root znode of the topic catalog."
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for a quorum.")
def up(
    zk_size: int,
    topics: dict[str, int],
    brokers: int,
    initial_rebalance_delay_ms: int,
    state_dir: Path,
    zk_root: str,
    timeout: float,
) -> None:
    """Start the ensemble (and brokers) in the background, write the topic catalog, print one JSON line."""
    from bench.services.catalog import provision_topics
    from bench.services.zookeeper import ZooKeeperEnsemble, ZooKeeperNotFound, ZooKeeperStartError

    if not zk_root.startswith("/") or (zk_root != "/" and zk_root.endswith("/")):
        raise click.BadParameter(f"expected an absolute znode path, got {zk_root!r}", param_hint="--zk-root")
    state_dir = state_dir.resolve()
    zk_dir = _fresh_zk_dir(state_dir)
    ensemble = ZooKeeperEnsemble(zk_size, base_dir=zk_dir)
    try:
        ensemble.start(timeout=timeout)
        provision_topics(ensemble.connect_string, topics, zk_root=zk_root, timeout=timeout)
        services = [s.describe() for s in ensemble.servers]
        dirs = [str(zk_dir)]
        bootstrap = None
        if brokers:
            bootstrap, broker_services = _start_brokers(
                ensemble.connect_string,
                brokers,
                state_dir / "brokers",
                topics,
                initial_rebalance_delay_ms,
                timeout,
            )
            services += broker_services
            dirs.append(str(state_dir / "brokers"))
        state = {
            "version": STATE_VERSION,
            "state_dir": str(state_dir),
            "started_wall": time.time(),
            "zk": ensemble.connect_string,
            "zk_root": zk_root,
            "topics": topics,
            "services": services,
            "dirs": dirs,
        }
        if bootstrap:
            state["bootstrap"] = bootstrap
        write_state(state_dir, state)
    except BaseException as exc:
        stop_services({"services": [s for s in locals().get("services", []) if s.get("kind") == "broker"]})
        ensemble.stop()
        if isinstance(exc, ZooKeeperNotFound | ZooKeeperStartError):
            raise click.ClickException(str(exc)) from None
        raise
    ensemble.detach()  # the servers now belong to cluster.json, not to this process
    line = {"zk": ensemble.connect_string, "topics": topics, "state_dir": str(state_dir), "zk_root": zk_root}
    if bootstrap:
        line["bootstrap"] = bootstrap
    click.echo(json.dumps(line))


def _fresh_zk_dir(state_dir: Path) -> Path:
    """An empty ZooKeeper data directory under ``state_dir``, after refusing to start over a running
    cluster and cleaning up a stale one."""
    previous = load_state(state_dir)
    if previous is not None:
        if running_services(previous):
            raise click.ClickException(
                f"a cluster from {state_dir} is already running (zk {previous.get('zk')}); "
                f"run `rebalance-lab cluster down --state-dir {state_dir}` first"
            )
        log.info("cleaning up a stale cluster record in %s", state_dir)
        stop_services(previous)
        state_path(state_dir).unlink(missing_ok=True)
    zk_dir = state_dir / "zookeeper"
    if zk_dir.exists() and any(zk_dir.iterdir()) and not (zk_dir / MARKER).exists():
        raise click.ClickException(
            f"{zk_dir} exists and was not made by `cluster up`; choose another --state-dir"
        )
    stop_orphans(zk_dir)
    shutil.rmtree(zk_dir, ignore_errors=True)  # old data would carry another ensemble's epochs
    zk_dir.mkdir(parents=True)
    (zk_dir / MARKER).touch()
    return zk_dir


def _start_brokers(
    zk_connect: str, size: int, base_dir: Path, topics: dict[str, int], initial_delay_ms: int, timeout: float
) -> tuple[str, list[dict[str, Any]]]:
    """Start brokers that outlive this command; returns the bootstrap string and their service records."""
    from bench.services.brokers import BrokerCluster

    shutil.rmtree(base_dir, ignore_errors=True)
    brokers = BrokerCluster(
        zk_connect, size, base_dir, topics=topics, initial_rebalance_delay_ms=initial_delay_ms
    )
    try:
        brokers.start(timeout=timeout)
    except BaseException:
        brokers.stop()
        raise
    services = [
        {"kind": "broker", "name": f"broker-{b.id}", "pid": b.pid, "match": str(b.state_dir), "dir": None}
        for b in brokers.brokers
    ]
    client = brokers.zk  # only the launcher's own ZooKeeper session ends here, not the brokers
    client.stop()
    client.close()
    return brokers.bootstrap, services


@cluster.command()
@click.option("--zk", "zk_connect", required=True, help="ZooKeeper connect string of a running cluster.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    required=True,
    callback=parse_topics,
    metavar="NAME:PARTITIONS",
    help="A topic for the catalogs; repeat for more.",
)
@click.option(
    "--zk-root",
    default=MemberConfig.zk_root,
    show_default=True,
    help="Root znode of zk mode's topic catalog.",
)
@click.option(
    "--broker-root",
    default=DEFAULT_ZK_ROOT,
    show_default=True,
    help="Root znode of the brokers' cluster metadata.",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for ZooKeeper.")
def topics(zk_connect: str, topics: dict[str, int], zk_root: str, broker_root: str, timeout: float) -> None:
    """Create (or resize) topics in a running cluster that `up` did not start, e.g. in docker compose.

    Both catalogs get them: zk mode's under --zk-root and the brokers' under --broker-root.
    """
    from bench.services.catalog import provision_topics

    provision_topics(zk_connect, topics, zk_root=zk_root, broker_root=broker_root, timeout=timeout)
    click.echo(
        json.dumps({"zk": zk_connect, "topics": topics, "zk_root": zk_root, "broker_root": broker_root})
    )


@cluster.command()
@_state_dir_option
def down(state_dir: Path) -> None:
    """Stop everything `cluster up` started from this state dir and remove its data."""
    state_dir = state_dir.resolve()
    state = load_state(state_dir)
    if state is None:
        orphans = stop_orphans(state_dir / "zookeeper")
        if orphans:
            click.echo(f"no cluster recorded in {state_dir}, but stopped {orphans} server(s) left behind")
        else:
            click.echo(
                f"no cluster recorded in {state_dir}; nothing to stop. A cluster started with "
                f"another --state-dir (or {STATE_DIR_ENV}) is stopped with the same one: "
                "rebalance-lab cluster down --state-dir DIR"
            )
        return
    stopped = stop_services(state)
    state_path(state_dir).unlink(missing_ok=True)
    try:
        state_dir.rmdir()  # only if nothing else lives there
    except OSError:
        pass
    if stopped:
        names = ", ".join(f"{s.get('name', s.get('kind'))} (pid {s['pid']})" for s in stopped)
        click.echo(f"stopped {names}; removed the data in {state_dir}")
    else:
        click.echo(f"the cluster recorded in {state_dir} was not running; removed its files")

"""The fault interface: what a run needs from wherever its servers and members live.

The runner talks only to a :class:`Backend`. :class:`bench.backends.local.LocalTopology` runs everything
as processes on this machine; :mod:`bench.backends.compose` drives the same roles as docker-compose services
through the Docker API. A scenario file runs unchanged on either.

The backends are named here by import string (:data:`BACKENDS`) and loaded only when asked for, so
this module never imports them: they import it (for :class:`ClusterSpec`), not the other way round.
The records both write to ``samples.jsonl`` are built in :mod:`bench.backends.samples`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.experiment.history import History
from group_api.registry import resolve

#: Where a run's servers and members live (``rebalance-lab run --target``) -> "module:attribute" of
#: its :data:`BackendFactory`, imported only by :func:`backend_for`.
BACKENDS = {
    "local": "bench.backends.local:LocalTopology",
    "compose": "bench.backends.compose:ComposeBackend",
}
TARGETS = tuple(BACKENDS)
#: A target's "module:attribute" of a callable that raises when it cannot run anything at all.
PREFLIGHT = {"compose": "bench.backends.compose:preflight"}


class TargetError(RuntimeError):
    """A ``--target`` cannot run what is asked of it; the message says what to do instead."""


@dataclass(frozen=True)
class ClusterSpec:
    """What a run asks of its backend."""

    zk_nodes: int
    brokers: int  # 0: no brokers (zk mode)
    base_dir: Path  # where the run keeps server data and logs
    topics: dict[str, int]
    zk_root: str  # zk_mode's root znode (the topic catalog lives below it)
    initial_rebalance_delay_ms: int
    proxied: bool  # members reach servers through our TCP proxies (the scenario injects network faults)
    #: the brokers are real Apache Kafka of this target (``bench.services.kafka_config``), not ours
    kafka: str | None = None
    broker_zk_session_timeout_ms: int = 18_000  # the brokers' zookeeper.session.timeout.ms
    # KIP-848 groups: group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms
    consumer_session_timeout_ms: int = 45_000
    consumer_heartbeat_interval_ms: int = 5_000


class MemberHandle(Protocol):
    """One process (or container) hosting one or more group members."""

    #: A process id or container id, recorded in the history.
    pid: int | str
    #: The members it reported, in order of appearance.
    member_ids: list[str]
    log_path: Path | None

    def alive(self) -> bool: ...
    def terminate(  # graceful: the members leave; ``on_escalate`` runs just before a SIGKILL
        self, timeout: float = 30.0, on_escalate: Callable[[], None] | None = None
    ) -> int | None: ...
    def kill(self) -> None: ...  # SIGKILL
    def pause(self) -> None: ...  # SIGSTOP (docker pause)
    def resume(self) -> None: ...
    def close(self) -> None: ...  # make sure it is gone


class Backend(Protocol):
    """Servers, members and faults for one run."""

    #: brokers started (0 in zk mode)
    brokers: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    #: where the run's servers and members run, for its environment record (``name``: the target)
    def describe(self) -> dict[str, Any]: ...

    # members
    def member_args(self, mode: str) -> list[str]: ...
    def spawn_member(self, args: list[str], history: History, log_path: Path) -> MemberHandle: ...

    # measurements
    def samples(self) -> list[dict[str, Any]]: ...

    # faults
    def coordinator_for(self, group: str) -> int: ...
    def kill_broker(self, broker_id: int) -> None: ...
    def zk_index(self, node: int | str) -> int: ...
    def stop_zk(self, index: int) -> None: ...
    def stopped_zk(self) -> list[int]: ...
    def restart_zk(self, index: int) -> None: ...
    def links(self, target: str) -> list[str]: ...
    def set_rtt(self, target: str, rtt_ms: float, jitter_ms: float) -> None: ...
    def cut(self, target: str, reset: bool) -> None: ...
    def heal(self, target: str) -> None: ...


BackendFactory = Callable[[ClusterSpec], Backend]


def pick_zk(modes: Sequence[str | None], node: int | str) -> int:
    """The server index a ``stop_zk`` step means, given each server's ``srvr`` mode (None: not serving).

    ``leader`` is the leader (a standalone server leads itself), ``follower`` the first follower.
    """
    if node == "leader":
        return next((i for i, m in enumerate(modes) if m in ("leader", "standalone")), 0)
    if node == "follower":
        for i, mode in enumerate(modes):
            if mode == "follower":
                return i
        raise RuntimeError(f"no ZooKeeper server is serving as a follower (modes: {list(modes)})")
    return int(node)


def backend_for(target: str) -> BackendFactory:
    """The backend factory of a ``--target``."""
    if target not in BACKENDS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    return resolve(BACKENDS[target])


def check_target(target: str) -> None:
    """Raise :class:`TargetError` before any run starts when ``target`` cannot run anything at all
    (compose: no Docker engine answers)."""
    if target in PREFLIGHT:
        resolve(PREFLIGHT[target])()

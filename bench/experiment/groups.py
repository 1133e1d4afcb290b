"""What a run keeps per consumer group and per run beside its timeline: the group's member processes
and their state from the history (:class:`MemberGroup`), and the sampler of ZooKeeper's ``mntr`` and
the brokers' counters (:class:`Sampler`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.analysis.ownership import GroupOwnership
from bench.backends import (
    Backend,
    MemberHandle,
)
from bench.experiment.history import History
from group_api import LEAVE_BOUND_S
from group_api.events import TopicPartition

#: How long a member process may take to leave after SIGTERM before it is killed: above every
#: member's leave bound with the default request timeout (LEAVE_BOUND_S + 30 s) plus its exit.
#: An escalation is recorded as a kill and reported as a harness problem (``MemberGroup.terminate``).
TERMINATE_TIMEOUT_S = LEAVE_BOUND_S + 38.0


class RunError(RuntimeError):
    """A run could not complete; the message says which step and why."""


Spawn = Callable[[list[str], History, Path], MemberHandle]


@dataclass
class MemberGroup:
    """The members of one consumer group: their processes, and the group's state from the history.

    ``member_args`` are the ``rebalance-lab member`` flags every member of the group gets;
    ``spawn`` starts one process (the backend's ``spawn_member``).
    """

    name: str
    topics: dict[str, int]
    members_per_process: int
    member_args: list[str]
    history: History
    log_dir: Path
    spawn_process: Spawn
    procs: list[MemberHandle] = field(default_factory=list)
    expected: dict[int | str, int] = field(default_factory=dict)  # pid -> members it hosts
    dead: set[str] = field(default_factory=set)
    paused: set[int | str] = field(default_factory=set)  # pids

    @property
    def partitions(self) -> set[TopicPartition]:
        return {(t, p) for t, n in self.topics.items() for p in range(n)}

    def spawn(self, members: int) -> list[MemberHandle]:
        new: list[MemberHandle] = []
        while members > 0:
            count = min(members, self.members_per_process)
            i = len(self.procs)
            args = [
                "member",
                *self.member_args,
                "--group",
                self.name,
                "--name",
                f"{self.name}-p{i}",
                "--count",
                str(count),
            ]
            proc = self.spawn_process(args, self.history, self.log_dir / f"{self.name}-p{i}.log")
            self.expected[proc.pid] = count
            self.procs.append(proc)
            new.append(proc)
            members -= count
        deadline = time.monotonic() + 60
        for proc in new:
            while len(proc.member_ids) < self.expected[proc.pid] and proc.alive():
                if time.monotonic() > deadline:
                    raise RunError(f"{self.name}: members of pid {proc.pid} did not report within 60 s")
                time.sleep(0.05)
            if not proc.alive() and len(proc.member_ids) < self.expected[proc.pid]:
                tail = proc.log_path.read_text()[-1500:] if proc.log_path and proc.log_path.exists() else ""
                raise RunError(f"{self.name}: member process {proc.pid} exited early: {tail}")
        return new

    def live_procs(self) -> list[MemberHandle]:
        return [p for p in self.procs if p.alive()]

    def live_ids(self) -> list[str]:
        return [m for p in self.live_procs() for m in p.member_ids if m not in self.dead]

    def view(self, until_ns: int | None = None) -> GroupOwnership:
        """The group's ownership from its events (those before ``until_ns``, if given); killed members are dead."""
        events = self.history.snapshot()
        view = GroupOwnership(self.partitions).apply_all(
            e for e in events if e.group == self.name and (until_ns is None or e.mono_ns < until_ns)
        )
        for member in self.dead:
            view.mark_dead(member)
        return view

    def kill(self, proc: MemberHandle) -> None:
        """SIGKILL a member process; its members are dead from now on."""
        proc.kill()
        self.dead.update(proc.member_ids)

    def leader(self) -> str | None:
        leaders = self.view().leaders(self.live_ids()) - {None}
        return next(iter(leaders)) if len(leaders) == 1 else None

    def stable(self, newer_than: int | None) -> bool:
        ids = self.live_ids()
        view = self.view()
        if not ids or not view.converged(ids):
            return False
        generation = view.generation(ids)
        return newer_than is None or (generation is not None and generation > newer_than)

    def generation(self) -> int | None:
        return self.view().generation(self.live_ids())

    def terminate(self, proc: MemberHandle, action: str, step: int = -1) -> None:
        """SIGTERM: the members leave. A process that ignores it for :data:`TERMINATE_TIMEOUT_S` is
        killed, and the kill is recorded at that moment, as a ``kill`` phase of ``action`` flagged
        ``escalated``: the replay treats its members as dead from then on (not as owners that never
        left), and the summary reports the escalation as a harness problem."""

        def record_kill() -> None:
            self.dead.update(proc.member_ids)
            self.history.record(
                "action",
                action=action,
                phase="kill",
                step=step,
                group=self.name,
                targets=list(proc.member_ids),
                params={"escalated": True, "pid": proc.pid, "ignored_sigterm_s": TERMINATE_TIMEOUT_S},
            )

        proc.terminate(TERMINATE_TIMEOUT_S, on_escalate=record_kill)

    def stop_all(self, action: str = "stop", step: int = -1) -> None:
        """Graceful first (SIGTERM, members leave, see :meth:`terminate`), then whatever is left is
        killed; in parallel, so a group of many processes stops in one leave's time."""
        threads = [
            threading.Thread(target=self.terminate, args=(p, action, step)) for p in self.procs if p.alive()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in self.procs:
            p.close()


@dataclass
class Sampler:
    """Samples ZooKeeper's mntr and the brokers' counters into ``samples.jsonl``."""

    topology: Backend
    path: Path
    period_s: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._file = open(self.path, "a")  # noqa: SIM115
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def sample(self) -> None:
        lines = [json.dumps(s, separators=(",", ":")) for s in self.topology.samples()]
        with self._lock:
            if not self._file.closed:
                self._file.write("".join(line + "\n" for line in lines))
                self._file.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.sample()
        with self._lock:
            self._file.close()

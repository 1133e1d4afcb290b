"""A run's ``events.jsonl`` read back and replayed in clock order, for the checker and the metrics.

:class:`RunHistory` parses the file: the ``run`` lines (groups, partitions), member events
(:class:`group_api.Event`), the harness's ``action`` lines and any ``offsets_committed`` /
``offsets_fetched`` lines. Lines it cannot read are kept as ``problems``, never dropped silently.

:class:`Replay` walks it on the one monotonic clock and keeps, per group, who *counts* as owning
what, with the one fold of :mod:`bench.analysis.ownership` (the runner's waits use the same one).
The replay adds what only the harness's action records can say, as the actions table
(:mod:`bench.experiment.actions`) declares per action:

* a member named in a killing action's targets (``kill_member``/``kill_leader``) owns nothing from
  the action's start (a dead process consumes nothing; it cannot say so); so does a target of an
  action record with ``phase: "kill"``, which an action that kills as it goes (a rolling restart
  with SIGKILL) writes at each kill;
* a paused member owns nothing from the ``pause_member`` start until its first ownership event
  (``assigned``, ``revoked``, ``left``, ``session_lost``) after the resume: a frozen process does
  nothing, and what matters is what it reports once awake.

A member is *live* when it has reported something and is neither dead, gone (``left``) nor paused;
between the resume and its first report it is live but owns nothing, so the group cannot look
converged before the woken member has caught up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.analysis.ownership import GroupOwnership
from bench.experiment.actions import KILL_ACTIONS
from bench.services.kafka_config import KAFKA_MODE, ZK_CHROOT_BASE
from group_api import Event, EventKind, TopicPartition

#: The ZooKeeper namespace (top-level znode) each mode's load shows up under in ``mntr``.
ZK_NAMESPACES = {"zk": "zkmode", "coordinator": "kafka", KAFKA_MODE: ZK_CHROOT_BASE.strip("/")}


@dataclass(frozen=True)
class ActionRecord:
    action: str
    phase: str  # "start" | "end"
    step: int
    group: str | None
    targets: tuple[str, ...]
    mono_ns: int
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class OffsetRecord:
    """An acknowledged commit or an answered fetch, as the coordinator-mode member reports them."""

    kind: str  # "committed" | "fetched"
    member: str
    group: str
    mono_ns: int
    offsets: tuple[tuple[str, int, int], ...]  # (topic, partition, offset); fetched -1 = none stored
    request_mono_ns: int  # when the request was sent (fetch); the acknowledgement time otherwise


@dataclass(frozen=True)
class RunGroup:
    name: str
    mode: str
    variant: str
    partitions: frozenset[TopicPartition]
    namespace: str  # ZooKeeper namespace of this mode's traffic


@dataclass(frozen=True)
class RunHistory:
    start_ns: int
    end_ns: int
    groups: dict[str, RunGroup]
    events: tuple[Event, ...]
    actions: tuple[ActionRecord, ...]
    offsets: tuple[OffsetRecord, ...] = ()
    problems: tuple[str, ...] = ()
    #: the run start record's other fields (scenario, repetition, settings, ... as the runner wrote them)
    info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: whether the runner recorded the run's end (a run cut short has none)
    ended: bool = True

    @classmethod
    def read(cls, path: str | Path) -> RunHistory:
        with open(path) as f:
            return cls.from_lines(f)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> RunHistory:
        return _parse(lines)

    @property
    def analysis_end_ns(self) -> int:
        """Where the measured part ends: the ``stop`` action's start, else the run's end."""
        stops = [a.mono_ns for a in self.actions if a.action == "stop" and a.phase == "start"]
        return min(stops) if stops else self.end_ns

    def member_groups(self) -> dict[str, str]:
        return {e.member: e.group for e in self.events}

    def action_end(self, start: ActionRecord) -> int | None:
        """The mono_ns of the end record matching an action's start, if recorded."""
        for a in self.actions:
            if (
                a.phase == "end"
                and a.step == start.step
                and a.action == start.action
                and a.mono_ns >= start.mono_ns
            ):
                return a.mono_ns
        return None


_RUN_KEYS = frozenset({"event", "phase", "groups", "partitions", "mono_ns", "wall"})


def _offset_record(kind: str, d: dict[str, Any], mono_ns: int) -> OffsetRecord:
    return OffsetRecord(
        kind=kind.removeprefix("offsets_"),
        member=str(d["member"]),
        group=str(d["group"]),
        mono_ns=mono_ns,
        offsets=tuple((str(t), int(p), int(o)) for t, p, o in d["offsets"]),
        request_mono_ns=int(d.get("request_mono_ns", mono_ns)),
    )


def _action_record(d: dict[str, Any], mono_ns: int) -> ActionRecord:
    return ActionRecord(
        action=str(d["action"]),
        phase=str(d["phase"]),
        step=int(d.get("step", -1)),
        group=d.get("group"),
        targets=tuple(str(t) for t in d.get("targets") or ()),
        mono_ns=mono_ns,
        params=dict(d.get("params") or {}),
    )


def _parse(lines: Iterable[str]) -> RunHistory:
    """Read ``events.jsonl`` lines; what cannot be read becomes a ``problems`` entry."""
    events: list[Event] = []
    actions: list[ActionRecord] = []
    offsets: list[OffsetRecord] = []
    problems: list[str] = []
    run_lines: list[dict[str, Any]] = []
    stamps: list[int] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
            kind = d["event"]
            mono_ns = int(d["mono_ns"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            problems.append(f"line {number}: not a history record: {line[:120]}")
            continue
        stamps.append(mono_ns)
        try:
            if kind in ("offsets_committed", "offsets_fetched"):
                offsets.append(_offset_record(kind, d, mono_ns))
            elif kind in EventKind._value2member_map_:
                events.append(Event.from_dict(d))
            elif kind == "action":
                actions.append(_action_record(d, mono_ns))
            elif kind == "run":
                run_lines.append(d)
            else:
                problems.append(f"line {number}: unknown record {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"line {number}: malformed {kind!r} record ({exc!r})")
    events.sort(key=lambda e: e.mono_ns)
    actions.sort(key=lambda a: a.mono_ns)
    offsets.sort(key=lambda o: o.mono_ns)
    starts = [d for d in run_lines if d.get("phase") == "start"]
    ends = [d for d in run_lines if d.get("phase") == "end"]
    if not starts:
        problems.append("no run start record: groups and partitions inferred from member events")
    groups = _groups(starts[0] if starts else {}, events)
    start_ns = int(starts[0]["mono_ns"]) if starts else min(stamps, default=0)
    end_ns = int(ends[-1]["mono_ns"]) if ends else max(stamps, default=0)
    info = {k: v for k, v in (starts[0] if starts else {}).items() if k not in _RUN_KEYS}
    return RunHistory(
        start_ns,
        end_ns,
        groups,
        tuple(events),
        tuple(actions),
        tuple(offsets),
        tuple(problems),
        info,
        ended=bool(ends),
    )


def _groups(run: dict[str, Any], events: list[Event]) -> dict[str, RunGroup]:
    declared = run.get("groups") or {}
    run_root = run.get("zk_root")  # where the run put its zk members, for every zk group
    partitions = run.get("partitions") or {}
    out: dict[str, RunGroup] = {}
    for name, spec in declared.items():
        if name in partitions:
            parts = frozenset((str(t), int(p)) for t, p in partitions[name])
        else:
            parts = frozenset((t, p) for t, n in (spec.get("topics") or {}).items() for p in range(int(n)))
        mode = str(spec.get("mode", ""))
        root = spec.get("zk_root") or (run_root if mode == "zk" else None)
        namespace = root.strip("/").split("/", 1)[0] if root else ZK_NAMESPACES.get(mode, mode)
        out[name] = RunGroup(name, mode, str(spec.get("variant", "")), parts, namespace)
    for e in events:  # groups nobody declared: what their members reported is all we know
        if e.group not in out:
            out[e.group] = RunGroup(
                e.group, e.mode, e.variant, frozenset(), ZK_NAMESPACES.get(e.mode, e.mode)
            )
        if e.group not in declared and e.kind == EventKind.ASSIGNED:
            g = out[e.group]
            out[e.group] = RunGroup(
                g.name, g.mode, g.variant, g.partitions | set(e.partitions or ()), g.namespace
            )
    return out


# -- replay ----------------------------------------------------------------------------------------


class StepKind(StrEnum):
    EVENT = "event"
    ACTION = "action"


@dataclass(frozen=True)
class ReplayStep:
    """One thing that happened, yielded after its effects were applied."""

    mono_ns: int
    kind: StepKind
    group: str | None  # the member's group, or the action's (None: every group)
    event: Event | None = None
    action: ActionRecord | None = None


class Replay:
    """Applies a history step by step; read ``groups`` after each yielded step."""

    def __init__(self, history: RunHistory) -> None:
        self.history = history
        self.groups = {name: GroupOwnership(spec.partitions) for name, spec in history.groups.items()}
        self._member_group = history.member_groups()
        self.late_events: list[Event] = []  # events stamped after their member was killed

    def items(self) -> list[ActionRecord | Event]:
        """Actions and member events in clock order; an action sorts before an event stamped at the
        same instant (a kill precedes what follows it)."""
        keyed: list[tuple[int, int, ActionRecord | Event]] = [(a.mono_ns, 0, a) for a in self.history.actions]
        keyed += [(e.mono_ns, 1, e) for e in self.history.events]
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [item for _, _, item in keyed]

    def apply(self, item: ActionRecord | Event) -> ReplayStep | None:
        """Apply one item; None for an event of a member already killed (kept in ``late_events``)."""
        if isinstance(item, Event):
            state = self.groups[item.group]
            if item.member in state.members and state.members[item.member].dead:
                self.late_events.append(item)
                return None
            state.apply(item)
            return ReplayStep(item.mono_ns, StepKind.EVENT, item.group, event=item)
        for target in item.targets:
            group = self._member_group.get(target)
            if group is None:
                continue  # a broker, a ZooKeeper server, or a member that never reported
            state = self.groups[group]
            if (item.action in KILL_ACTIONS and item.phase == "start") or item.phase == "kill":
                state.change(target, dead=True)
            elif item.action == "pause_member" and item.phase == "start":
                state.change(target, paused=True)
            elif item.action == "pause_member" and item.phase == "end":
                state.change(target, paused=False, awaiting_report=True)
        return ReplayStep(item.mono_ns, StepKind.ACTION, item.group, action=item)

    def __iter__(self) -> Iterator[ReplayStep]:
        for item in self.items():
            step = self.apply(item)
            if step is not None:
                yield step

    def groups_of(self, action: ActionRecord) -> list[str]:
        """The groups an action concerns: its own, else those of its member targets, else all."""
        if action.group is not None and action.group in self.groups:
            return [action.group]
        by_target = sorted({self._member_group[t] for t in action.targets if t in self._member_group})
        return by_target or list(self.groups)

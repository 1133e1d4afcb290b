"""A run's ``events.jsonl`` read back and replayed in clock order, for the checker and the metrics.

:class:`RunHistory` parses the file: the ``run`` lines (groups, partitions), member events
(:class:`group_api.Event`), the harness's ``action`` lines and any ``offsets_committed`` /
``offsets_fetched`` lines. Lines it cannot read are kept as ``problems``, never dropped silently.

:class:`Replay` walks it on the one monotonic clock and keeps, per group, who *counts* as owning
what. Counted ownership follows the members' reports (``assigned`` = the full set, ``revoked``
removes, ``left``/``session_lost`` clear) with two corrections the events alone cannot express:

* a member named in a ``kill_member``/``kill_leader`` action's targets owns nothing from the
  action's start (a dead process consumes nothing; it cannot say so); so does a target of an action
  record with ``phase: "kill"``, which an action that kills as it goes (a rolling restart with
  SIGKILL) writes at each kill;
* a paused member owns nothing from the ``pause_member`` start until its first ownership event
  (``assigned``, ``revoked``, ``left``, ``session_lost``) after the resume: a frozen process does
  nothing, and what matters is what it reports once awake.

A member is *live* when it has reported something and is neither dead, gone (``left``) nor paused;
between the resume and its first report it is live but owns nothing, so the group cannot look
converged before the woken member has caught up.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from group_api import Event, EventKind, TopicPartition

#: Member events after which a woken member's reports count again.
OWNERSHIP_EVENTS = frozenset({EventKind.ASSIGNED, EventKind.REVOKED, EventKind.LEFT, EventKind.SESSION_LOST})
KILL_ACTIONS = frozenset({"kill_member", "kill_leader"})
#: The ZooKeeper namespace (top-level znode) each mode's load shows up under in ``mntr``.
ZK_NAMESPACES = {"zk": "zkmode", "coordinator": "kafka"}


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


def _parse(lines: Iterable[str]) -> RunHistory:
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
                offsets.append(
                    OffsetRecord(
                        kind=kind.removeprefix("offsets_"),
                        member=str(d["member"]),
                        group=str(d["group"]),
                        mono_ns=mono_ns,
                        offsets=tuple((str(t), int(p), int(o)) for t, p, o in d["offsets"]),
                        request_mono_ns=int(d.get("request_mono_ns", mono_ns)),
                    )
                )
            elif kind in EventKind._value2member_map_:
                events.append(Event.from_dict(d))
            elif kind == "action":
                actions.append(
                    ActionRecord(
                        action=str(d["action"]),
                        phase=str(d["phase"]),
                        step=int(d.get("step", -1)),
                        group=d.get("group"),
                        targets=tuple(str(t) for t in d.get("targets") or ()),
                        mono_ns=mono_ns,
                        params=dict(d.get("params") or {}),
                    )
                )
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


@dataclass
class MemberState:
    reported: frozenset[TopicPartition] = frozenset()  # what the member last said it owns
    generation: int | None = None
    leader: str | None = None
    dead: bool = False
    gone: bool = False  # left gracefully
    paused: bool = False  # SIGSTOPped: not live, owns nothing
    awaiting_report: bool = False  # resumed, owns nothing until its next ownership event
    settled: bool = False  # its last ownership event was ``assigned`` (not mid-rebalance)

    @property
    def live(self) -> bool:
        return not (self.dead or self.gone or self.paused)

    @property
    def counted(self) -> frozenset[TopicPartition]:
        if self.dead or self.gone or self.paused or self.awaiting_report:
            return frozenset()
        return self.reported


class GroupState:
    """One group's members with incrementally kept owners, live generations and overlaps."""

    def __init__(self, group: RunGroup) -> None:
        self.spec = group
        self.members: dict[str, MemberState] = {}
        self.owners: dict[TopicPartition, set[str]] = {}
        self._generations: Counter[int | None] = Counter()  # over live members
        self._live = 0
        self._unowned = len(group.partitions)
        self.overlapping: set[TopicPartition] = set()

    # The members' contributions are removed before a change and added back after it.
    def _remove(self, name: str, m: MemberState) -> None:
        for tp in m.counted:
            owners = self.owners[tp]
            owners.discard(name)
            if len(owners) == 1:
                self.overlapping.discard(tp)
            if not owners:
                del self.owners[tp]
                if tp in self.spec.partitions:
                    self._unowned += 1
        if m.live:
            self._live -= 1
            self._generations[m.generation] -= 1
            if not self._generations[m.generation]:
                del self._generations[m.generation]

    def _add(self, name: str, m: MemberState) -> None:
        for tp in m.counted:
            owners = self.owners.setdefault(tp, set())
            if not owners and tp in self.spec.partitions:
                self._unowned -= 1
            owners.add(name)
            if len(owners) > 1:
                self.overlapping.add(tp)
        if m.live:
            self._live += 1
            self._generations[m.generation] += 1

    def change(self, name: str, **updates: Any) -> None:
        m = self.members.get(name)
        if m is None:
            m = self.members[name] = MemberState()
        else:
            self._remove(name, m)
        for key, value in updates.items():
            setattr(m, key, value)
        self._add(name, m)

    def apply(self, event: Event) -> None:
        m = self.members.get(event.member) or MemberState()
        woken = {"awaiting_report": False} if event.kind in OWNERSHIP_EVENTS else {}
        if event.kind == EventKind.ASSIGNED:
            self.change(
                event.member,
                reported=frozenset(event.partitions or ()),
                generation=event.generation,
                leader=event.extra.get("leader"),
                gone=False,
                settled=True,
                **woken,
            )
        elif event.kind == EventKind.REVOKED:
            self.change(
                event.member, reported=m.reported - frozenset(event.partitions or ()), settled=False, **woken
            )
        elif event.kind in (EventKind.LEFT, EventKind.SESSION_LOST):
            self.change(
                event.member,
                reported=frozenset(),
                generation=None,
                gone=event.kind == EventKind.LEFT,
                settled=False,
                **woken,
            )
        else:
            self.change(event.member, gone=False if event.kind == EventKind.JOINED else m.gone)

    # -- questions -------------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return self._live

    @property
    def unowned(self) -> int:
        """Partitions of the group that no member counts as owning."""
        return self._unowned

    def generation(self) -> int | None:
        """The one generation every live member holds, else None."""
        if len(self._generations) == 1:
            return next(iter(self._generations))
        return None

    def latest_generation(self) -> int | None:
        known = [g for g in self._generations if g is not None]
        return max(known) if known else None

    def stable(self) -> bool:
        """Live members exist, hold one generation, and each last reported an assignment."""
        if self._live == 0 or self.generation() is None:
            return False
        return all(m.settled and not m.awaiting_report for m in self.members.values() if m.live)

    def converged(self) -> bool:
        """Live members exist, hold one generation, and own every partition exactly once."""
        return (
            self._live > 0
            and self.generation() is not None
            and self._unowned == 0
            and not self.overlapping
            and all(tp in self.spec.partitions for tp in self.owners)
        )

    def live_members(self) -> list[str]:
        return [n for n, m in self.members.items() if m.live]


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
        self.groups = {name: GroupState(spec) for name, spec in history.groups.items()}
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

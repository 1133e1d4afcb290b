"""Correctness checks on a run's history; every failure is returned as a record, never hidden.

Checks (ownership as :mod:`bench.analysis.replay` counts it: kills end ownership at the kill, a paused
member owns nothing from the pause until its first ownership event after the resume):

``double_ownership``
    No partition owned by two members of a group at the same time. Each overlap is reported with
    the partition, every member involved, its start and its duration (``open_at_end`` when it
    still held at the end of the run).
``unowned_when_stable``
    Once a group is stable - every live member holds one generation and last reported an
    assignment, checked just before each action and at the end of the run - every partition is
    owned. ``not_stable_at_end``: live members had not settled when the run stopped.
``multiple_leaders``
    Leader variants (zk chain and herd, coordinator classic and cooperative): members name at most one leader per
    generation (``leader`` on ``assigned`` and ``leader_elected``), and at most one member computes
    the assignment of a generation (``assignment_computed``). ``no_leader``: the generation the group
    converged on at the end, with no leader named.
``offset_lost``
    No committed offset is lost, e.g. across a coordinator failover. Members that commit emit::

        {"event": "offsets_committed", "member": M, "group": G, "mono_ns": T, "wall": W,
         "offsets": [[topic, partition, offset], ...]}        # after the commit was acknowledged
        {"event": "offsets_fetched", "member": M, "group": G, "mono_ns": T, "wall": W,
         "request_mono_ns": T0, "offsets": [[topic, partition, offset], ...]}   # -1: none stored

    A fetch must return, for every partition, the offset of the last commit acknowledged before the
    fetch was sent (``request_mono_ns``, default ``mono_ns``). Returning less is a loss; the record
    says whether a ``kill_coordinator`` happened between the commit and the fetch.
``late_event``
    A member reported something after the harness killed it: the kill's targets were wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bench.analysis.ownership import GroupOwnership
from bench.analysis.replay import ActionRecord, Replay, RunHistory
from bench.services.kafka_config import KAFKA_MODE, KAFKA_TARGETS
from group_api import EventKind, TopicPartition

#: (mode, variant) pairs in which one member leads each generation.
LEADER_VARIANTS = frozenset(
    {("zk", "chain"), ("zk", "herd"), ("zk", "curator"), ("coordinator", "classic"), ("coordinator", "java")}
    # KIP-429's cooperative rebalancing keeps the classic protocol's leader
    | {("coordinator", "cooperative")}
    # real Kafka serving classic members: the coordinator elects one leader per generation (KIP-848's
    # consumer protocol has none: the broker assigns)
    | {(KAFKA_MODE, name) for name, t in KAFKA_TARGETS.items() if t.member_protocol == "classic"}
)


class Check(StrEnum):
    DOUBLE_OWNERSHIP = "double_ownership"
    UNOWNED_WHEN_STABLE = "unowned_when_stable"
    NOT_STABLE_AT_END = "not_stable_at_end"
    MULTIPLE_LEADERS = "multiple_leaders"
    NO_LEADER = "no_leader"
    OFFSET_LOST = "offset_lost"
    LATE_EVENT = "late_event"


@dataclass(frozen=True)
class Failure:
    check: Check
    group: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check.value, "group": self.group, "message": self.message, **self.details}


@dataclass(frozen=True)
class CheckReport:
    failures: tuple[Failure, ...]
    #: what was examined, so "no failures" can be told apart from "nothing to check"
    examined: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    def of(self, check: Check) -> list[Failure]:
        return [f for f in self.failures if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for f in self.failures:
            counts[f.check.value] = counts.get(f.check.value, 0) + 1
        return {
            "passed": self.passed,
            "failure_counts": counts,
            "examined": dict(self.examined),
            "failures": [f.to_dict() for f in self.failures],
        }


def _s(ns: int, start_ns: int) -> float:
    return round((ns - start_ns) / 1e9, 6)


def _tp(tp: TopicPartition) -> list[Any]:
    return [tp[0], tp[1]]


@dataclass
class _Overlap:
    start_ns: int
    members: set[str]


class _OverlapTracker:
    """Opens an overlap when a partition gets a second counted owner, closes it when back to one."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.open: dict[tuple[str, TopicPartition], _Overlap] = {}
        self.failures: list[Failure] = []

    def update(self, group: str, state: GroupOwnership, now: int) -> None:
        for tp in state.overlapping:
            key = (group, tp)
            if key in self.open:
                self.open[key].members |= state.owners[tp]
            else:
                self.open[key] = _Overlap(now, set(state.owners[tp]))
        for key in [k for k in self.open if k[0] == group and k[1] not in state.overlapping]:
            self._close(key, now, open_at_end=False)

    def _close(self, key: tuple[str, TopicPartition], now: int, open_at_end: bool) -> None:
        overlap = self.open.pop(key)
        group, tp = key
        duration = (now - overlap.start_ns) / 1e9
        members = sorted(overlap.members)
        self.failures.append(
            Failure(
                Check.DOUBLE_OWNERSHIP,
                group,
                f"{tp[0]}-{tp[1]} owned by {', '.join(members)} at once for {duration:.3f} s"
                + (" (still at the end)" if open_at_end else ""),
                {
                    "partition": _tp(tp),
                    "members": members,
                    "start_s": _s(overlap.start_ns, self.start_ns),
                    "duration_s": round(duration, 6),
                    "open_at_end": open_at_end,
                },
            )
        )

    def finish(self, now: int) -> None:
        for key in list(self.open):
            self._close(key, now, open_at_end=True)


def _stable_unowned(state: GroupOwnership) -> list[TopicPartition] | None:
    """Partitions nobody owns while the group is stable; None when it is not stable (or empty)."""
    if not state.stable():
        return None
    return sorted(tp for tp in state.partitions if tp not in state.owners)


def _leaders(history: RunHistory, examined: dict[str, int]) -> list[Failure]:
    claims: dict[tuple[str, int], dict[str, set[str]]] = {}
    assigners: dict[tuple[str, int], set[str]] = {}
    for e in history.events:
        spec = history.groups.get(e.group)
        if spec is None or (spec.mode, spec.variant) not in LEADER_VARIANTS or e.generation is None:
            continue
        key = (e.group, e.generation)
        if e.kind in (EventKind.ASSIGNED, EventKind.LEADER_ELECTED):
            leader = e.extra.get("leader")
            if leader is not None:
                claims.setdefault(key, {}).setdefault(str(leader), set()).add(e.member)
        elif e.kind == EventKind.ASSIGNMENT_COMPUTED:
            assigners.setdefault(key, set()).add(e.member)
    examined["generations_with_leader_claims"] = len(claims)
    failures = []
    for (group, generation), by_leader in sorted(claims.items()):
        if len(by_leader) > 1:
            named = {leader: sorted(members) for leader, members in sorted(by_leader.items())}
            failures.append(
                Failure(
                    Check.MULTIPLE_LEADERS,
                    group,
                    f"generation {generation} has {len(by_leader)} leaders: {', '.join(named)}",
                    {"generation": generation, "leaders": named},
                )
            )
    for (group, generation), members in sorted(assigners.items()):
        if len(members) > 1:
            failures.append(
                Failure(
                    Check.MULTIPLE_LEADERS,
                    group,
                    f"generation {generation} was assigned by {len(members)} members",
                    {"generation": generation, "assigners": sorted(members)},
                )
            )
    return failures


def _offsets(history: RunHistory, examined: dict[str, int]) -> list[Failure]:
    failovers = [a.mono_ns for a in history.actions if a.action == "kill_coordinator" and a.phase == "start"]
    commits = [o for o in history.offsets if o.kind == "committed"]
    fetches = [o for o in history.offsets if o.kind == "fetched"]
    examined["offset_fetches"] = len(fetches)
    failures = []
    for fetch in fetches:
        for topic, partition, fetched in fetch.offsets:
            last = None
            for commit in commits:
                if commit.group != fetch.group or commit.mono_ns >= fetch.request_mono_ns:
                    continue
                for t, p, offset in commit.offsets:
                    if (t, p) == (topic, partition):
                        last = (commit, offset)
            if last is None or fetched >= last[1]:
                continue
            commit, committed = last
            across = any(commit.mono_ns < f < fetch.mono_ns for f in failovers)
            failures.append(
                Failure(
                    Check.OFFSET_LOST,
                    fetch.group,
                    f"{topic}-{partition}: committed {committed}, fetched {fetched}"
                    + (" after a coordinator failover" if across else ""),
                    {
                        "partition": [topic, partition],
                        "committed": committed,
                        "fetched": fetched,
                        "committed_by": commit.member,
                        "fetched_by": fetch.member,
                        "commit_s": _s(commit.mono_ns, history.start_ns),
                        "fetch_s": _s(fetch.mono_ns, history.start_ns),
                        "across_failover": across,
                    },
                )
            )
    return failures


def harness_problems(history: RunHistory) -> list[str]:
    """What the harness itself got wrong in a run, apart from the design's checks: member processes
    that ignored SIGTERM and were killed (``bench.experiment.groups.MemberGroup.terminate`` records each such kill, so the
    replay already counts their members dead from then on; the leave they never finished is the
    harness's or the member's bug, not a property of the design)."""
    return [
        f"{', '.join(a.targets) or 'a member process'} (pid {a.params.get('pid')}) ignored SIGTERM for "
        f"{a.params.get('ignored_sigterm_s', '?')} s during {a.action} (step {a.step}) and was killed"
        for a in history.actions
        if a.phase == "kill" and a.params.get("escalated")
    ]


def _triggers(history: RunHistory) -> Iterable[ActionRecord]:
    return (a for a in history.actions if a.phase == "start" and a.action != "stop")


def _end_state(history: RunHistory, replay: Replay, end_ns: int) -> list[Failure]:
    """``not_stable_at_end`` and ``no_leader``, from the state the replay ended in."""
    failures: list[Failure] = []
    for name, state in replay.groups.items():
        if state.live_count and not state.stable():
            failures.append(
                Failure(
                    Check.NOT_STABLE_AT_END,
                    name,
                    f"{state.live_count} live member(s) in generations "
                    f"{sorted({str(m.generation) for m in state.members.values() if m.live})} when the run stopped",
                    {"at_s": _s(end_ns, history.start_ns), "live_members": state.live_members()},
                )
            )
        elif state.converged():
            spec = history.groups[name]
            leaders = {state.members[m].leader for m in state.live_members()}
            if (spec.mode, spec.variant) in LEADER_VARIANTS and leaders == {None}:
                failures.append(
                    Failure(
                        Check.NO_LEADER,
                        name,
                        f"generation {state.generation()} converged without a leader named",
                        {"generation": state.generation()},
                    )
                )
    return failures


def _late_events(history: RunHistory, replay: Replay) -> list[Failure]:
    """``late_event``: what members reported after they were killed."""
    failures: list[Failure] = []
    for e in replay.late_events:
        failures.append(
            Failure(
                Check.LATE_EVENT,
                e.group,
                f"{e.member} reported {e.kind} after it was killed",
                {"member": e.member, "event": e.kind.value, "at_s": _s(e.mono_ns, history.start_ns)},
            )
        )
    return failures


def check(history: RunHistory) -> CheckReport:
    """Run every check over one run's history."""
    replay = Replay(history)
    end_ns = history.analysis_end_ns
    overlaps = _OverlapTracker(history.start_ns)
    failures: list[Failure] = []
    examined = {"groups": len(history.groups), "stable_points": 0}
    trigger_times = sorted({a.mono_ns for a in _triggers(history)})

    def check_stable(now: int, label: str) -> None:
        for name, state in replay.groups.items():
            missing = _stable_unowned(state)
            if missing is None:
                continue
            examined["stable_points"] += 1
            if missing:
                failures.append(
                    Failure(
                        Check.UNOWNED_WHEN_STABLE,
                        name,
                        f"stable at generation {state.generation()} {label} with {len(missing)} partition(s) unowned",
                        {
                            "at_s": _s(now, history.start_ns),
                            "generation": state.generation(),
                            "partitions": [_tp(tp) for tp in missing],
                        },
                    )
                )

    pending = list(trigger_times)
    for item in replay.items():
        if item.mono_ns > end_ns:
            break
        while pending and pending[0] <= item.mono_ns:
            check_stable(pending[0], "before an action")  # the state the previous step settled into
            pending.pop(0)
        step = replay.apply(item)
        if step is None:
            continue
        names = [step.group] if step.event is not None else list(replay.groups)
        for name in names:
            if name is not None:
                overlaps.update(name, replay.groups[name], step.mono_ns)
    overlaps.finish(end_ns)
    failures[:0] = overlaps.failures
    check_stable(end_ns, "at the end")
    failures += _end_state(history, replay, end_ns)
    failures += _leaders(history, examined)
    failures += _offsets(history, examined)
    failures += _late_events(history, replay)
    return CheckReport(tuple(failures), examined)

"""Episodes: one group's reaction to one trigger, folded from a replayed history.

An *episode* is one group's reaction to one trigger: an action's start (``pause_member``'s end, the
resume, is a trigger of its own), or the run's start when members reported before any action. It
lasts until the group's next trigger or the end of the measured run (the ``stop`` action). Per
episode, from ``events.jsonl`` replayed by :mod:`bench.analysis.replay`:

detection
    trigger -> the first member event of that group after it (the system's first reaction).
convergence
    trigger -> the first moment every live member holds one generation newer than the newest at
    the trigger, and the live members' ownership is complete and disjoint. It is looked for only
    from the action's end on (members started by ``start_members`` must all have started; a
    ``rolling_restart`` must be over), except for ``pause_member``, whose start converges while the
    member is frozen. ``start_members``/``add_members`` also need ``params.count`` live members.
unowned partition-seconds
    the integral of the number of the group's partitions nobody counts as owning, from the
    trigger to convergence (to the end of the episode when it never converged).
partitions revoked, partitions moved
    what separates eager from incremental rebalancing: revoked counts every partition a member
    reported it stopped owning (``revoked``, ``left``, ``session_lost``, or an ``assigned`` without
    it), from the trigger to convergence (to the episode's end); moved counts the partitions whose
    one owner at the trigger is not their owner at convergence (empty when it never converged).
    An eager join revokes every partition and moves a few; a cooperative one revokes what moves.
outcome
    ``converged``; ``no_rebalance`` (no newer generation, and the group was still converged at the
    generation it had at the trigger, e.g. a coordinator failover within the session timeout);
    ``not_converged``.

Joins (each member's time from its start to its first assignment) are folded here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from bench.analysis.replay import ActionRecord, Replay, RunHistory
from bench.experiment.actions import ACTIONS
from group_api import Event, EventKind, TopicPartition


class Outcome(StrEnum):
    CONVERGED = "converged"
    NO_REBALANCE = "no_rebalance"
    NOT_CONVERGED = "not_converged"


@dataclass(frozen=True)
class Episode:
    group: str
    step: int
    action: str
    phase: str
    trigger_ns: int
    end_ns: int  # convergence, else the episode window's end
    window_end_ns: int
    outcome: Outcome
    detection_ns: int | None
    detected_by: str | None
    detection_event: str | None
    convergence_ns: int | None
    unowned_partition_s: float
    generation_before: int | None
    generation_after: int | None
    generations: int
    partitions_revoked: int
    partitions_moved: int | None
    members_before: int
    members_after: int
    members_involved: int
    targets: tuple[str, ...]
    concurrent_groups: int
    rtt_ms: float


@dataclass
class _Open:
    """An episode being measured."""

    group: str
    trigger: ActionRecord | None
    trigger_ns: int
    search_from_ns: int
    min_live: int
    generation_before: int | None
    members_before: int
    concurrent_groups: int
    rtt_ms: float
    owners_before: dict[TopicPartition, str] = field(default_factory=dict)
    owners_after: dict[TopicPartition, str] | None = None
    revoked: int = 0
    detection: tuple[int, str, str] | None = None
    convergence_ns: int | None = None
    settled: tuple[int, int] | None = None  # (generation, live members) at convergence
    unowned_ns: float = 0.0  # partition-nanoseconds
    generations: set[int] = field(default_factory=set)
    involved: set[str] = field(default_factory=set)


def _is_trigger(a: ActionRecord) -> bool:
    """Whether an action record opens an episode (:attr:`ActionSpec.triggers`; an action the table
    does not know opens one at its start)."""
    spec = ACTIONS.get(a.action)
    return a.phase in (spec.triggers if spec is not None else ("start",))


class EpisodeBuilder:
    """One pass over the replay that cuts it into episodes and finds the quiet stretches."""

    def __init__(self, history: RunHistory) -> None:
        self.history = history
        self.replay = Replay(history)
        self.episodes: list[Episode] = []
        self.quiet: list[tuple[int, int, int]] = []  # (start, end, live members)
        self._open: dict[str, _Open] = {}
        self._last_ns = {g: history.start_ns for g in self.replay.groups}
        self._unowned = {g: s.unowned for g, s in self.replay.groups.items()}
        self._converged_since: dict[str, int | None] = dict.fromkeys(self.replay.groups)
        self._in_progress: set[tuple[int, str]] = set()
        self._rtt_ms = 0.0
        self._member_group = history.member_groups()

    # -- per group bookkeeping -------------------------------------------------------------------

    def _integrate(self, group: str, now: int) -> None:
        """Add the unowned partition-time since the group's last change to its open episode."""
        ep = self._open.get(group)
        if ep is not None and ep.convergence_ns is None:
            ep.unowned_ns += self._unowned[group] * (now - max(self._last_ns[group], ep.trigger_ns))
        self._last_ns[group] = now

    def _after_change(self, group: str, now: int) -> None:
        state = self.replay.groups[group]
        self._unowned[group] = state.unowned
        if state.converged():
            if self._converged_since[group] is None:
                self._converged_since[group] = now
        else:
            self._converged_since[group] = None
        ep = self._open.get(group)
        if ep is None or ep.convergence_ns is not None or now < ep.search_from_ns:
            return
        generation = state.generation()
        newer = generation is not None and (ep.generation_before is None or generation > ep.generation_before)
        if state.converged() and newer and state.live_count >= ep.min_live:
            ep.convergence_ns = self._converged_since[group]
            ep.settled = (generation, state.live_count)
            ep.owners_after = self._owners(group)

    def _open_episode(self, group: str, trigger: ActionRecord | None, now: int, concurrent: int) -> None:
        state = self.replay.groups[group]
        search_from = now
        min_live = 1
        if trigger is not None:
            if trigger.action != "pause_member":
                search_from = self.history.action_end(trigger) or now
            count = trigger.params.get("count")
            if isinstance(count, int) and trigger.action == "start_members":
                min_live = count
            elif isinstance(count, int) and trigger.action == "add_members":
                min_live = state.live_count + count
            elif trigger.action == "rolling_restart":
                min_live = max(1, state.live_count)
        self._open[group] = _Open(
            group=group,
            trigger=trigger,
            trigger_ns=now,
            search_from_ns=search_from,
            min_live=min_live,
            generation_before=state.latest_generation(),
            members_before=state.live_count,
            concurrent_groups=concurrent,
            rtt_ms=self._rtt_ms,
            owners_before=self._owners(group),
        )

    def _owners(self, group: str) -> dict[TopicPartition, str]:
        """Each partition's one counted owner (partitions owned twice or by nobody left out)."""
        return {tp: next(iter(ms)) for tp, ms in self.replay.groups[group].owners.items() if len(ms) == 1}

    def _close_episode(self, group: str, now: int) -> None:
        ep = self._open.pop(group, None)
        if ep is None:
            return
        state = self.replay.groups[group]
        if ep.members_before == 0 and ep.detection is None and state.live_count == 0:
            return  # nothing to react: e.g. a delay set before any member started
        if ep.convergence_ns is not None and ep.settled is not None:
            outcome = Outcome.CONVERGED
            end = ep.convergence_ns
            generation_after, members_after = ep.settled
        else:
            end = now
            same = state.converged() and state.generation() == ep.generation_before
            outcome = Outcome.NO_REBALANCE if same else Outcome.NOT_CONVERGED
            generation_after = state.generation() if same else None
            members_after = state.live_count
        trigger = ep.trigger
        targets = trigger.targets if trigger else ()
        members = {m for m in targets if self._member_group.get(m) == group}
        self.episodes.append(
            Episode(
                group=group,
                step=trigger.step if trigger else -1,
                action=trigger.action if trigger else "run_start",
                phase=trigger.phase if trigger else "start",
                trigger_ns=ep.trigger_ns,
                end_ns=end,
                window_end_ns=now,
                outcome=outcome,
                detection_ns=ep.detection[0] if ep.detection else None,
                detected_by=ep.detection[1] if ep.detection else None,
                detection_event=ep.detection[2] if ep.detection else None,
                convergence_ns=ep.convergence_ns,
                unowned_partition_s=ep.unowned_ns / 1e9,
                generation_before=ep.generation_before,
                generation_after=generation_after,
                generations=len(ep.generations),
                partitions_revoked=ep.revoked,
                partitions_moved=None
                if ep.owners_after is None
                else sum(ep.owners_after.get(tp) != m for tp, m in ep.owners_before.items()),
                members_before=ep.members_before,
                members_after=members_after,
                members_involved=len(ep.involved | members),
                targets=targets,
                concurrent_groups=ep.concurrent_groups,
                rtt_ms=ep.rtt_ms,
            )
        )

    # -- the pass --------------------------------------------------------------------------------

    def build(self) -> EpisodeBuilder:
        h = self.history
        end = h.analysis_end_ns
        items = [i for i in self.replay.items() if i.mono_ns <= end]
        first_event = {}
        for e in h.events:
            first_event.setdefault(e.group, e.mono_ns)
        first_trigger: dict[str, int] = {}
        for item in items:
            if isinstance(item, ActionRecord) and _is_trigger(item):
                for g in self.replay.groups_of(item):
                    first_trigger.setdefault(g, item.mono_ns)
        cold = [g for g, t in first_event.items() if t < first_trigger.get(g, end + 1)]
        for g in cold:  # members reported before any action: the run's start is the trigger
            self._open_episode(g, None, h.start_ns, len(cold))

        quiet_from: int | None = None
        for item in items:
            now = item.mono_ns
            if quiet_from is not None and now > quiet_from:
                self.quiet.append((quiet_from, now, self._live_total()))
            if isinstance(item, ActionRecord):
                groups = self.replay.groups_of(item)
                for g in groups:
                    self._integrate(g, now)
                if _is_trigger(item):
                    for g in groups:
                        self._close_episode(g, now)
                    if item.action == "set_delay" and item.phase == "start":
                        self._rtt_ms = float(item.params.get("rtt_ms", 0.0))
                    for g in groups:
                        self._open_episode(g, item, now, len(groups))
                key = (item.step, item.action)
                if item.phase == "start":
                    self._in_progress.add(key)
                elif item.phase == "end":
                    self._in_progress.discard(key)
                self.replay.apply(item)
                for g in groups:
                    self._after_change(g, now)
            else:
                g = item.group
                self._integrate(g, now)
                reported = self._reported(g, item.member)
                applied = self.replay.apply(item) is not None
                ep = self._open.get(g)
                if applied and ep is not None and ep.convergence_ns is None:
                    ep.revoked += len(reported - self._reported(g, item.member))
                if applied and ep is not None and ep.convergence_ns is None:
                    if ep.detection is None and now > ep.trigger_ns:
                        ep.detection = (now, item.member, item.kind.value)
                    ep.involved.add(item.member)
                    newer = item.generation is not None and (
                        ep.generation_before is None or item.generation > ep.generation_before
                    )
                    if item.kind == EventKind.ASSIGNED and newer:
                        ep.generations.add(item.generation)
                self._after_change(g, now)
            quiet_from = now if self._quiet() else None
        if quiet_from is not None and end > quiet_from:
            self.quiet.append((quiet_from, end, self._live_total()))
        for g in list(self._open):
            self._integrate(g, end)
            self._close_episode(g, end)
        self.episodes.sort(key=lambda e: (e.trigger_ns, e.group))
        return self

    def _reported(self, group: str, member: str) -> frozenset[TopicPartition]:
        m = self.replay.groups[group].members.get(member)
        return m.reported if m is not None else frozenset()

    def _live_total(self) -> int:
        return sum(s.live_count for s in self.replay.groups.values())

    def _quiet(self) -> bool:
        states = [s for s in self.replay.groups.values() if s.live_count]
        return not self._in_progress and bool(states) and all(s.converged() for s in states)


def episodes(history: RunHistory) -> list[Episode]:
    """Every group's episodes, in trigger order."""
    return EpisodeBuilder(history).build().episodes


@dataclass(frozen=True)
class Join:
    """One member's way into its group: from the start of its join to its first assignment."""

    member: str
    group: str
    started_ns: int  # the member's ``join_started_ns`` when it reports one, else its first ``joined``
    assigned_ns: int | None  # its first ``assigned`` after that; None if it never got one


def joins(history: RunHistory) -> list[Join]:
    """Every member's first join. A coordinator-mode ``joined`` is emitted when JoinGroup answers,
    which waits out the rebalance, so the member stamps when its first JoinGroup went out."""
    first: dict[str, Event] = {}
    assigned: dict[str, int] = {}
    for e in history.events:
        if e.kind == EventKind.JOINED:
            first.setdefault(e.member, e)
        elif e.kind == EventKind.ASSIGNED and e.member in first:
            assigned.setdefault(e.member, e.mono_ns)
    return [
        Join(m, e.group, int(e.extra.get("join_started_ns", e.mono_ns)), assigned.get(m))
        for m, e in first.items()
    ]


def join_fields(ep: Episode, group_joins: Sequence[Join]) -> dict[str, Any]:
    """The episode's joins: members whose first join started inside its window."""
    inside = [j for j in group_joins if ep.trigger_ns <= j.started_ns < ep.window_end_ns]
    done = [(j.started_ns, j.assigned_ns) for j in inside if j.assigned_ns is not None]
    times = [(assigned - started) / 1e6 for started, assigned in done]
    return {
        "joins": len(inside),
        "join_ms_median": round(float(np.median(times)), 3) if times else None,
        "join_ms_max": round(max(times), 3) if times else None,
        # first join out -> the last of them assigned; only when every one of them got there
        "join_span_ms": ms_between(min(s for s, _ in done), max(a for _, a in done))
        if done and len(done) == len(inside)
        else None,
    }


# -- one run directory -----------------------------------------------------------------------------


def ms_between(start: int | None, end: int | None) -> float | None:
    return None if start is None or end is None else round((end - start) / 1e6, 3)

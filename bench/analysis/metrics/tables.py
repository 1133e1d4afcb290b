"""Metrics from one run directory, computed the same way for every mode: ``analyze(run_dir)``.

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
outcome
    ``converged``; ``no_rebalance`` (no newer generation, and the group was still converged at the
    generation it had at the trigger, e.g. a coordinator failover within the session timeout);
    ``not_converged``.

ZooKeeper cost of an episode comes from the ``mntr`` readings that bracket it: per server the last
reading at or before the trigger and the first at or after convergence (or the episode's end),
through :func:`bench.services.mntr.zk_load` with the group's namespace (``zkmode`` for zk members, ``kafka``
for the brokers of coordinator mode). **Background is separated two ways**: the per-namespace read
and write counters never count pings or session setup, so ``zk_reads``/``zk_writes`` are the
episode's own requests; ensemble-wide counts including pings are reported beside them
(``reads_incl_pings``), and the idle load is measured separately as a rate over *steady* windows,
stretches with no action in progress and every group converged (starting ``STEADY_SETTLE_S`` after
the last event). Broker requests per episode come the same way from the brokers' counters.

With several episodes of the same kind (repetitions, several groups), :func:`describe` gives the
median with a distribution-free 95 % confidence interval from order statistics and warns when
there are fewer than ``MIN_SAMPLES`` values or the coefficient of variation exceeds ``MAX_CV``.
Every output column is documented in the README, section "Results: what a run directory holds".
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np
import pandas as pd
import yaml

from bench.analysis.checker import CheckReport, check, harness_problems
from bench.analysis.replay import ActionRecord, Replay, RunHistory
from bench.experiment.history import RunState, RunStatus
from bench.services.mntr import Mntr, ZkLoad, zk_load
from group_api import Event, EventKind

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CI_LEVEL = 0.95
MIN_SAMPLES = 5
MAX_CV = 0.25
#: A steady window starts this long after the last event, so a rebalance's trailing traffic is not idle load.
STEADY_SETTLE_S = 1.0
#: Shortest steady window worth a rate.
STEADY_MIN_S = 2.0

#: Per-episode metrics summarised by :func:`describe`, with their units.
METRICS = {
    "detection_ms": "ms",
    "convergence_ms": "ms",
    "unowned_partition_s": "partition-s",
    "generations": "generations",
    "zk_reads": "requests",
    "zk_writes": "znode changes",
    "zk_watch_notifications": "notifications",
    "broker_requests": "requests",
}


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
    detection: tuple[int, str, str] | None = None
    convergence_ns: int | None = None
    settled: tuple[int, int] | None = None  # (generation, live members) at convergence
    unowned_ns: float = 0.0  # partition-nanoseconds
    generations: set[int] = field(default_factory=set)
    involved: set[str] = field(default_factory=set)


def _is_trigger(a: ActionRecord) -> bool:
    if a.action == "stop":
        return False
    return a.phase == "start" or a.action == "pause_member"


class _EpisodeBuilder:
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
        )

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
                members_before=ep.members_before,
                members_after=members_after,
                members_involved=len(ep.involved | members),
                targets=targets,
                concurrent_groups=ep.concurrent_groups,
                rtt_ms=ep.rtt_ms,
            )
        )

    # -- the pass --------------------------------------------------------------------------------

    def build(self) -> _EpisodeBuilder:
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
                applied = self.replay.apply(item) is not None
                ep = self._open.get(g)
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

    def _live_total(self) -> int:
        return sum(s.live_count for s in self.replay.groups.values())

    def _quiet(self) -> bool:
        states = [s for s in self.replay.groups.values() if s.live_count]
        return not self._in_progress and bool(states) and all(s.converged() for s in states)


def episodes(history: RunHistory) -> list[Episode]:
    """Every group's episodes, in trigger order."""
    return _EpisodeBuilder(history).build().episodes


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


def _join_fields(ep: Episode, group_joins: Sequence[Join]) -> dict[str, Any]:
    """The episode's joins: members whose first join started inside its window."""
    inside = [j for j in group_joins if ep.trigger_ns <= j.started_ns < ep.window_end_ns]
    done = [(j.started_ns, j.assigned_ns) for j in inside if j.assigned_ns is not None]
    times = [(assigned - started) / 1e6 for started, assigned in done]
    return {
        "joins": len(inside),
        "join_ms_median": round(float(np.median(times)), 3) if times else None,
        "join_ms_max": round(max(times), 3) if times else None,
        # first join out -> the last of them assigned; only when every one of them got there
        "join_span_ms": _ms(min(s for s, _ in done), max(a for _, a in done))
        if done and len(done) == len(inside)
        else None,
    }


# -- samples ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerSample:
    broker: str
    mono_ns: int
    stats: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Samples:
    zk: dict[str, list[Mntr]]  # by server, in clock order
    brokers: dict[str, list[BrokerSample]]
    problems: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> Samples:
        zk: dict[str, list[Mntr]] = {}
        brokers: dict[str, list[BrokerSample]] = {}
        problems = []
        p = Path(path)
        lines = p.read_text().splitlines() if p.exists() else []
        if not p.exists():
            problems.append(f"{p.name} missing: no ZooKeeper or broker cost")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if d["source"] == "zk":
                    zk.setdefault(d["server"], []).append(
                        Mntr(
                            server=d["server"],
                            values=d["values"],
                            mono_ns=int(d["mono_ns"]),
                            answer_bytes=int(d.get("answer_bytes", 0)),
                        )
                    )
                elif d["source"] == "broker":
                    broker = str(d["broker"])
                    brokers.setdefault(broker, []).append(BrokerSample(broker, int(d["mono_ns"]), d["stats"]))
                else:
                    problems.append(f"{p.name} line {number}: unknown source {d['source']!r}")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                problems.append(f"{p.name} line {number}: not a sample")
        for readings in (*zk.values(), *brokers.values()):
            readings.sort(key=lambda r: r.mono_ns)
        return cls(zk, brokers, tuple(problems))


Reading = TypeVar("Reading", Mntr, BrokerSample)


def _before(readings: Sequence[Reading], t: int) -> Reading | None:
    earlier = [r for r in readings if r.mono_ns <= t]
    return earlier[-1] if earlier else None


def _after(readings: Sequence[Reading], t: int) -> Reading | None:
    return next((r for r in readings if r.mono_ns >= t), None)


def _bracket(
    by_source: dict[str, list[Reading]], start: int, end: int
) -> tuple[list[Reading], list[Reading]]:
    """Per source the last reading at or before ``start`` and the first at or after ``end``."""
    before, after = [], []
    for readings in by_source.values():
        b, a = _before(readings, start), _after(readings, end)
        if b is not None and a is not None and a.mono_ns > b.mono_ns:
            before.append(b)
            after.append(a)
    return before, after


def _inside(by_source: dict[str, list[Reading]], start: int, end: int) -> tuple[list[Reading], list[Reading]]:
    """Per source the first and last readings inside ``[start, end]`` (for rates over a window)."""
    first, last = [], []
    for readings in by_source.values():
        inside = [r for r in readings if start <= r.mono_ns <= end]
        if len(inside) >= 2:
            first.append(inside[0])
            last.append(inside[-1])
    return first, last


def _span(before: Sequence[Mntr | BrokerSample], after: Sequence[Mntr | BrokerSample]) -> tuple[int, int]:
    return min(r.mono_ns for r in before), max(r.mono_ns for r in after)


def broker_load(
    before: Sequence[BrokerSample], after: Sequence[BrokerSample]
) -> dict[tuple[str, str], dict[str, int]]:
    """Requests and bytes per (broker, api) between two sets of samples; a restarted broker (a
    counter went down) counts from zero."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    by_broker = {b.broker: b for b in before}
    for a in after:
        b = by_broker.get(a.broker)
        restarted = b is not None and any(
            a.stats.get(api, {}).get("requests", 0) < s.get("requests", 0) for api, s in b.stats.items()
        )
        for api, stats in a.stats.items():
            then = {} if b is None or restarted else b.stats.get(api, {})
            delta = {
                k: int(stats.get(k, 0)) - int(then.get(k, 0)) for k in ("requests", "bytes_in", "bytes_out")
            }
            if any(delta.values()):
                out[(a.broker, api)] = delta
    return out


# -- statistics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    n: int
    median: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float | None  # the interval's actual coverage (order statistics give discrete levels)
    min: float | None
    max: float | None
    q1: float | None
    q3: float | None
    cv: float | None  # sample standard deviation / mean
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _binom_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Distribution-free CI for the median: order statistics x_(k), x_(n+1-k) with the largest k whose
    coverage 1 - 2 P(Bin(n, 1/2) <= k-1) is still >= level. With too few values for ``level`` this
    returns (min, max) and its smaller coverage."""
    xs = sorted(values)
    n = len(xs)
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _binom_cdf(k, n) >= level:
        k += 1
    coverage = 1 - 2 * _binom_cdf(k - 1, n)
    return xs[k - 1], xs[n - k], coverage


def describe(values: Iterable[float | None]) -> Stats:
    """Median, its 95 % CI, quartiles and warnings over the non-missing values."""
    xs = [float(v) for v in values if not pd.isna(v)]
    n = len(xs)
    if n == 0:
        return Stats(0, None, None, None, None, None, None, None, None, None, ("no values",))
    arr = np.array(xs)
    low, high, coverage = median_ci(xs)
    mean = float(arr.mean())
    cv = float(arr.std(ddof=1) / mean) if n > 1 and mean > 0 else (0.0 if n > 1 else None)
    warnings = []
    if n < MIN_SAMPLES:
        interval = f": the min-max interval covers {coverage:.0%}" if n > 1 else ""
        warnings.append(f"only {n} value(s), want >= {MIN_SAMPLES}{interval}")
    if cv is not None and cv > MAX_CV:
        warnings.append(f"values disagree: CV {cv:.0%} > {MAX_CV:.0%}")
    return Stats(
        n=n,
        median=float(np.median(arr)),
        ci_low=low,
        ci_high=high,
        ci_level=round(coverage, 4),
        min=float(arr.min()),
        max=float(arr.max()),
        q1=float(np.percentile(arr, 25)),
        q3=float(np.percentile(arr, 75)),
        cv=None if cv is None else round(cv, 4),
        warnings=tuple(warnings),
    )


#: Rows with the same values here are repetitions of one measurement.
EPISODE_KEY = ("scenario", "mode", "variant", "step", "action", "phase")


def aggregate(rebalances: pd.DataFrame, keys: Sequence[str] = EPISODE_KEY) -> pd.DataFrame:
    """One row per (key, metric) with :class:`Stats` columns; over runs, groups and repetitions."""
    rows = []
    if rebalances.empty:
        return pd.DataFrame(columns=[*keys, "metric", "unit", *Stats.__dataclass_fields__])
    for key, frame in rebalances.groupby(list(keys), dropna=False, sort=True):
        for metric, unit in METRICS.items():
            if metric not in frame:
                continue
            stats = describe(frame[metric].tolist())
            if stats.n == 0:
                continue
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "metric": metric,
                    "unit": unit,
                    **stats.to_dict(),
                    "runs": int(frame["run_id"].nunique()) if "run_id" in frame else None,
                }
            )
    return pd.DataFrame(rows)


# -- one run directory -----------------------------------------------------------------------------


def _ms(start: int | None, end: int | None) -> float | None:
    return None if start is None or end is None else round((end - start) / 1e6, 3)


def _zk_fields(load: ZkLoad | None) -> dict[str, Any]:
    return {f: getattr(load, f) if load else None for f in ZkLoad.__dataclass_fields__ if f != "namespace"}


def _run_identity(run_dir: Path, history: RunHistory) -> dict[str, Any]:
    scenario: dict[str, Any] = {}
    environment: dict[str, Any] = {}
    try:
        scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        log.warning("%s: no readable scenario.yaml", run_dir)
    try:
        environment = json.loads((run_dir / "environment.json").read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("%s: no readable environment.json", run_dir)
    modes = sorted({(g.mode, g.variant) for g in history.groups.values()})
    groups = scenario.get("groups") if isinstance(scenario.get("groups"), dict) else {}
    name = scenario.get("name") or history.info.get("scenario") or run_dir.name
    point = scenario.get("sweep_point") if isinstance(scenario.get("sweep_point"), dict) else {}
    run_id = history.info.get("run_id") or environment.get("run_id") or run_dir.name  # older runs: the name
    return {
        "run_id": run_id,
        "scenario": name,
        "family": point.get("scenario") or name,
        "scenario_members": groups.get("members"),
        "mode": "+".join(sorted({m for m, _ in modes})),
        "variant": "+".join(sorted({v for _, v in modes})),
        "repetition": history.info.get("repetition", environment.get("repetition")),
    }


def _episode_rows(
    ident: dict[str, Any], history: RunHistory, eps: list[Episode], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rebalances, zk_rows, broker_rows = [], [], []
    start = history.start_ns
    by_group: dict[str, list[Join]] = {}
    for j in joins(history):
        by_group.setdefault(j.group, []).append(j)
    for ep in eps:
        spec = history.groups[ep.group]
        window = _bracket(samples.zk, ep.trigger_ns, ep.end_ns)
        load = zk_load(*window, namespace=spec.namespace) if window[0] else None
        zk_span = _span(*window) if window[0] else (None, None)
        b_window = _bracket(samples.brokers, ep.trigger_ns, ep.end_ns)
        b_load = broker_load(*b_window) if b_window[0] else None
        key = {
            **ident,
            "mode": spec.mode,
            "variant": spec.variant,
            "group": ep.group,
            "step": ep.step,
            "action": ep.action,
            "phase": ep.phase,
        }
        rebalances.append(
            {
                **key,
                "trigger_s": round((ep.trigger_ns - start) / 1e9, 3),
                "targets": ";".join(ep.targets),
                "outcome": ep.outcome.value,
                "detection_ms": _ms(ep.trigger_ns, ep.detection_ns),
                "detected_by": ep.detected_by,
                "detection_event": ep.detection_event,
                "convergence_ms": _ms(ep.trigger_ns, ep.convergence_ns),
                "window_ms": _ms(ep.trigger_ns, ep.window_end_ns),
                "unowned_partition_s": round(ep.unowned_partition_s, 6),
                "partitions": len(spec.partitions),
                "generation_before": ep.generation_before,
                "generation_after": ep.generation_after,
                "generations": ep.generations,
                "members_before": ep.members_before,
                "members_after": ep.members_after,
                "members_involved": ep.members_involved,
                **_join_fields(ep, by_group.get(ep.group, ())),
                "concurrent_groups": ep.concurrent_groups,
                "rtt_ms": ep.rtt_ms,
                "zk_namespace": spec.namespace,
                "zk_reads": load.reads if load else None,
                "zk_writes": load.writes if load else None,
                "zk_watch_notifications": load.watch_notifications if load else None,
                "zk_reads_incl_pings": load.reads_incl_pings if load else None,
                "zk_window_ms": _ms(*zk_span),
                "broker_requests": sum(v["requests"] for v in b_load.values())
                if b_load is not None
                else None,
            }
        )
        if load is not None:
            zk_rows.append(
                {
                    **key,
                    "kind": "episode",
                    "start_s": round((zk_span[0] - start) / 1e9, 3),
                    "end_s": round((zk_span[1] - start) / 1e9, 3),
                    "duration_s": round((zk_span[1] - zk_span[0]) / 1e9, 3),
                    "members": ep.members_after,
                    "namespace": spec.namespace,
                    **_zk_fields(load),
                }
            )
        for (broker, api), delta in sorted((b_load or {}).items()):
            b_span = _span(*b_window)
            broker_rows.append(
                {
                    **key,
                    "kind": "episode",
                    "start_s": round((b_span[0] - start) / 1e9, 3),
                    "end_s": round((b_span[1] - start) / 1e9, 3),
                    "duration_s": round((b_span[1] - b_span[0]) / 1e9, 3),
                    "broker": broker,
                    "api": api,
                    **delta,
                }
            )
    return rebalances, zk_rows, broker_rows


def _namespaces(history: RunHistory) -> list[str]:
    return sorted({g.namespace for g in history.groups.values()})


def _steady_rows(
    ident: dict[str, Any], history: RunHistory, quiet: list[tuple[int, int, int]], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    zk_rows, broker_rows = [], []
    start = history.start_ns
    base = {**ident, "group": None, "step": None, "action": None, "phase": None, "kind": "steady"}
    for q_start, q_end, members in quiet:
        lo = q_start + int(STEADY_SETTLE_S * 1e9)
        if (q_end - lo) / 1e9 < STEADY_MIN_S:
            continue
        first, last = _inside(samples.zk, lo, q_end)
        if first:
            span = _span(first, last)
            for ns in _namespaces(history):
                zk_rows.append(
                    {
                        **base,
                        "start_s": round((span[0] - start) / 1e9, 3),
                        "end_s": round((span[1] - start) / 1e9, 3),
                        "duration_s": round((span[1] - span[0]) / 1e9, 3),
                        "members": members,
                        "namespace": ns,
                        **_zk_fields(zk_load(first, last, namespace=ns)),
                    }
                )
        b_first, b_last = _inside(samples.brokers, lo, q_end)
        if b_first:
            span = _span(b_first, b_last)
            for (broker, api), delta in sorted(broker_load(b_first, b_last).items()):
                broker_rows.append(
                    {
                        **base,
                        "start_s": round((span[0] - start) / 1e9, 3),
                        "end_s": round((span[1] - start) / 1e9, 3),
                        "duration_s": round((span[1] - span[0]) / 1e9, 3),
                        "broker": broker,
                        "api": api,
                        **delta,
                    }
                )
    return zk_rows, broker_rows


def _client_calls(history: RunHistory) -> tuple[dict[str, int], int]:
    """ZooKeeper calls the members counted themselves, summed over the ``left`` events that carry them."""
    total: dict[str, int] = {}
    reporting = 0
    for e in history.events:
        calls = e.extra.get("zk_calls") if e.kind == EventKind.LEFT else None
        if isinstance(calls, dict):
            reporting += 1
            for k, v in calls.items():
                total[k] = total.get(k, 0) + int(v)
    return total, reporting


def _run_rows(ident: dict[str, Any], history: RunHistory, samples: Samples) -> list[dict[str, Any]]:
    """The whole measured run per namespace, with the members' own call counts beside it."""
    first, last = _inside(samples.zk, 0, history.analysis_end_ns)
    if not first:
        return []
    calls, reporting = _client_calls(history)
    span = _span(first, last)
    rows = []
    for ns in _namespaces(history):
        rows.append(
            {
                **ident,
                "group": None,
                "step": None,
                "action": None,
                "phase": None,
                "kind": "run",
                "start_s": round((span[0] - history.start_ns) / 1e9, 3),
                "end_s": round((span[1] - history.start_ns) / 1e9, 3),
                "duration_s": round((span[1] - span[0]) / 1e9, 3),
                "members": len({e.member for e in history.events}),
                "namespace": ns,
                **_zk_fields(zk_load(first, last, namespace=ns)),
                "client_members": reporting,
                "client_reads": calls.get("reads"),
                "client_writes": calls.get("writes"),
                "client_watch_events": calls.get("watch_events"),
            }
        )
    return rows


ZK_COLUMNS = [
    "run_id",
    "scenario",
    "family",
    "scenario_members",
    "mode",
    "variant",
    "repetition",
    "kind",
    "group",
    "step",
    "action",
    "phase",
    "start_s",
    "end_s",
    "duration_s",
    "members",
    "namespace",
    *(f for f in ZkLoad.__dataclass_fields__ if f != "namespace"),
    "client_members",
    "client_reads",
    "client_writes",
    "client_watch_events",
]
BROKER_COLUMNS = [
    *ZK_COLUMNS[: ZK_COLUMNS.index("members")],
    "broker",
    "api",
    "requests",
    "bytes_in",
    "bytes_out",
]


def _steady_summary(zk_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in zk_rows:
        if row["kind"] != "steady" or not row["duration_s"]:
            continue
        d = row["duration_s"]
        out.append(
            {
                "namespace": row["namespace"],
                "start_s": row["start_s"],
                "duration_s": d,
                "members": row["members"],
                **{
                    f"{k}_per_s": round(row[k] / d, 3)
                    for k in (
                        "reads",
                        "writes",
                        "reads_incl_pings",
                        "watch_notifications",
                        "packets_received",
                    )
                },
            }
        )
    return out


def analyze(run_dir: str | Path) -> dict[str, Any]:
    """Derive ``rebalances.csv``, ``zk_load.csv``, ``broker_load.csv`` and ``summary.json`` from a
    run directory's ``events.jsonl`` and ``samples.jsonl``; returns the summary."""
    run_dir = Path(run_dir)
    history = RunHistory.read(run_dir / "events.jsonl")
    samples = Samples.read(run_dir / "samples.jsonl")
    builder = _EpisodeBuilder(history).build()
    ident = _run_identity(run_dir, history)
    report: CheckReport = check(history)

    rebalances, zk_rows, broker_rows = _episode_rows(ident, history, builder.episodes, samples)
    steady_zk, steady_broker = _steady_rows(ident, history, builder.quiet, samples)
    zk_rows += steady_zk + _run_rows(ident, history, samples)
    broker_rows += steady_broker

    frame = _integers(pd.DataFrame(rebalances))
    frame.to_csv(run_dir / "rebalances.csv", index=False)
    _integers(pd.DataFrame(zk_rows, columns=ZK_COLUMNS)).to_csv(run_dir / "zk_load.csv", index=False)
    _integers(pd.DataFrame(broker_rows, columns=BROKER_COLUMNS)).to_csv(
        run_dir / "broker_load.csv", index=False
    )

    stats = aggregate(frame) if not frame.empty else pd.DataFrame()
    problems = [*history.problems, *samples.problems]
    warnings = sorted(
        {
            f"{r['action']} (step {r['step']}) {r['mode']}/{r['variant']} {r['metric']}: {w}"
            for r in stats.to_dict("records")
            for w in r["warnings"]
            if r["metric"] in ("detection_ms", "convergence_ms")
        }
    )
    outcomes = frame["outcome"].value_counts().to_dict() if not frame.empty else {}
    status = run_status(run_dir, history)
    summary = {
        "schema_version": SCHEMA_VERSION,
        **ident,
        "dir": str(run_dir),
        "status": {"state": status.state.value, "reason": status.reason},
        "groups": {
            name: {
                "mode": g.mode,
                "variant": g.variant,
                "partitions": len(g.partitions),
                "namespace": g.namespace,
            }
            for name, g in history.groups.items()
        },
        "duration_s": round((history.analysis_end_ns - history.start_ns) / 1e9, 3),
        "episodes": len(builder.episodes),
        "outcomes": {k: int(v) for k, v in outcomes.items()},
        "stats": _jsonable(stats.to_dict("records")) if not stats.empty else [],
        "steady_state": _steady_summary(zk_rows),
        "zk_run": _jsonable([r for r in zk_rows if r["kind"] == "run"]),
        "checks": report.to_dict(),
        "warnings": warnings,
        "problems": problems,
        "harness_problems": harness_problems(history),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not status.completed:
        log.warning("%s: %s run: %s", run_dir, status.state, status.reason)
    elif not report.passed:
        log.warning("%s: %d check failure(s)", run_dir, len(report.failures))
    for problem in summary["harness_problems"]:
        log.warning("%s: harness problem: %s", run_dir, problem)
    return summary


def run_status(run_dir: Path, history: RunHistory) -> RunStatus:
    """How the run ended: its ``error.txt``, else a history that shows it never really ran or
    never finished (no member event, no run end record) counts as failed too."""
    status = RunStatus.read(run_dir)
    if not status.completed:
        return status
    if not history.events:
        return RunStatus(RunState.FAILED, "no member events in the history: nothing was measured")
    if not history.ended:
        return RunStatus(RunState.FAILED, "the history has no run end record: the run was cut short")
    return status


def find_runs(dirs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(root, run directory) for every directory holding an ``events.jsonl`` in or below the given dirs."""
    found = []
    for root in dirs:
        for events in sorted(Path(root).rglob("events.jsonl")):
            found.append((Path(root), events.parent))
    return found


#: Columns that hold counts or ids: written as integers even when some rows have none.
INTEGER_COLUMNS = frozenset(
    {
        "scenario_members",
        "repetition",
        "step",
        "generation_before",
        "generation_after",
        "generations",
        "members_before",
        "members_after",
        "members_involved",
        "joins",
        "concurrent_groups",
        "partitions",
        "members",
        "client_members",
        "client_reads",
        "client_writes",
        "client_watch_events",
        "broker_requests",
        "requests",
        "bytes_in",
        "bytes_out",
        "zk_reads",
        "zk_writes",
        "zk_watch_notifications",
        "zk_reads_incl_pings",
        *(f for f in ZkLoad.__dataclass_fields__ if f != "namespace"),
    }
)


def _integers(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if column in INTEGER_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    return frame


def _jsonable(value: Any) -> Any:
    """numpy scalars and NaN (from pandas) as plain JSON values."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: Exit codes of ``analyze``: the worst over the directories given.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_NOT_USABLE = 2  # could not analyse, or the run failed or was aborted: its numbers mean nothing


def _verdict(run_dir: Path, summary: dict[str, Any]) -> int:
    """Prints one run's verdict; returns its exit code."""
    status, checks = summary["status"], summary["checks"]
    if status["state"] != RunState.COMPLETED:
        click.echo(f"{run_dir}: {status['state'].upper()} RUN, not measured: {status['reason']}")
        return EXIT_NOT_USABLE
    verdict = "checks passed" if checks["passed"] else f"{len(checks['failures'])} CHECK FAILURE(S)"
    click.echo(f"{run_dir}: {summary['episodes']} episodes, {verdict}")
    for failure in checks["failures"]:
        click.echo(f"  {failure['check']}: {failure['message']}")
    for problem in summary.get("harness_problems", []):
        click.echo(f"  HARNESS PROBLEM (not the design's): {problem}")
    return EXIT_OK if checks["passed"] else EXIT_CHECK_FAILED


@click.command("analyze")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def analyze_command(dirs: tuple[Path, ...]) -> None:
    """(Re)derive the tables and summary.json of every run directory in or below DIRS.

    Exits 0 when every run completed and passed its checks, 1 when a check failed, 2 when a
    directory could not be analysed or holds a failed or aborted run.
    """
    found = find_runs(dirs)
    code = EXIT_OK
    for root in dirs:
        if not any(r == root for r, _ in found):
            click.echo(
                f"{root}: could not analyse: no run directory (with events.jsonl) in or below it", err=True
            )
            code = EXIT_NOT_USABLE
    for _, run_dir in found:
        try:
            summary = analyze(run_dir)
        except Exception as exc:  # one unreadable directory must not hide the verdicts of the others
            log.debug("analysing %s", run_dir, exc_info=True)
            click.echo(f"{run_dir}: could not analyse: {type(exc).__name__}: {exc}", err=True)
            code = EXIT_NOT_USABLE
            continue
        code = max(code, _verdict(run_dir, summary))
    if code != EXIT_OK:
        raise SystemExit(code)

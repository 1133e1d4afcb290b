"""The runner: one scenario x one mode/variant x one repetition = one run directory.

A run starts its own servers (:mod:`bench.backends.local`), member processes that each host one or more
members (:mod:`bench.experiment.groups`), and a sampler; then it walks the scenario's timeline. Every action is recorded in the
history (``events.jsonl``) with its start and end on the same monotonic clock as the members'
events, and ZooKeeper's ``mntr`` (and the brokers' counters) are sampled at every action boundary
and about once a second (``samples.jsonl``). Nothing is timed here: latencies come from the
history afterwards (:mod:`bench.analysis.metrics.tables`), as in Kafka's system tests.

Whatever happens, everything the run started is stopped (``finally``), also on Ctrl-C, and a
failed run leaves ``error.txt`` saying why.

Over the ~500-line guide on purpose: :class:`Run`'s lifecycle (start, steps, waits, teardown on
every path, the run record) reads as one class; the groups and the sampler
(:mod:`bench.experiment.groups`) and what each action does (:mod:`bench.experiment.actions`) are
elsewhere. ``run_scenarios`` and the ``run`` command stay beside it, as the one caller of ``Run``.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import yaml

from bench.analysis.metrics.rows import STEADY_SETTLE_S
from bench.backends import (
    TARGETS,
    Backend,
    BackendFactory,
    ClusterSpec,
    MemberHandle,
    TargetError,
    backend_for,
    check_target,
)
from bench.backends.local import LocalTopology
from bench.experiment.actions import ACTIONS, Pick
from bench.experiment.groups import MemberGroup, RunError, Sampler
from bench.experiment.history import History, RunState, RunStatus
from bench.experiment.scenario import BROKER_MODES, Profile, Scenario, Step, WaitKind, member_mode
from bench.services.kafka_config import KAFKA_MODE
from bench.services.polling import wait_until
from group_api import OFFSET_EVENTS, EventKind
from group_api.registry import MODES, external_variants

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def member_flags(settings: dict[str, Any]) -> list[str]:
    """``rebalance-lab member`` flags for :meth:`Profile.member_settings`."""
    flags = [
        "--session-timeout-ms",
        str(settings["session_timeout_ms"]),
        "--heartbeat-interval-ms",
        str(settings["heartbeat_interval_ms"]),
        "--rebalance-timeout-ms",
        str(settings["rebalance_timeout_ms"]),
    ]
    for key, value in settings.get("options", {}).items():
        flags += ["--option", f"{key}={value}"]
    return flags


#: Exit code of ``run`` and ``demo`` after Ctrl-C: 128 + SIGINT, as shells report it.
EXIT_ABORTED = 130


def environment() -> dict[str, Any]:
    """What the run ran on: versions, CPU, git commit."""
    packages = {}
    for name in ("rebalance-lab", "kazoo", "kafka-python", "confluent-kafka", "pandas", "matplotlib"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu or platform.processor(),
        "cpus": os.cpu_count(),
        "packages": packages,
        "git_commit": commit or None,
    }


class Run:
    """One run: ``scenario`` in one mode/variant, repetition ``repetition``, into ``run_dir``."""

    def __init__(
        self,
        scenario: Scenario,
        mode: str,
        variant: str,
        repetition: int,
        run_dir: Path,
        progress: Progress = log.info,
        backend: BackendFactory = LocalTopology,
    ) -> None:
        self.scenario = scenario
        self.backend_factory = backend
        self.mode = mode
        self.variant = variant
        self.repetition = repetition
        self.dir = run_dir.resolve()
        self.progress = progress
        self.profile: Profile = scenario.profile
        # Random picks repeat for the same scenario and repetition.
        self._random = random.Random(f"{scenario.name}/{repetition}")
        self.groups: list[MemberGroup] = []
        self.history: History | None = None
        self.topology: Backend | None = None
        self.sampler: Sampler | None = None
        self._token = uuid.uuid4().hex[:8]
        #: unique across runs and machines, so tables of many runs combined still tell them apart
        self.run_id = f"{scenario.name}/{mode}-{variant}/rep-{repetition}@{time.strftime('%Y%m%dT%H%M%S')}-{self._token}"
        self._doing = "while starting"  # what the run was doing, for the message of an abort

    @property
    def label(self) -> str:
        return f"{self.scenario.name} [{self.mode}/{self.variant} #{self.repetition}]"

    def execute(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "scenario.yaml").write_text(yaml.safe_dump(self.scenario_as_run(), sort_keys=False))
        identity = {
            "run_id": self.run_id,
            "scenario": self.scenario.name,
            "mode": self.mode,
            "variant": self.variant,
            "repetition": self.repetition,
        }
        (self.dir / "environment.json").write_text(json.dumps({**identity, **environment()}, indent=2))
        self.history = History(self.dir / "events.jsonl")
        try:
            self._execute()
        except KeyboardInterrupt:
            RunStatus(RunState.ABORTED, f"{self.label}: aborted by the user (Ctrl-C) {self._doing}").write(
                self.dir
            )
            raise
        except BaseException as exc:
            reason = f"{self.label}: {exc or type(exc).__name__}"
            RunStatus(RunState.FAILED, reason).write(self.dir, traceback.format_exc())
            raise
        finally:
            self._teardown()
        return self.dir

    def _record_target(self, target: dict[str, Any]) -> None:
        """Add where the run's servers and members ran (``target``: local processes or compose's
        containers, with the backend's facts) to ``environment.json``."""
        path = self.dir / "environment.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "target": target}, indent=2))

    def scenario_as_run(self) -> dict[str, Any]:
        """The scenario with what this run ran: its one mode/variant and the repetitions asked for."""
        return {
            **self.scenario.to_dict(),
            "modes": [{"mode": self.mode, "variant": self.variant}],
            "repetitions": self.scenario.repetitions,
        }

    def _execute(self) -> None:
        assert self.history is not None
        sc = self.scenario
        zk_root = f"/zkmode/run-{self._token}"
        group_names = sc.groups.names()
        topics = dict(sc.groups.topics)
        self.topology = self.backend_factory(
            ClusterSpec(
                zk_nodes=sc.cluster.zk_nodes,
                brokers=sc.cluster.brokers if self.mode in BROKER_MODES else 0,
                base_dir=self.dir / "servers",
                topics=topics,
                zk_root=zk_root,
                initial_rebalance_delay_ms=self.profile.group_initial_rebalance_delay_ms,
                broker_zk_session_timeout_ms=self.profile.broker_zk_session_timeout_ms,
                proxied=any(ACTIONS[step.action].link for step in sc.timeline),
                kafka=self.variant if self.mode == KAFKA_MODE else None,
            )
        )
        self.progress(
            f"{self.label}: starting {sc.cluster.zk_nodes} ZooKeeper node(s)"
            + (f" and {self.topology.brokers} broker(s)" if self.topology.brokers else "")
        )
        self.topology.start()
        self._record_target(self.topology.describe())
        self.sampler = Sampler(self.topology, self.dir / "samples.jsonl")
        self.sampler.start()
        args = self.topology.member_args(self.mode) + member_flags(
            self.profile.member_settings(self.mode, self.variant, sc.offsets)
        )
        members, variant = member_mode(self.mode, self.variant)
        args += ["--mode", members, "--variant", variant, "--assignor", sc.groups.assignor]
        args += [a for t in topics for a in ("--topic", t)]
        log_dir = self.dir / "logs"
        log_dir.mkdir(exist_ok=True)
        self.groups = [
            MemberGroup(
                name,
                topics,
                sc.groups.members_per_process,
                args,
                self.history,
                log_dir,
                self.topology.spawn_member,
            )
            for name in group_names
        ]
        self.history.record(
            "run",
            phase="start",
            scenario=sc.name,
            mode=self.mode,
            variant=self.variant,
            repetition=self.repetition,
            run_id=self.run_id,
            zk_root=zk_root,
            groups={
                g.name: {"topics": topics, "mode": self.mode, "variant": self.variant} for g in self.groups
            },
            partitions={g.name: sorted([t, p] for t, p in g.partitions) for g in self.groups},
            settings=asdict(self.profile),
            timing={**self.profile.timing(self.mode), "offsets": str(sc.offsets)},
        )
        for i, step in enumerate(sc.timeline):
            self._step(i, step)
        self.history.record("run", phase="end")

    # -- steps ---------------------------------------------------------------------------------

    def _step(self, i: int, step: Step) -> None:
        assert self.history is not None and self.sampler is not None
        groups = self._groups_of(step)
        before = {g.name: g.generation() for g in groups}
        params = " ".join(f"{k}={v}" for k, v in step.params if v is not None)
        self.progress(f"{self.label}: step {i} {step.action} {params}".rstrip())
        self._doing = f"during step {i} ({step.action})"
        self.sampler.sample()
        began_ns = time.monotonic_ns()
        ACTIONS[step.action].run(self, i, step, groups)
        self.sampler.sample()
        if step.wait.kind == WaitKind.STABLE:
            newer = ACTIONS[step.action].rebalancing
            self.wait_stable(i, step, groups, before if newer else None, step.wait.seconds)
        elif step.wait.kind in (WaitKind.OFFSETS_COMMITTED, WaitKind.OFFSETS_FETCHED):
            self._wait_reported(i, step, groups, EventKind(step.wait.kind.value), began_ns)
        elif step.wait.seconds:
            time.sleep(step.wait.seconds)  # the scenario asked for a fixed pause
        if step.hold:
            self.hold(step.hold)

    def _groups_of(self, step: Step) -> list[MemberGroup]:
        index = step.as_dict().get("group")
        return self.groups if index is None else [self.groups[index]]

    def record_action(
        self, i: int, step: Step, phase: str, group: str | None, targets: Sequence[str], **params: Any
    ) -> None:
        assert self.history is not None
        self.history.record(
            "action",
            action=str(step.action),
            phase=phase,
            step=i,
            group=group,
            targets=list(targets),
            params={**{k: v for k, v in step.params if v is not None}, **params},
        )

    def wait_stable(
        self,
        i: int,
        step: Step,
        groups: list[MemberGroup],
        before: dict[str, int | None] | None,
        timeout: float,
    ) -> None:
        """Until the groups converged (at a newer generation if the step changed membership) and then
        nothing happened for the quiet period, so slow reactions are not cut off by the next step."""
        assert self.history is not None
        quiet_ns = int(self.quiet_s * 1e9)
        deadline = time.monotonic() + timeout
        while True:
            events = self.history.snapshot()
            last = max((e.mono_ns for e in events if e.kind not in OFFSET_EVENTS), default=0)
            quiet = time.monotonic_ns() - last >= quiet_ns
            if quiet and all(g.stable(None if before is None else before.get(g.name)) for g in groups):
                return
            if time.monotonic() > deadline:
                states = {
                    g.name: {m: (v.generation, len(v.counted)) for m, v in g.view().members.items() if v.live}
                    for g in groups
                }
                raise RunError(
                    f"step {i} ({step.action}): not stable after {timeout:.0f}s; members: {states}"
                )
            time.sleep(0.1)  # a poll: quiet means time passing with no event, which nothing signals

    def hold(self, seconds: float) -> None:
        """Keep still until a steady window of ``seconds`` is there to measure: it starts
        ``STEADY_SETTLE_S`` after the last event (offset commits aside, as :meth:`wait_stable`), so
        the quiet period the wait already spent counts."""
        assert self.history is not None
        last = max((e.mono_ns for e in self.history.snapshot() if e.kind not in OFFSET_EVENTS), default=0)
        until_ns = last + int((STEADY_SETTLE_S + seconds) * 1e9)
        time.sleep(max(0.0, (until_ns - time.monotonic_ns()) / 1e9))  # nothing to wait for but time

    def _wait_reported(
        self, i: int, step: Step, groups: list[MemberGroup], kind: EventKind, since_ns: int
    ) -> None:
        """Until every live member of ``groups`` emitted ``kind`` since ``since_ns``."""
        assert self.history is not None
        history = self.history

        def done() -> bool:
            reported = {e.member for e in history.snapshot() if e.kind == kind and e.mono_ns >= since_ns}
            return all(set(g.live_ids()) <= reported for g in groups)

        what = f"step {i} ({step.action}): every live member to report {kind}"
        wait_until(done, step.wait.seconds, interval=0.1, what=what, error=RunError)

    @property
    def quiet_s(self) -> float:
        """Long enough for a member to notice what the step did: two heartbeats, at least 1 s."""
        if self.mode in BROKER_MODES:
            return max(1.0, 2 * self.profile.heartbeat_interval_ms / 1000)
        return 1.0

    def pick_procs(self, g: MemberGroup, count: int, pick: Pick) -> list[MemberHandle]:
        """Member processes by the step's ``pick``; paused processes are never picked.

        ``follower`` spares the leader's process; ``leader`` in a leaderless variant is the oldest.
        """
        procs = [p for p in g.live_procs() if p.pid not in g.paused and set(p.member_ids) - g.dead]
        leader = g.leader()
        leader_proc = next((p for p in procs if leader in p.member_ids), None)
        if pick == Pick.LEADER:
            chosen = [leader_proc or procs[0]] if procs else []
        elif pick == Pick.FOLLOWER:
            chosen = [p for p in reversed(procs) if p is not leader_proc]
        elif pick == Pick.OLDEST:
            chosen = procs
        elif pick == Pick.RANDOM:
            chosen = self._random.sample(procs, len(procs))
        else:  # newest
            chosen = list(reversed(procs))
        if len(chosen) < count:
            raise RunError(f"{g.name}: asked for {count} {pick} member process(es), {len(chosen)} available")
        return chosen[:count]

    # -- teardown ------------------------------------------------------------------------------

    def _teardown(self) -> None:
        for g in self.groups:
            try:
                g.stop_all("teardown")
            except Exception:
                log.exception("stopping members of %s", g.name)
        if self.sampler is not None:
            self.sampler.stop()
        if self.topology is not None:
            self.topology.stop()
        if self.history is not None:
            self.history.close()


class RunAborted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_scenarios`: the runs complete by then and the one it interrupted."""

    def __init__(self, done: list[Path], failed: list[tuple[str, str]], interrupted: Path) -> None:
        super().__init__(f"aborted by the user in {interrupted}")
        self.done, self.failed, self.interrupted = done, failed, interrupted


@dataclass
class RunCounter:
    """Counts runs across calls of :func:`run_scenarios`, so each progress line says which run of
    how many is going and about how long the rest will take (from the runs finished so far)."""

    total: int
    clock: Callable[[], float] = time.monotonic
    started: int = 0
    finished: int = 0
    finished_s: float = 0.0  # how long the finished runs took together
    _current_start: float | None = None

    def start(self) -> None:
        self.started += 1
        self._current_start = self.clock()

    def finish(self) -> None:
        if self._current_start is not None:
            self.finished += 1
            self.finished_s += self.clock() - self._current_start
            self._current_start = None

    def left_s(self) -> float | None:
        """Seconds until the last run ends, at the mean pace so far; None before a run finished."""
        if not self.finished:
            return None
        mean = self.finished_s / self.finished
        running = self._current_start is not None
        current = self.clock() - self._current_start if self._current_start is not None else 0.0
        queued = self.total - self.finished - running
        # A run slower than the mean is about to end, not done for: it adds nothing, the queue its share.
        return max(0.0, mean - current) + mean * queued

    def prefix(self) -> str:
        left = self.left_s()
        estimate = "" if left is None else f", about {_duration(left)} left"
        return f"(run {self.started} of {self.total}{estimate})"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def count_runs(scenarios: Sequence[Scenario], repeat: int | None, targets: Sequence[Any] | None) -> int:
    """How many runs :func:`run_scenarios` makes of these arguments."""
    return sum((repeat or sc.repetitions) * len(targets or sc.modes) for sc in scenarios)


def run_scenarios(
    scenarios: Sequence[Scenario],
    out: Path,
    repeat: int | None = None,
    progress: Progress = log.info,
    targets: Sequence[tuple[str, str]] | None = None,
    backend: BackendFactory = LocalTopology,
    counter: RunCounter | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every scenario x mode/variant x repetition. A failed run is logged and the rest go on; its
    directory is analysed too, so its summary says it failed. Ctrl-C raises :class:`RunAborted`.

    Progress lines start with ``counter``'s prefix; pass one counter to several calls to count
    their runs together. Returns the run directories written and the failures as (label, reason).
    """
    from bench.analysis.metrics.tables import analyze

    counter = counter or RunCounter(count_runs(scenarios, repeat, targets))

    def counted(message: str) -> None:
        progress(f"{counter.prefix()} {message}")

    done: list[Path] = []
    failed: list[tuple[str, str]] = []
    for sc in scenarios:
        sc = replace(sc, repetitions=repeat or sc.repetitions)  # what scenario.yaml records
        for mode, variant in targets or [(m.mode, m.variant) for m in sc.modes]:
            for rep in range(1, sc.repetitions + 1):
                run_dir = out / sc.name / f"{mode}-{variant}" / f"rep-{rep}"
                run = Run(sc, mode, variant, rep, run_dir, counted, backend)
                counter.start()
                try:
                    run.execute()
                    analyze(run_dir)
                    done.append(run_dir)
                except KeyboardInterrupt:
                    failed.append((run.label, "aborted by the user"))
                    raise RunAborted(done, failed, run_dir) from None
                except Exception as exc:
                    log.debug("run failed", exc_info=True)
                    failed.append((run.label, str(exc)))
                    counted(f"{run.label}: FAILED: {exc}")
                    _analyze_failed(run_dir)
                finally:
                    counter.finish()
    return done, failed


def _analyze_failed(run_dir: Path) -> None:
    """Best effort: a run that failed early may have too little history to analyse."""
    from bench.analysis.metrics.tables import analyze

    try:
        analyze(run_dir)
    except Exception:
        log.warning("%s: could not analyse the failed run", run_dir, exc_info=True)


def console_progress() -> Progress:
    """Progress lines: rich on a terminal, plain time-stamped lines in CI logs."""
    if sys.stderr.isatty():
        from rich.console import Console

        console = Console(stderr=True, log_path=False)  # our source line would only be noise
        # Not markup: a label such as "[zk/chain #1]" would be taken for a style and vanish.
        return lambda message: console.log(message, markup=False)
    return lambda message: print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)  # noqa: T201


def parse_target(value: str) -> tuple[str, str | None]:
    mode, _, variant = value.partition("/")
    return mode, variant or None


def select_targets(
    scenarios: Sequence[Scenario], only: Sequence[str]
) -> list[tuple[Scenario, list[tuple[str, str]]]]:
    """Each scenario with the mode/variants ``--only`` keeps of it (all without ``--only``);
    scenarios it keeps none of are left out. An ``--only`` value that matches no mode or
    mode/variant of any scenario is a usage error naming the valid ones."""
    wanted = {o: parse_target(o) for o in only}
    matched: set[str] = set()
    plan = []
    for sc in scenarios:
        targets = []
        for m in sc.modes:
            hits = {o for o, (w, v) in wanted.items() if m.mode == w and v in (None, m.variant)}
            matched |= hits
            if hits or not wanted:
                targets.append((m.mode, m.variant))
        if targets:
            plan.append((sc, targets))
    unknown = [o for o in wanted if o not in matched]
    if unknown:
        valid = sorted(
            {m.mode for sc in scenarios for m in sc.modes} | {str(m) for sc in scenarios for m in sc.modes}
        )
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise click.BadParameter(
            f"{', '.join(unknown)} matches no mode or mode/variant of the scenarios{hint}; "
            f"valid: {', '.join(valid)}",
            param_hint="--only",
        )
    return plan


def without_unbuilt_kafka(
    plan: list[tuple[Scenario, list[tuple[str, str]]]], say: Callable[[str], None]
) -> list[tuple[Scenario, list[tuple[str, str]]]]:
    """The plan less the real-Kafka targets whose jars ``make setup`` could not build here (no Java
    17 or Maven); ``say`` names each one left out, with the reason."""
    from bench.services.kafka import unavailable

    kept = []
    for sc, targets in plan:
        runnable = []
        for mode, variant in targets:
            reason = unavailable(variant) if mode == KAFKA_MODE else None
            if reason is None:
                runnable.append((mode, variant))
            else:
                say(f"skipping {sc.name} [{mode}/{variant}]: {reason}")
        if runnable:
            kept.append((sc, runnable))
    return kept


def without_unbuilt_java_members(
    plan: list[tuple[Scenario, list[tuple[str, str]]]], say: Callable[[str], None]
) -> list[tuple[Scenario, list[tuple[str, str]]]]:
    """The plan less the variants the JVM runs (zk/curator, coordinator/java) where java/member is
    not built (no Java 17 or Maven); ``say`` names each one left out, with the reason."""
    from bench.services.java import java_module

    module = java_module("member")
    kept = []
    for sc, targets in plan:
        runnable = []
        for mode, variant in targets:
            program = external_variants(mode).get(variant) if mode in MODES else None
            if program == "java" and not module.available:
                say(f"skipping {sc.name} [{mode}/{variant}]: {module.reason}")
            else:
                runnable.append((mode, variant))
        if runnable:
            kept.append((sc, runnable))
    return kept


@click.command("run")
@click.argument("scenario_names", metavar="SCENARIO...", nargs=-1, required=True)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: results/<time>."
)
@click.option(
    "--repeat", type=click.IntRange(min=1), default=None, help="Repetitions (default: the scenario's)."
)
@click.option("--only", "only", multiple=True, help="Run just MODE or MODE/VARIANT (repeatable).")
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default="local",
    show_default=True,
    help="Where servers and members run: processes here, or the docker-compose project (from its bench service).",
)
def run(
    scenario_names: tuple[str, ...], out: Path | None, repeat: int | None, only: tuple[str, ...], target: str
) -> None:
    """Run scenarios (files or library names) against every mode/variant they list."""
    from bench.experiment.library import resolve
    from bench.experiment.loading import expand, load_scenario
    from bench.experiment.scenario import ScenarioError

    try:
        scenarios = [s for name in scenario_names for s in expand(load_scenario(resolve(name)))]
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None

    def say(line: str) -> None:
        click.echo(line, err=True)

    plan = without_unbuilt_java_members(without_unbuilt_kafka(select_targets(scenarios, only), say), say)
    try:
        check_target(target)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    out = out or Path("results") / time.strftime("%Y%m%d-%H%M%S")
    progress = console_progress()
    counter = RunCounter(sum(count_runs([sc], repeat, targets) for sc, targets in plan))
    done: list[Path] = []
    failed: list[tuple[str, str]] = []
    try:
        for sc, targets in plan:
            d, f = run_scenarios([sc], out, repeat, progress, targets, backend_for(target), counter)
            done += d
            failed += f
    except RunAborted as abort:
        click.echo(
            f"Aborted by the user (Ctrl-C); everything the run started is stopped. {len(done + abort.done)} "
            f"run(s) completed under {out}; {abort.interrupted} is marked aborted (error.txt).",
            err=True,
        )
        raise SystemExit(EXIT_ABORTED) from None
    click.echo(f"{len(done)} run(s) written under {out}; report: rebalance-lab report {out}")
    for label, reason in failed:
        click.echo(f"FAILED {label}: {reason}", err=True)
    if failed or not done:
        raise SystemExit(1)

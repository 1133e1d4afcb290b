"""Scenarios: the frozen dataclasses a YAML file is validated into, plus the timing profiles they run under.

A scenario says what to start (cluster, groups), what to run it against (modes and variants), under
which timing profile, how often, and a timeline of actions. Validation is strict: an unknown key, a
wrong type or an action that does not fit the scenario is a :class:`ScenarioError` that names the
file, the field path (``timeline[2].action``) and what was expected; one error carries every error
found in the file. ``cluster.brokers`` may be 0 when no coordinator mode is listed.

Example (the library under ``bench/experiment/scenarios/`` has one file per situation)::

    name: member-crash
    description: SIGKILL one follower; the others take over its partitions.
    cluster: {zk_nodes: 1, brokers: 1}
    groups: {count: 1, members: 4, topics: {orders: 16}}
    modes: [{mode: coordinator, variant: classic}, {mode: zk, variant: all}]
    profile: kafka-defaults
    overrides: {stable_timeout_s: 200}
    repetitions: 5
    timeline:
      - action: start_members
      - {action: kill_member, pick: follower}
      - action: stop

Actions and their parameters (``group`` is an index into ``groups``' ids ``g0, g1, ...``; omitted
means every group; kill and pause act on a member's process, so with ``members_per_process`` > 1
they hit every member in it):

==================  =============================================================================
start_members       ``count`` (default ``groups.members``) members per group
add_members         ``count`` (1) more members per group
leave_members       ``count`` (1) members leave gracefully; ``pick``: newest|oldest|random|leader|follower
kill_member         SIGKILL ``count`` (1) members chosen by ``pick`` (random)
kill_leader         SIGKILL the current generation's leader (leaderless variants: the oldest member)
pause_member        SIGSTOP a member (``pick``: follower) for ``seconds``, or ``sessions`` times the
                    mode's session timeout, then SIGCONT
rolling_restart     restart every member in turn: ``graceful`` (true: leave, false: SIGKILL), then a
                    new member joins; ``between``: stable or seconds
kill_coordinator    SIGKILL the broker coordinating the group (coordinator mode only)
stop_zk             stop one ZooKeeper server: ``server`` leader|follower|index
restart_zk          start it again: ``server`` stopped (the last one stopped)|index
set_delay           add ``rtt_ms`` of round trip (half each way) and ``jitter_ms`` on ``target``
cut_link            ``how``: blackhole (hold bytes) or reset, on ``target``
heal_link           undo cut_link on ``target``
stop                end the run: the members leave (the last step, required)
==================  =============================================================================

Link targets: ``all``, ``zk``, ``brokers``, ``zk-<i>``, ``broker-<i>`` (the members' links to them).

Modes are ``coordinator`` (our brokers), ``zk`` and ``kafka``: real Apache Kafka brokers as the
reference, variants ``3.9-classic`` (ZooKeeper mode) and ``4.0-classic`` (KRaft) with our
coordinator-mode members unchanged, ``3.9-java`` and ``4.0-java`` with Kafka's Java consumer, and
``4.0-consumer`` with the Java consumer speaking KIP-848's consumer protocol
(:mod:`bench.services.kafka_config`). The profile's broker knobs mean the same
there: ``group_initial_rebalance_delay_ms`` is Kafka's ``group.initial.rebalance.delay.ms``.

``wait`` on a step is ``stable`` (the default: until every group converged at a newer generation,
at most ``timeout`` or the profile's ``stable_timeout_s`` seconds), ``offsets_committed`` /
``offsets_fetched`` (until every live member reported that event after the step began, bounded the
same way) or a number of seconds. ``hold``
(seconds, default 0) then keeps everything still until the groups have been quiet that long after
settling (1 s after their last event, offset commits aside), so the metrics get a steady window of
at least ``hold`` seconds in which to measure idle load (they need 2 s); the quiet period the wait
already spent counts, so a broker mode's two-heartbeat quiet period needs little more.
``offsets: none`` (default ``commit``) turns offset commits and read-backs off in both modes, to
isolate the election's own cost; no step may then wait for an offsets event.
``sweep: {groups.members: [2, 4, 8]}`` turns one file into the cartesian set of scenarios
(:func:`expand`); paths are dotted with list indices, e.g. ``timeline[0].rtt_ms``.
"""

# Reading and validating a file is :mod:`bench.experiment.loading`; the library and its commands
# :mod:`bench.experiment.library`; each action's parameters :mod:`bench.experiment.actions`.

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from bench.experiment.actions import Action
from bench.services.kafka_config import KAFKA_MODE, KAFKA_TARGETS
from group_api import DEFAULT_AUTO_COMMIT_INTERVAL_MS, DEFAULT_SESSION_TIMEOUT_MS, MemberConfig


class ScenarioError(ValueError):
    """A scenario file is invalid: ``source``, ``field`` (a path such as ``timeline[2].action``), why.

    ``errors`` is every error found in the file, this one first; the message has one line each.
    """

    def __init__(self, source: str, field: str, message: str, more: Sequence[ScenarioError] = ()) -> None:
        self.source = source
        self.field = field
        self.message = message
        self.errors: tuple[ScenarioError, ...] = (self, *more)
        super().__init__("\n".join(e.line for e in self.errors))

    @property
    def line(self) -> str:
        return (
            f"{self.source}: {self.field}: {self.message}" if self.field else f"{self.source}: {self.message}"
        )

    @classmethod
    def of(cls, errors: Sequence[ScenarioError]) -> ScenarioError:
        """One error carrying all of ``errors`` (and theirs), in order."""
        first, *more = [e for error in errors for e in error.errors]
        return cls(first.source, first.field, first.message, more)


# -- profiles --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Every timing knob a run sets, declared once; a scenario's ``overrides`` replace any of them.

    ``kafka-defaults`` gives each design its own real defaults (so its sessions differ: 45 s against
    Kafka 0.8's 6 s). ``fast`` puts both on the same footing: one session timeout, one heartbeat
    period and one commit interval for both modes (:meth:`timing`), values both can honour: 6 s is
    the brokers' ``group.min.session.timeout.ms`` (Kafka's default, the lowest a coordinator
    accepts) and inside the bounds ZooKeeper negotiates a session into with our launcher
    (``bench/services/zookeeper.py``: ``tickTime`` 500 ms, so ``minSessionTimeout`` 2 ticks = 1 s,
    and ``maxSessionTimeout`` 60 s); the heartbeat is a third of it,
    which is the period at which kazoo pings (a third of the negotiated session) and Kafka's rule of
    thumb for ``heartbeat.interval.ms``.
    """

    name: str
    #: coordinator mode: ``session.timeout.ms`` (Kafka 3.0+ default 45 s, KIP-735)
    coordinator_session_timeout_ms: int
    #: coordinator mode: ``heartbeat.interval.ms``
    heartbeat_interval_ms: int
    #: coordinator mode, broker: ``group.initial.rebalance.delay.ms`` (KIP-134)
    group_initial_rebalance_delay_ms: int
    #: coordinator mode: ``max.poll.interval.ms``, sent as the JoinGroup rebalance timeout
    rebalance_timeout_ms: int
    #: zk mode: the members' ZooKeeper session timeout (Kafka 0.8's ``zookeeper.session.timeout.ms``)
    zk_session_timeout_ms: int
    #: both modes: ``auto.commit.interval.ms`` (the Java consumer's; Kafka 0.8's ZooKeeper consumer
    #: committed on the same knob)
    auto_commit_interval_ms: int
    #: coordinator mode, brokers: their ZooKeeper session (Kafka's ``zookeeper.session.timeout.ms``, 18 s)
    broker_zk_session_timeout_ms: int
    #: zk selfbalance: Kafka 0.8's ``rebalance.backoff.ms`` and ``rebalance.max.retries``
    rebalance_backoff_ms: int
    rebalance_max_retries: int
    #: zk setpartitioner: kazoo's ``time_boundary`` (the party must hold still this long)
    time_boundary_s: float
    #: harness: how long ``wait: stable`` waits before the step counts as not converged
    stable_timeout_s: float

    def session_timeout_ms(self, mode: str) -> int:
        return self.coordinator_session_timeout_ms if mode in BROKER_MODES else self.zk_session_timeout_ms

    def timing(self, mode: str) -> dict[str, int]:
        """What a member of ``mode`` runs with: session, heartbeat and commit interval (ms). A zk
        member's heartbeat is kazoo's ping, a third of its session; it has no knob of its own."""
        session = self.session_timeout_ms(mode)
        return {
            "session_timeout_ms": session,
            "heartbeat_interval_ms": self.heartbeat_interval_ms if mode == "coordinator" else session // 3,
            "auto_commit_interval_ms": self.auto_commit_interval_ms,
        }

    def member_settings(self, mode: str, variant: str, offsets: Offsets | str = "commit") -> dict[str, Any]:
        """Keyword arguments for :class:`group_api.MemberConfig` (``options`` for the variant's and
        the commit knobs; ``offsets: none`` turns auto-commit off)."""
        options: dict[str, Any] = {"auto_commit_interval_ms": self.auto_commit_interval_ms}
        if offsets == Offsets.NONE:
            options["enable_auto_commit"] = "false"
        if (mode, variant) == ("zk", "selfbalance"):
            options |= {
                "rebalance_backoff_ms": self.rebalance_backoff_ms,
                "rebalance_max_retries": self.rebalance_max_retries,
            }
        elif (mode, variant) == ("zk", "setpartitioner"):
            options |= {"time_boundary_s": self.time_boundary_s}
        elif mode == KAFKA_MODE:
            options |= dict(KAFKA_TARGETS[variant].member_options)
        return {
            "session_timeout_ms": self.session_timeout_ms(mode),
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "options": options,
        }


#: Scenario modes whose runs start brokers: our coordinator's, or real Kafka's (``kafka``: the
#: reference targets of :mod:`bench.services.kafka_config`, its variants the targets' names).
BROKER_MODES = ("coordinator", KAFKA_MODE)


def member_mode(mode: str, variant: str) -> tuple[str, str]:
    """The member implementation (``rebalance-lab member --mode/--variant``) a scenario mode runs:
    itself, or for a real-Kafka target the members its variant names."""
    if mode != KAFKA_MODE:
        return mode, variant
    target = KAFKA_TARGETS[variant]
    return target.member_mode, target.member_variant


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="kafka-defaults",
            coordinator_session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS["coordinator"],
            heartbeat_interval_ms=MemberConfig.heartbeat_interval_ms,
            rebalance_timeout_ms=MemberConfig.rebalance_timeout_ms,
            zk_session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS["zk"],
            auto_commit_interval_ms=DEFAULT_AUTO_COMMIT_INTERVAL_MS,
            broker_zk_session_timeout_ms=18_000,
            # Declared by the modes, which validating a scenario does not import; a test holds them
            # equal to CoordinatorConfig, SelfBalanceOptions and PartitionerOptions.
            group_initial_rebalance_delay_ms=3_000,
            rebalance_backoff_ms=2_000,
            rebalance_max_retries=4,
            time_boundary_s=30.0,
            stable_timeout_s=180.0,  # a crash waits out a 45 s session, then a rebalance
        ),
        Profile(
            name="fast",
            # The same session, heartbeat and commit interval for both modes (see the class).
            coordinator_session_timeout_ms=6_000,  # the brokers' group.min.session.timeout.ms
            heartbeat_interval_ms=2_000,  # a third of the session, as kazoo pings
            group_initial_rebalance_delay_ms=0,
            rebalance_timeout_ms=10_000,
            zk_session_timeout_ms=6_000,  # inside ZooKeeper's [1 s, 60 s] at tickTime 500
            auto_commit_interval_ms=1_000,  # several commits in a short run, in both modes
            broker_zk_session_timeout_ms=6_000,
            rebalance_backoff_ms=200,
            rebalance_max_retries=4,
            time_boundary_s=0.5,
            stable_timeout_s=60.0,
        ),
    )
}


# -- the scenario's parts --------------------------------------------------------------------------


class Offsets(StrEnum):
    """A scenario's ``offsets``: ``commit`` (default: auto-commit on, as both designs ship) or
    ``none`` (no member commits or reads back offsets, in either mode: the election's own cost)."""

    COMMIT = "commit"
    NONE = "none"


class WaitKind(StrEnum):
    STABLE = "stable"
    SECONDS = "seconds"
    # Until every live member reported this offsets event after the step began (coordinator mode).
    OFFSETS_COMMITTED = "offsets_committed"
    OFFSETS_FETCHED = "offsets_fetched"


#: Waits bounded like ``stable``, by ``timeout`` or the profile's ``stable_timeout_s``.
BOUNDED_WAITS = (WaitKind.STABLE, WaitKind.OFFSETS_COMMITTED, WaitKind.OFFSETS_FETCHED)


@dataclass(frozen=True)
class Wait:
    kind: WaitKind
    seconds: float  # SECONDS: how long; STABLE: the timeout


@dataclass(frozen=True)
class Cluster:
    zk_nodes: int = 1
    brokers: int = 1


@dataclass(frozen=True)
class Groups:
    members: int
    topics: tuple[tuple[str, int], ...]
    count: int = 1
    assignor: str = "range"
    members_per_process: int = 1

    def names(self) -> list[str]:
        """Group ids; an action's ``group`` index refers to this list."""
        return [f"g{i}" for i in range(self.count)]

    def partitions(self) -> list[tuple[str, int]]:
        return [(t, p) for t, n in self.topics for p in range(n)]


@dataclass(frozen=True)
class ModeSpec:
    mode: str
    variant: str

    def __str__(self) -> str:
        return f"{self.mode}/{self.variant}"


@dataclass(frozen=True)
class Step:
    action: Action
    params: tuple[tuple[str, Any], ...]  # every parameter of the action, defaults filled in
    wait: Wait
    #: after the wait, the steady window to leave (seconds from 1 s after the last event): the
    #: steady state metrics measure idle load in it
    hold: float = 0.0

    def param(self, name: str) -> Any:
        return dict(self.params)[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str
    cluster: Cluster
    groups: Groups
    modes: tuple[ModeSpec, ...]
    profile: Profile  # with the overrides applied
    overrides: tuple[tuple[str, Any], ...]
    repetitions: int
    timeline: tuple[Step, ...]
    offsets: Offsets = Offsets.COMMIT
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    #: the values this scenario took in its sweep (empty unless made by :func:`expand`)
    swept: tuple[tuple[str, Any], ...] = ()
    #: the scenario a sweep point was expanded from (None for a scenario that is not a sweep point)
    swept_from: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def family(self) -> str:
        """The name sweep points share: the swept scenario's, else this scenario's own."""
        return self.swept_from or self.name

    def to_dict(self) -> dict[str, Any]:
        """The scenario as run, loadable again; a sweep point records where it came from in
        ``sweep_point: {scenario: NAME, values: {PATH: VALUE}}``."""
        return copy.deepcopy(self.raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def pause_seconds(self, step: Step, mode: str) -> float:
        """How long a ``pause_member`` step pauses, in the given mode (``sessions`` is per mode)."""
        params = step.as_dict()
        if params.get("seconds") is not None:
            return float(params["seconds"])
        return float(params["sessions"]) * self.profile.session_timeout_ms(mode) / 1000.0

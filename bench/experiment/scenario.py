"""Scenarios: YAML files validated into frozen dataclasses, plus the timing profiles they run under.

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

``wait`` on a step is ``stable`` (the default: until every group converged at a newer generation,
at most ``timeout`` or the profile's ``stable_timeout_s`` seconds), ``offsets_committed`` /
``offsets_fetched`` (until every live member reported that event after the step began, bounded the
same way; only coordinator-mode members commit) or a number of seconds. ``hold
(seconds, default 0) then keeps everything still, so the metrics get a steady window in which to
measure idle ZooKeeper load (they need 1 s to settle plus 2 s).
``sweep: {groups.members: [2, 4, 8]}`` turns one file into the cartesian set of scenarios
(:func:`expand`); paths are dotted with list indices, e.g. ``timeline[0].rtt_ms``.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from bench.experiment.actions import ACTIONS, Action, LinkCut, Pick
from group_api import ASSIGNOR_NAMES, DEFAULT_SESSION_TIMEOUT_MS, MemberConfig
from group_api.registry import MODES, variants

LIBRARY_DIR = Path(__file__).with_name("scenarios")
_T = TypeVar("_T")


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
    """Every timing knob a run sets, declared once; a scenario's ``overrides`` replace any of them."""

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
    #: zk selfbalance: Kafka 0.8's ``rebalance.backoff.ms`` and ``rebalance.max.retries``
    rebalance_backoff_ms: int
    rebalance_max_retries: int
    #: zk setpartitioner: kazoo's ``time_boundary`` (the party must hold still this long)
    time_boundary_s: float
    #: harness: how long ``wait: stable`` waits before the step counts as not converged
    stable_timeout_s: float

    def session_timeout_ms(self, mode: str) -> int:
        return self.coordinator_session_timeout_ms if mode == "coordinator" else self.zk_session_timeout_ms

    def member_settings(self, mode: str, variant: str) -> dict[str, Any]:
        """Keyword arguments for :class:`group_api.MemberConfig` (``options`` for the variant's knobs)."""
        options: dict[str, Any] = {}
        if (mode, variant) == ("zk", "selfbalance"):
            options = {
                "rebalance_backoff_ms": self.rebalance_backoff_ms,
                "rebalance_max_retries": self.rebalance_max_retries,
            }
        elif (mode, variant) == ("zk", "setpartitioner"):
            options = {"time_boundary_s": self.time_boundary_s}
        return {
            "session_timeout_ms": self.session_timeout_ms(mode),
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "options": options,
        }


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="kafka-defaults",
            coordinator_session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS["coordinator"],
            heartbeat_interval_ms=MemberConfig.heartbeat_interval_ms,
            rebalance_timeout_ms=MemberConfig.rebalance_timeout_ms,
            zk_session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS["zk"],
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
            coordinator_session_timeout_ms=6_000,  # the broker's group.min.session.timeout.ms
            heartbeat_interval_ms=500,
            group_initial_rebalance_delay_ms=0,
            rebalance_timeout_ms=10_000,
            zk_session_timeout_ms=4_000,  # ZooKeeper's floor with tickTime 2000
            rebalance_backoff_ms=200,
            rebalance_max_retries=4,
            time_boundary_s=0.5,
            stable_timeout_s=60.0,
        ),
    )
}

_PROFILE_KNOBS = tuple(f for f in fields(Profile) if f.name != "name")
#: knobs for which 0 means "off"; every other knob must be positive
_ZERO_ALLOWED = frozenset({"group_initial_rebalance_delay_ms", "rebalance_backoff_ms", "time_boundary_s"})


# -- the scenario's parts --------------------------------------------------------------------------


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
    #: after the wait, seconds with nothing done: the steady state metrics measure idle load in
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


# -- validation ------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Raised by checkers with what was expected; the caller adds the file and field."""


def _fmt(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"expected a positive integer, got {_fmt(value)}")
    return value


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"expected an integer >= 0, got {_fmt(value)}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _Invalid(f"expected a number of seconds >= 0, got {_fmt(value)}")
    return float(value)


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _Invalid(f"expected a positive number, got {_fmt(value)}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_fmt(value)}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_fmt(value)}")
    return value


def _choice(enum: type[StrEnum]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return enum(value)
        except ValueError:
            raise _Invalid(f"expected one of {', '.join(enum)}, got {_fmt(value)}") from None

    return check


@dataclass(frozen=True)
class _Param:
    check: Callable[[Any], Any]
    default: Any = None
    required: bool = False


# Parameters that depend on the rest of the scenario (group index, server index, link target) are
# checked again in _check_step_context.
_GROUP = _Param(lambda v: v if v is None else _non_negative_int(v))
_COUNT1 = _Param(_positive_int, 1)
_LINK = _Param(_text, "all")

ACTION_PARAMS: dict[Action, dict[str, _Param]] = {
    Action.START_MEMBERS: {"group": _GROUP, "count": _Param(_positive_int)},  # default: groups.members
    Action.ADD_MEMBERS: {"group": _GROUP, "count": _COUNT1},
    Action.LEAVE_MEMBERS: {"group": _GROUP, "count": _COUNT1, "pick": _Param(_choice(Pick), Pick.NEWEST)},
    Action.KILL_MEMBER: {"group": _GROUP, "count": _COUNT1, "pick": _Param(_choice(Pick), Pick.RANDOM)},
    Action.KILL_LEADER: {"group": _GROUP},
    Action.PAUSE_MEMBER: {
        "group": _GROUP,
        "pick": _Param(_choice(Pick), Pick.FOLLOWER),
        "seconds": _Param(_positive_number),
        "sessions": _Param(_positive_number),  # multiples of the mode's session timeout
    },
    Action.ROLLING_RESTART: {
        "group": _GROUP,
        "graceful": _Param(_boolean, True),
        "between": _Param(lambda v: v, "stable"),
    },
    Action.KILL_COORDINATOR: {"group": _GROUP},
    Action.STOP_ZK: {"server": _Param(lambda v: v, "leader")},
    Action.RESTART_ZK: {"server": _Param(lambda v: v, "stopped")},
    Action.SET_DELAY: {
        "target": _LINK,
        "rtt_ms": _Param(_seconds, required=True),  # added round trip, half per direction
        "jitter_ms": _Param(_seconds, 0.0),
    },
    Action.CUT_LINK: {"target": _LINK, "how": _Param(_choice(LinkCut), LinkCut.BLACKHOLE)},
    Action.HEAL_LINK: {"target": _LINK},
    Action.STOP: {},
}

_STEP_KEYS = ("action", "wait", "timeout", "hold")
_TOP_KEYS = (
    "name",
    "description",
    "cluster",
    "groups",
    "modes",
    "profile",
    "overrides",
    "repetitions",
    "timeline",
    "sweep",
    "sweep_point",  # written by expand(): which sweep this scenario is a point of
)
_LINK_RE = re.compile(r"^(all|zk|brokers|zk-(\d+)|broker-(\d+))$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*$")


class _Reader:
    """Walks the raw YAML, turning problems into ScenarioErrors with the field's path.

    A parser raises on the first problem in the part it reads; :meth:`attempt` records that error
    and the walk goes on with the next part, so one pass finds every error of a file (``errors``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[ScenarioError] = []

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(self.source, path, message)

    def record(self, path: str, message: str) -> None:
        self.errors.append(self.fail(path, message))

    def attempt(self, parse: Callable[..., _T], *args: Any) -> _T | None:
        """``parse(*args)``, or None once its error is recorded."""
        try:
            return parse(*args)
        except ScenarioError as exc:
            self.errors.extend(exc.errors)
            return None

    def mapping(self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        """The known keys of ``value``; unknown and missing keys are recorded, a non-mapping raises."""
        allowed = tuple(allowed)
        if not isinstance(value, dict):
            raise self.fail(path or "(top level)", f"expected a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.record(where, f"unknown key; allowed here: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.record(f"{path}.{key}" if path else key, "missing (required)")
        return {k: v for k, v in value.items() if k in allowed}

    def check(self, value: Any, path: str, checker: Callable[[Any], Any]) -> Any:
        try:
            return checker(value)
        except _Invalid as exc:
            raise self.fail(path, str(exc)) from None

    def value(
        self, raw: dict, key: str, path: str, checker: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """``raw[key]`` (or ``default``) checked; None once an error is recorded, or when a required
        key (no default) is missing, which :meth:`mapping` recorded."""
        if key not in raw and default is None:
            return None
        return self.attempt(self.check, raw.get(key, default), path, checker)


def _cluster(r: _Reader, raw: Any) -> Cluster | None:
    raw = r.mapping({} if raw is None else raw, "cluster", ("zk_nodes", "brokers"))
    zk_nodes = r.value(raw, "zk_nodes", "cluster.zk_nodes", _positive_int, 1)
    # 0 suits a scenario of zk modes only; _check_brokers refuses it when a coordinator mode is listed
    brokers = r.value(raw, "brokers", "cluster.brokers", _non_negative_int, 1)
    if zk_nodes is None or brokers is None:
        return None
    return Cluster(zk_nodes=zk_nodes, brokers=brokers)


def _topics(r: _Reader, topics: Any) -> tuple[tuple[str, int], ...] | None:
    if not isinstance(topics, dict) or not topics:
        raise r.fail("groups.topics", "expected a mapping of topic name to partition count")
    pairs = []
    for topic, n in topics.items():
        if not isinstance(topic, str) or not _NAME_RE.match(topic):
            r.record(f"groups.topics.{topic}", "expected a topic name of [A-Za-z0-9._-]")
            continue
        count = r.attempt(r.check, n, f"groups.topics.{topic}", _positive_int)
        if count is not None:
            pairs.append((topic, count))
    return tuple(pairs) if len(pairs) == len(topics) else None


def _groups(r: _Reader, raw: Any) -> Groups | None:
    raw = r.mapping(
        raw,
        "groups",
        ("count", "members", "topics", "assignor", "members_per_process"),
        required=("members", "topics"),
    )
    topics = r.attempt(_topics, r, raw["topics"]) if "topics" in raw else None
    assignor = raw.get("assignor", "range")
    if assignor not in ASSIGNOR_NAMES:
        r.record("groups.assignor", f"expected one of {', '.join(ASSIGNOR_NAMES)}, got {_fmt(assignor)}")
    members = r.value(raw, "members", "groups.members", _positive_int)
    count = r.value(raw, "count", "groups.count", _positive_int, 1)
    per_process = r.value(raw, "members_per_process", "groups.members_per_process", _positive_int, 1)
    if None in (topics, members, count, per_process) or assignor not in ASSIGNOR_NAMES:
        return None
    return Groups(
        members=members, topics=topics, count=count, assignor=assignor, members_per_process=per_process
    )


def _mode_item(r: _Reader, item: Any, path: str) -> tuple[ModeSpec, ...] | None:
    item = r.mapping(item, path, ("mode", "variant"), required=("mode",))
    if "mode" not in item:
        return None
    mode = item["mode"]
    if mode not in MODES:
        raise r.fail(f"{path}.mode", f"expected one of {', '.join(MODES)}, got {_fmt(mode)}")
    try:
        known = variants(mode)
    except Exception as exc:  # the mode's package is broken: say so, naming the field
        raise r.fail(f"{path}.mode", f"cannot load mode {mode!r} to check its variants: {exc!r}") from None
    variant = item.get("variant", known[0])
    if variant == "all":
        return tuple(ModeSpec(mode, v) for v in known)
    if variant in known:
        return (ModeSpec(mode, variant),)
    raise r.fail(
        f"{path}.variant", f"expected one of {', '.join(known)} or all for {mode}, got {_fmt(variant)}"
    )


def _modes(r: _Reader, raw: Any) -> tuple[ModeSpec, ...] | None:
    if not isinstance(raw, list) or not raw:
        raise r.fail("modes", "expected a non-empty list of {mode, variant}")
    out: list[ModeSpec] = []
    complete = True
    for i, item in enumerate(raw):
        specs = r.attempt(_mode_item, r, item, f"modes[{i}]")
        complete = complete and specs is not None
        for spec in specs or ():
            if spec in out:
                r.record(f"modes[{i}]", f"{spec} is listed twice")
                complete = False
            out.append(spec)
    return tuple(out) if complete else None


def _profile(r: _Reader, name: Any, overrides: Any) -> tuple[Profile, tuple[tuple[str, Any], ...]] | None:
    base = PROFILES.get(name) if isinstance(name, str) else None
    if base is None:
        r.record("profile", f"expected one of {', '.join(PROFILES)}, got {_fmt(name)}")
    knobs = {f.name: f for f in _PROFILE_KNOBS}
    overrides = r.mapping({} if overrides is None else overrides, "overrides", knobs)
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if knobs[key].type in ("int", int):
            check = _non_negative_int if key in _ZERO_ALLOWED else _positive_int
        else:
            check = _seconds if key in _ZERO_ALLOWED else _positive_number
        checked = r.attempt(r.check, value, f"overrides.{key}", check)
        if checked is not None:
            changes[key] = checked
    if base is None or len(changes) != len(overrides):
        return None
    return replace(base, **changes), tuple(changes.items())


def _wait(r: _Reader, raw: dict, path: str, profile: Profile) -> Wait:
    wait = raw.get("wait", "stable")
    timeout = raw.get("timeout")
    if wait in BOUNDED_WAITS:
        seconds = profile.stable_timeout_s
        if timeout is not None:
            seconds = r.check(timeout, f"{path}.timeout", _positive_number)
        return Wait(WaitKind(wait), seconds)
    if timeout is not None:
        raise r.fail(
            f"{path}.timeout", "only allowed with wait: stable, offsets_committed or offsets_fetched"
        )
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise r.fail(
            f"{path}.wait",
            f"expected stable, offsets_committed, offsets_fetched or a number of seconds >= 0, got {_fmt(wait)}",
        )
    return Wait(WaitKind.SECONDS, float(wait))


def _step_params(r: _Reader, raw: dict, path: str, action: Action) -> dict[str, Any] | None:
    """Every parameter of the action, defaults filled in; None once an error is recorded."""
    params: dict[str, Any] = {}
    before = len(r.errors)
    for key, spec in ACTION_PARAMS[action].items():
        if key not in raw:
            if spec.required:
                r.record(f"{path}.{key}", f"missing (required by {action})")
            params[key] = spec.default
        else:
            try:
                params[key] = r.check(raw[key], f"{path}.{key}", spec.check)
            except ScenarioError as exc:
                r.errors.append(exc)
    return params if len(r.errors) == before else None


def _step(r: _Reader, raw: Any, path: str, profile: Profile) -> Step | None:
    if not isinstance(raw, dict) or "action" not in raw:
        raise r.fail(path, "expected a mapping with an action: {action: NAME, ...params, wait}")
    try:
        action = Action(raw["action"])
    except (ValueError, TypeError):
        raise r.fail(
            f"{path}.action", f"expected one of {', '.join(Action)}, got {_fmt(raw['action'])}"
        ) from None
    r.mapping(raw, path, (*_STEP_KEYS, *ACTION_PARAMS[action]))
    params = _step_params(r, raw, path, action)
    if action == Action.STOP:
        if "hold" in raw:
            raise r.fail(f"{path}.hold", "not allowed on stop (the run ends there)")
        return None if params is None else Step(action, (), Wait(WaitKind.SECONDS, 0.0))
    wait = r.attempt(_wait, r, raw, path, profile)
    hold = r.value(raw, "hold", f"{path}.hold", _seconds, 0.0)
    if params is None or wait is None or hold is None:
        return None
    if action == Action.PAUSE_MEMBER and (params["seconds"] is None) == (params["sessions"] is None):
        raise r.fail(path, "pause_member needs exactly one of seconds or sessions")
    if action == Action.ROLLING_RESTART and params["between"] != "stable":
        params["between"] = r.check(params["between"], f"{path}.between", _seconds)
    return Step(action, tuple(params.items()), wait, hold)


def _check_step_context(r: _Reader, step: Step, path: str, s: dict[str, Any]) -> None:
    """Checks that need the rest of the scenario: indices in range, the action fits the modes."""
    params = step.as_dict()
    groups: Groups = s["groups"]
    cluster: Cluster = s["cluster"]
    if params.get("group") is not None and params["group"] >= groups.count:
        raise r.fail(f"{path}.group", f"expected a group index below groups.count={groups.count}")
    if step.action == Action.KILL_COORDINATOR:
        zk_modes = [str(m) for m in s["modes"] if m.mode != "coordinator"]
        if zk_modes:
            raise r.fail(
                f"{path}.action", f"kill_coordinator needs coordinator mode only; modes include {zk_modes[0]}"
            )
    if step.action in (Action.STOP_ZK, Action.RESTART_ZK):
        server = params["server"]
        named = ("leader", "follower") if step.action == Action.STOP_ZK else ("stopped",)
        if server not in named:
            index = r.check(server, f"{path}.server", _non_negative_int)
            if index >= cluster.zk_nodes:
                raise r.fail(f"{path}.server", f"expected an index below cluster.zk_nodes={cluster.zk_nodes}")
        if server == "follower" and cluster.zk_nodes < 3:
            raise r.fail(f"{path}.server", "a follower exists only with cluster.zk_nodes >= 3")
    if "target" in params:
        match = _LINK_RE.match(params["target"])
        if not match:
            raise r.fail(
                f"{path}.target",
                f"expected all, zk, brokers, zk-<i> or broker-<i>, got {_fmt(params['target'])}",
            )
        zk_index, broker_index = match.group(2), match.group(3)
        if zk_index is not None and int(zk_index) >= cluster.zk_nodes:
            raise r.fail(f"{path}.target", f"expected a zk index below cluster.zk_nodes={cluster.zk_nodes}")
        if broker_index is not None and int(broker_index) >= cluster.brokers:
            raise r.fail(f"{path}.target", f"expected a broker index below cluster.brokers={cluster.brokers}")


def _sweep(r: _Reader, raw: Any) -> tuple[tuple[str, tuple[Any, ...]], ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise r.fail("sweep", "expected a mapping of field path to a list of values")
    out = []
    for key, values in raw.items():
        if not isinstance(key, str) or not _PATH_RE.match(key) or key.split(".")[0].split("[")[0] == "sweep":
            r.record(f"sweep.{key}", "expected a field path such as groups.members or timeline[0].rtt_ms")
        elif not isinstance(values, list) or not values:
            r.record(f"sweep.{key}", "expected a non-empty list of values")
        else:
            out.append((key, tuple(values)))
    return tuple(out) if len(out) == len(raw) else None


def _sweep_point(r: _Reader, raw: dict[str, Any]) -> dict[str, Any]:
    point = raw.get("sweep_point")
    if point is None:
        return {}
    point = r.mapping(point, "sweep_point", ("scenario", "values"), required=("scenario", "values"))
    if "sweep" in raw:
        raise r.fail("sweep_point", "a sweep point cannot have a sweep of its own")
    if not isinstance(point.get("scenario"), str) or not _NAME_RE.match(point["scenario"]):
        raise r.fail("sweep_point.scenario", f"expected a scenario name, got {_fmt(point.get('scenario'))}")
    if not isinstance(point.get("values"), dict):
        raise r.fail("sweep_point.values", "expected a mapping of field path to value")
    return {"swept_from": point["scenario"], "swept": tuple(point["values"].items())}


def _check_brokers(r: _Reader, cluster: Cluster | None, modes: tuple[ModeSpec, ...] | None) -> None:
    if cluster is None or modes is None or cluster.brokers:
        return
    coordinator = [str(m) for m in modes if m.mode == "coordinator"]
    if coordinator:
        r.record(
            "cluster.brokers",
            f"expected at least 1 broker: modes include {coordinator[0]} (0 suits zk modes only)",
        )


def _timeline(r: _Reader, timeline: Any, profile: Profile, parts: dict[str, Any]) -> tuple[Step, ...] | None:
    if not isinstance(timeline, list) or not timeline:
        raise r.fail("timeline", "expected a non-empty list of steps")
    in_context = all(part is not None for part in parts.values())  # else the context checks mislead
    steps = []
    for i, item in enumerate(timeline):
        path = f"timeline[{i}]"
        step = r.attempt(_step, r, item, path, profile)
        if step is None:
            continue
        if in_context:
            r.attempt(_check_step_context, r, step, path, parts)
        if step.action == Action.STOP and i != len(timeline) - 1:
            r.record(f"{path}.action", "stop must be the last step")
        steps.append(step)
    # The order checks read the actions as written, so a step with a bad parameter still counts.
    actions = [item.get("action") if isinstance(item, dict) else None for item in timeline]
    started = False
    for i, action in enumerate(actions):
        started = started or action == Action.START_MEMBERS
        if action in ACTIONS and ACTIONS[action].needs_members and not started:
            r.record(f"timeline[{i}].action", f"{action} before any start_members step")
    if not started:
        r.record("timeline", "expected a start_members step")
    if actions[-1] != Action.STOP:
        # At stop the members leave inside the measured run, which ends the last episode; a
        # timeline without it is most likely cut short, and `run` should not find that out late.
        r.record("timeline", "expected a stop step at the end (the members leave and the run ends there)")
    return tuple(steps) if len(steps) == len(timeline) else None


def _parse(raw: Any, source: str) -> Scenario:
    """The scenario ``raw`` describes, or one ScenarioError carrying every error found in it."""
    r = _Reader(source)
    raw = r.mapping(raw, "", _TOP_KEYS, required=("name", "groups", "modes", "timeline"))
    name = raw.get("name")
    if "name" in raw and (not isinstance(name, str) or not _NAME_RE.match(name)):
        r.record("name", f"expected a name of [A-Za-z0-9._-], got {_fmt(name)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        r.record("description", f"expected a string, got {_fmt(description)}")
    profiled = r.attempt(_profile, r, raw.get("profile", "kafka-defaults"), raw.get("overrides"))
    parts: dict[str, Any] = {
        "cluster": r.attempt(_cluster, r, raw.get("cluster")),
        "groups": r.attempt(_groups, r, raw["groups"]) if "groups" in raw else None,
        "modes": r.attempt(_modes, r, raw["modes"]) if "modes" in raw else None,
    }
    _check_brokers(r, parts["cluster"], parts["modes"])
    # Without a valid profile the steps are still checked, against the default one.
    profile, overrides = profiled or (PROFILES["kafka-defaults"], ())
    steps = r.attempt(_timeline, r, raw["timeline"], profile, parts) if "timeline" in raw else None
    repetitions = r.value(raw, "repetitions", "repetitions", _positive_int, 1)
    sweep = r.attempt(_sweep, r, raw.get("sweep"))
    point = r.attempt(_sweep_point, r, raw)
    if r.errors:
        raise ScenarioError.of(r.errors)
    assert steps is not None and sweep is not None and point is not None  # no error was recorded
    return Scenario(
        name=name,
        description=description.strip(),
        source=source,
        profile=profile,
        overrides=overrides,
        repetitions=repetitions,
        timeline=steps,
        sweep=sweep,
        **point,
        raw=copy.deepcopy(raw),
        **parts,
    )


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[2].c`` in nested dicts and lists; missing mapping keys are created."""
    parts = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", path)
    node: Any = raw
    for i, (key, index) in enumerate(parts):
        last = i == len(parts) - 1
        if not isinstance(node, dict):
            raise KeyError(key)
        if last and not index:
            node[key] = value
            return
        if key not in node:
            if index:
                raise KeyError(key)
            node[key] = {}
        node = node[key]
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                raise KeyError(f"{key}[{index}]")
            if last:
                node[int(index)] = value
                return
            node = node[int(index)]


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(value))


def _expand(scenario: Scenario) -> list[Scenario]:
    if not scenario.sweep:
        return [scenario]
    r = _Reader(scenario.source)
    keys = [k for k, _ in scenario.sweep]
    out = []
    for combo in itertools.product(*(values for _, values in scenario.sweep)):
        raw = copy.deepcopy(scenario.raw)
        raw.pop("sweep", None)
        suffix = []
        for key, value in zip(keys, combo, strict=True):
            try:
                _set_path(raw, key, value)
            except KeyError:
                raise r.fail(f"sweep.{key}", "expected a path to an existing field or list element") from None
            leaf = re.sub(r"\[\d+\]$", "", key.rsplit(".", 1)[-1])
            suffix.append(f"{leaf}-{_slug(value)}")
        raw["name"] = "-".join([scenario.name, *suffix])
        raw["sweep_point"] = {"scenario": scenario.name, "values": dict(zip(keys, combo, strict=True))}
        try:
            one = _parse(raw, scenario.source)
        except ScenarioError as exc:
            swept = ", ".join(f"{k}={v!r}" for k, v in zip(keys, combo, strict=True))
            raise ScenarioError.of(
                [ScenarioError(e.source, e.field, f"{e.message} (in the sweep {swept})") for e in exc.errors]
            ) from None
        out.append(one)
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file (its sweep expansions are validated too)."""
    path = Path(path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(source, "", f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    scenario = _parse(raw, source)
    _expand(scenario)  # so a bad sweep value fails here, not in the middle of a run
    return scenario


def expand(scenario: Scenario) -> list[Scenario]:
    """The scenarios a sweep stands for (the cartesian set, in declared order), else ``[scenario]``."""
    return _expand(scenario)


def library() -> dict[str, Path]:
    """The scenarios shipped in ``bench/experiment/scenarios/``, by name (the file stem)."""
    return {p.stem: p for p in sorted(LIBRARY_DIR.glob("*.yaml"))}


def resolve(name_or_path: str) -> Path:
    """A path as given, or the library file of that name; a ScenarioError listing the library
    (closest names first) when it is neither."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path  # meant as a file: load_scenario says if it cannot be read
    names = library()
    if name_or_path in names:
        return names[name_or_path]
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.5)
    listed = ", ".join([*close, *(n for n in names if n not in close)])
    raise ScenarioError(
        name_or_path,
        "",
        f"neither a file nor a library scenario; library scenarios{', closest first' if close else ''}: {listed}",
    )


# -- commands --------------------------------------------------------------------------------------


@click.command("validate")
@click.argument("scenarios", nargs=-1, required=True)
def validate(scenarios: tuple[str, ...]) -> None:
    """Check scenario files (or library names); prints OK or every error of each file."""
    failed = 0
    for name in scenarios:
        try:
            path = resolve(name)
            scenario = load_scenario(path)
        except ScenarioError as exc:
            failed += 1
            for error in exc.errors:
                click.echo(f"ERROR {error.line}")
            continue
        n = len(expand(scenario))
        runs = n * len(scenario.modes) * scenario.repetitions
        click.echo(
            f"OK    {path}: {scenario.name} ({n} scenario(s) x {len(scenario.modes)} modes x "
            f"{scenario.repetitions} repetitions = {runs} runs)"
        )
    if failed:
        raise SystemExit(1)


@click.command("scenarios")
def scenarios() -> None:
    """List the scenario library: name, description, modes."""
    for name, path in library().items():
        try:
            s = load_scenario(path)
        except ScenarioError as exc:
            click.echo(f"{name}\n    INVALID: {exc}\n")
            continue
        modes = ", ".join(str(m) for m in s.modes)
        sweep = "; sweep " + ", ".join(f"{k} {list(v)}" for k, v in s.sweep) if s.sweep else ""
        click.echo(f"{name}\n    {s.description}\n    modes: {modes}; profile {s.profile.name}{sweep}\n")

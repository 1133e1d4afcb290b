"""Reading a scenario file: strict validation into :class:`~bench.experiment.scenario.Scenario`, and
sweeps expanded into one scenario per point.

An unknown key, a wrong type or an action that does not fit the scenario is a
:class:`~bench.experiment.scenario.ScenarioError` that names the file, the field path
(``timeline[2].action``) and what was expected; one error carries every error found in the file.
Every parameter is listed in :mod:`bench.experiment.scenario`'s docstring.

Just over the ~500-line guide on purpose: every section's reader shares one error collector
(``_Reader``) so that a file's errors are reported together, in file order.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.experiment.actions import ACTIONS, Action
from bench.experiment.params import (
    Invalid,
    duration,
    fmt_value,
    non_negative_int,
    positive_int,
    positive_number,
)
from bench.experiment.scenario import (
    BOUNDED_WAITS,
    BROKER_MODES,
    PROFILES,
    Cluster,
    Groups,
    ModeSpec,
    Offsets,
    Profile,
    Scenario,
    ScenarioError,
    Step,
    Wait,
    WaitKind,
)
from bench.services.kafka_config import KAFKA_MODE, KAFKA_TARGETS, OUR_MEMBERS_TARGETS
from group_api import ASSIGNOR_NAMES
from group_api.registry import MODES, default_variants, variants

_T = TypeVar("_T")

_PROFILE_KNOBS = tuple(f for f in fields(Profile) if f.name != "name")
#: knobs for which 0 means "off"; every other knob must be positive
_ZERO_ALLOWED = frozenset({"group_initial_rebalance_delay_ms", "rebalance_backoff_ms", "time_boundary_s"})

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
    "offsets",
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
        except Invalid as exc:
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
    zk_nodes = r.value(raw, "zk_nodes", "cluster.zk_nodes", positive_int, 1)
    # 0 suits a scenario of zk modes only; _check_brokers refuses it when a coordinator mode is listed
    brokers = r.value(raw, "brokers", "cluster.brokers", non_negative_int, 1)
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
        count = r.attempt(r.check, n, f"groups.topics.{topic}", positive_int)
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
        r.record("groups.assignor", f"expected one of {', '.join(ASSIGNOR_NAMES)}, got {fmt_value(assignor)}")
    members = r.value(raw, "members", "groups.members", positive_int)
    count = r.value(raw, "count", "groups.count", positive_int, 1)
    per_process = r.value(raw, "members_per_process", "groups.members_per_process", positive_int, 1)
    if None in (topics, members, count, per_process) or assignor not in ASSIGNOR_NAMES:
        return None
    return Groups(
        members=members, topics=topics, count=count, assignor=assignor, members_per_process=per_process
    )


def _kafka_item(r: _Reader, variant: Any, path: str) -> tuple[ModeSpec, ...]:
    """A real-Kafka target (its members are part of its name); ``all`` is the targets with our
    members."""
    if variant == "all":
        return tuple(ModeSpec(KAFKA_MODE, v) for v in OUR_MEMBERS_TARGETS)
    if variant in KAFKA_TARGETS:
        return (ModeSpec(KAFKA_MODE, variant),)
    raise r.fail(
        f"{path}.variant",
        f"expected one of {', '.join(KAFKA_TARGETS)} or all for {KAFKA_MODE} (<release>-classic: our "
        f"members, <release>-java: Kafka's Java consumer, 4.0-consumer: the Java consumer with KIP-848's "
        f"protocol), got {fmt_value(variant)}",
    )


def _mode_item(r: _Reader, item: Any, path: str) -> tuple[ModeSpec, ...] | None:
    item = r.mapping(item, path, ("mode", "variant"), required=("mode",))
    if "mode" not in item:
        return None
    mode = item["mode"]
    if mode == KAFKA_MODE:
        return _kafka_item(r, item.get("variant", next(iter(KAFKA_TARGETS))), path)
    if mode not in MODES:
        raise r.fail(
            f"{path}.mode", f"expected one of {', '.join([*MODES, KAFKA_MODE])}, got {fmt_value(mode)}"
        )
    try:
        known = variants(mode)
    except Exception as exc:  # the mode's package is broken: say so, naming the field
        raise r.fail(f"{path}.mode", f"cannot load mode {mode!r} to check its variants: {exc!r}") from None
    variant = item.get("variant", known[0])
    if variant == "all":
        return tuple(ModeSpec(mode, v) for v in default_variants(mode))
    if variant in known:
        return (ModeSpec(mode, variant),)
    raise r.fail(
        f"{path}.variant", f"expected one of {', '.join(known)} or all for {mode}, got {fmt_value(variant)}"
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
        r.record("profile", f"expected one of {', '.join(PROFILES)}, got {fmt_value(name)}")
    knobs = {f.name: f for f in _PROFILE_KNOBS}
    overrides = r.mapping({} if overrides is None else overrides, "overrides", knobs)
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if knobs[key].type in ("int", int):
            check = non_negative_int if key in _ZERO_ALLOWED else positive_int
        else:
            check = duration if key in _ZERO_ALLOWED else positive_number
        checked = r.attempt(r.check, value, f"overrides.{key}", check)
        if checked is not None:
            changes[key] = checked
    if base is None or len(changes) != len(overrides):
        return None
    profile = replace(base, **changes)
    _check_sessions(r, profile)
    return profile, tuple(changes.items())


def _check_sessions(r: _Reader, profile: Profile) -> None:
    """Sessions the servers would not grant as asked: the brokers refuse a session below
    ``group.min.session.timeout.ms`` (the members would fail), ZooKeeper silently negotiates one
    outside its bounds to the nearest (the run would not be the one its timing says)."""
    from bench.services.zookeeper import DEFAULT_CFG  # the bounds our ZooKeeper launcher sets
    from coordinator_mode.group.config import CoordinatorConfig

    broker_min = CoordinatorConfig.min_session_timeout_ms
    if profile.coordinator_session_timeout_ms < broker_min:
        r.record(
            "overrides.coordinator_session_timeout_ms",
            f"expected at least the brokers' group.min.session.timeout.ms ({broker_min}), "
            f"got {profile.coordinator_session_timeout_ms}",
        )
    low, high = 2 * int(DEFAULT_CFG["tickTime"]), int(DEFAULT_CFG["maxSessionTimeout"])
    if not low <= profile.zk_session_timeout_ms <= high:
        r.record(
            "overrides.zk_session_timeout_ms",
            f"expected {low}..{high} (ZooKeeper's session bounds: 2 ticks to maxSessionTimeout), "
            f"got {profile.zk_session_timeout_ms}",
        )


def _wait(r: _Reader, raw: dict, path: str, profile: Profile) -> Wait:
    wait = raw.get("wait", "stable")
    timeout = raw.get("timeout")
    if wait in BOUNDED_WAITS:
        seconds = profile.stable_timeout_s
        if timeout is not None:
            seconds = r.check(timeout, f"{path}.timeout", positive_number)
        return Wait(WaitKind(wait), seconds)
    if timeout is not None:
        raise r.fail(
            f"{path}.timeout", "only allowed with wait: stable, offsets_committed or offsets_fetched"
        )
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise r.fail(
            f"{path}.wait",
            f"expected stable, offsets_committed, offsets_fetched or a number of seconds >= 0, got {fmt_value(wait)}",
        )
    return Wait(WaitKind.SECONDS, float(wait))


def _step_params(r: _Reader, raw: dict, path: str, action: Action) -> dict[str, Any] | None:
    """Every parameter of the action, defaults filled in; None once an error is recorded."""
    params: dict[str, Any] = {}
    before = len(r.errors)
    for key, spec in ACTIONS[action].params.items():
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
            f"{path}.action", f"expected one of {', '.join(Action)}, got {fmt_value(raw['action'])}"
        ) from None
    r.mapping(raw, path, (*_STEP_KEYS, *ACTIONS[action].params))
    params = _step_params(r, raw, path, action)
    if action == Action.STOP:
        if "hold" in raw:
            raise r.fail(f"{path}.hold", "not allowed on stop (the run ends there)")
        return None if params is None else Step(action, (), Wait(WaitKind.SECONDS, 0.0))
    wait = r.attempt(_wait, r, raw, path, profile)
    hold = r.value(raw, "hold", f"{path}.hold", duration, 0.0)
    if params is None or wait is None or hold is None:
        return None
    if action == Action.PAUSE_MEMBER and (params["seconds"] is None) == (params["sessions"] is None):
        raise r.fail(path, "pause_member needs exactly one of seconds or sessions")
    if action == Action.ROLLING_RESTART and params["between"] != "stable":
        params["between"] = r.check(params["between"], f"{path}.between", duration)
    return Step(action, tuple(params.items()), wait, hold)


def _check_step_context(r: _Reader, step: Step, path: str, s: dict[str, Any]) -> None:
    """Checks that need the rest of the scenario: indices in range, the action fits the modes."""
    params = step.as_dict()
    groups: Groups = s["groups"]
    cluster: Cluster = s["cluster"]
    if params.get("group") is not None and params["group"] >= groups.count:
        raise r.fail(f"{path}.group", f"expected a group index below groups.count={groups.count}")
    if step.action == Action.KILL_COORDINATOR:
        zk_modes = [str(m) for m in s["modes"] if m.mode not in BROKER_MODES]
        if zk_modes:
            raise r.fail(
                f"{path}.action",
                f"kill_coordinator needs coordinator mode only (our brokers or real Kafka: coordinator, kafka); modes include {zk_modes[0]}",
            )
    kraft = [str(m) for m in s["modes"] if m.mode == KAFKA_MODE and KAFKA_TARGETS[m.variant].kraft]
    if step.action == Action.KILL_COORDINATOR and kraft and cluster.brokers < 3:
        # Every KRaft broker is also a voter: a quorum of 1 or 2 has no majority left after one dies.
        raise r.fail(
            f"{path}.action",
            f"kill_coordinator on {kraft[0]} needs cluster.brokers >= 3: its brokers are the controller "
            f"quorum's voters, and {cluster.brokers} voter(s) lose their majority with one",
        )
    if step.action in (Action.STOP_ZK, Action.RESTART_ZK):
        if kraft:
            raise r.fail(
                f"{path}.action",
                f"{step.action} does not apply to {kraft[0]}: KRaft brokers keep their metadata without "
                "ZooKeeper, so stopping a ZooKeeper server touches nothing of that run",
            )
        server = params["server"]
        named = ("leader", "follower") if step.action == Action.STOP_ZK else ("stopped",)
        if server not in named:
            index = r.check(server, f"{path}.server", non_negative_int)
            if index >= cluster.zk_nodes:
                raise r.fail(f"{path}.server", f"expected an index below cluster.zk_nodes={cluster.zk_nodes}")
        if server == "follower" and cluster.zk_nodes < 3:
            raise r.fail(f"{path}.server", "a follower exists only with cluster.zk_nodes >= 3")
    if "target" in params:
        match = _LINK_RE.match(params["target"])
        if not match:
            raise r.fail(
                f"{path}.target",
                f"expected all, zk, brokers, zk-<i> or broker-<i>, got {fmt_value(params['target'])}",
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
        raise r.fail(
            "sweep_point.scenario", f"expected a scenario name, got {fmt_value(point.get('scenario'))}"
        )
    if not isinstance(point.get("values"), dict):
        raise r.fail("sweep_point.values", "expected a mapping of field path to value")
    return {"swept_from": point["scenario"], "swept": tuple(point["values"].items())}


def _check_brokers(r: _Reader, cluster: Cluster | None, modes: tuple[ModeSpec, ...] | None) -> None:
    if cluster is None or modes is None or cluster.brokers:
        return
    coordinator = [str(m) for m in modes if m.mode in BROKER_MODES]
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


def _offsets(r: _Reader, raw: Any, steps: tuple[Step, ...] | None) -> Offsets:
    if raw not in {o.value for o in Offsets}:
        raise r.fail("offsets", f"expected {' or '.join(o.value for o in Offsets)}, got {fmt_value(raw)}")
    offsets = Offsets(raw)
    if offsets is Offsets.NONE:
        for i, step in enumerate(steps or ()):
            if step.wait.kind in (WaitKind.OFFSETS_COMMITTED, WaitKind.OFFSETS_FETCHED):
                raise r.fail(f"timeline[{i}].wait", f"{step.wait.kind} never comes with offsets: none")
    return offsets


def _parse(raw: Any, source: str) -> Scenario:
    """The scenario ``raw`` describes, or one ScenarioError carrying every error found in it."""
    r = _Reader(source)
    raw = r.mapping(raw, "", _TOP_KEYS, required=("name", "groups", "modes", "timeline"))
    name = raw.get("name")
    if "name" in raw and (not isinstance(name, str) or not _NAME_RE.match(name)):
        r.record("name", f"expected a name of [A-Za-z0-9._-], got {fmt_value(name)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        r.record("description", f"expected a string, got {fmt_value(description)}")
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
    repetitions = r.value(raw, "repetitions", "repetitions", positive_int, 1)
    offsets = r.attempt(_offsets, r, raw.get("offsets", Offsets.COMMIT.value), steps)
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
        offsets=offsets,
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

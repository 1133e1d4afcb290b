"""Scenario files: validation errors name the file and the field; the library validates; sweeps expand."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bench.experiment.actions import Action
from bench.experiment.library import library, scenarios, validate
from bench.experiment.loading import expand, load_scenario
from bench.experiment.scenario import PROFILES, ScenarioError, WaitKind
from group_api import MemberConfig

BASE: dict[str, Any] = {
    "name": "probe",
    "description": "a scenario for the tests",
    "cluster": {"zk_nodes": 3, "brokers": 1},
    "groups": {"count": 2, "members": 4, "topics": {"orders": 8}},
    "modes": [{"mode": "zk", "variant": "chain"}, {"mode": "zk", "variant": "selfbalance"}],
    "profile": "fast",
    "repetitions": 2,
    "timeline": [
        {"action": "start_members"},
        {"action": "kill_member", "pick": "follower"},
        {"action": "pause_member", "sessions": 1.5, "group": 1},
        {"action": "stop_zk", "server": "leader", "wait": 5, "hold": 4},
        {"action": "stop"},
    ],
}


def write(tmp_path: Path, raw: Any, name: str = "probe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def changed(**top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw.update(top)
    return raw


def error_of(tmp_path: Path, raw: Any) -> ScenarioError:
    path = write(tmp_path, raw)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value), "the message names the file"
    return info.value


def test_a_valid_scenario_becomes_frozen_dataclasses(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, BASE))
    assert s.name == "probe"
    assert s.groups.names() == ["g0", "g1"]
    assert len(s.groups.partitions()) == 8
    assert [str(m) for m in s.modes] == ["zk/chain", "zk/selfbalance"]
    assert [step.action for step in s.timeline] == [
        Action.START_MEMBERS,
        Action.KILL_MEMBER,
        Action.PAUSE_MEMBER,
        Action.STOP_ZK,
        Action.STOP,
    ]
    assert s.timeline[0].wait.kind == WaitKind.STABLE
    assert s.timeline[0].wait.seconds == PROFILES["fast"].stable_timeout_s
    assert s.timeline[3].wait.kind == WaitKind.SECONDS and s.timeline[3].wait.seconds == 5
    assert s.timeline[1].param("count") == 1, "defaults are filled in"
    assert (s.timeline[0].hold, s.timeline[3].hold) == (0.0, 4.0)
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]


def test_pause_length_follows_the_mode_session(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, BASE))
    pause = s.timeline[2]
    assert s.pause_seconds(pause, "zk") == 1.5 * PROFILES["fast"].zk_session_timeout_ms / 1000
    assert (
        s.pause_seconds(pause, "coordinator") == 1.5 * PROFILES["fast"].coordinator_session_timeout_ms / 1000
    )


def test_overrides_replace_profile_values(tmp_path: Path) -> None:
    s = load_scenario(
        write(tmp_path, changed(overrides={"zk_session_timeout_ms": 9000, "time_boundary_s": 0}))
    )
    assert s.profile.zk_session_timeout_ms == 9000
    assert s.profile.time_boundary_s == 0
    assert s.profile.heartbeat_interval_ms == PROFILES["fast"].heartbeat_interval_ms
    assert s.profile.member_settings("zk", "setpartitioner")["options"] == {
        "time_boundary_s": 0,
        "auto_commit_interval_ms": PROFILES["fast"].auto_commit_interval_ms,
    }


def test_profiles_carry_the_real_defaults() -> None:
    kafka = PROFILES["kafka-defaults"]
    assert (kafka.coordinator_session_timeout_ms, kafka.heartbeat_interval_ms) == (45_000, 3_000)
    assert (kafka.group_initial_rebalance_delay_ms, kafka.rebalance_timeout_ms) == (3_000, 300_000)
    assert kafka.zk_session_timeout_ms == 6_000
    assert (kafka.rebalance_backoff_ms, kafka.rebalance_max_retries, kafka.time_boundary_s) == (
        2_000,
        4,
        30.0,
    )
    settings = kafka.member_settings("zk", "selfbalance")
    assert settings["session_timeout_ms"] == 6_000
    assert settings["options"] == {
        "rebalance_backoff_ms": 2_000,
        "rebalance_max_retries": 4,
        "auto_commit_interval_ms": 5_000,
    }
    assert kafka.member_settings("coordinator", "classic")["session_timeout_ms"] == 45_000


def test_fast_gives_both_modes_the_same_timing_that_both_can_honour() -> None:
    from coordinator_mode.group.config import CoordinatorConfig

    fast = PROFILES["fast"]
    assert (
        fast.timing("zk")
        == fast.timing("coordinator")
        == {
            "session_timeout_ms": 6_000,
            "heartbeat_interval_ms": 2_000,
            "auto_commit_interval_ms": 1_000,
        }
    )
    # The brokers accept it, and ZooKeeper negotiates it unchanged: [2 ticks, maxSessionTimeout].
    assert fast.coordinator_session_timeout_ms >= CoordinatorConfig.min_session_timeout_ms
    from bench.services.zookeeper import DEFAULT_CFG

    tick = int(DEFAULT_CFG["tickTime"])
    assert 2 * tick <= fast.zk_session_timeout_ms <= int(DEFAULT_CFG["maxSessionTimeout"])


def test_offsets_none_turns_commits_off_in_both_modes(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, changed(offsets="none")))
    assert s.offsets == "none"
    for mode, variant in (("zk", "chain"), ("coordinator", "classic")):
        options = s.profile.member_settings(mode, variant, s.offsets)["options"]
        assert options["enable_auto_commit"] == "false"
    assert "enable_auto_commit" not in s.profile.member_settings("zk", "chain")["options"]
    assert load_scenario(write(tmp_path, BASE)).offsets == "commit"
    with pytest.raises(ScenarioError, match="offsets: expected commit or none"):
        load_scenario(write(tmp_path, changed(offsets="some")))


def test_kafka_defaults_profile_is_what_the_code_declares() -> None:
    """The profile restates the defaults the code declares; they must agree."""
    from coordinator_mode.group.config import CoordinatorConfig
    from zk_mode.partitioner import PartitionerOptions
    from zk_mode.selfbalance import SelfBalanceOptions

    kafka = PROFILES["kafka-defaults"]
    assert kafka.group_initial_rebalance_delay_ms == CoordinatorConfig.initial_rebalance_delay_ms
    assert kafka.rebalance_backoff_ms == SelfBalanceOptions.rebalance_backoff_ms
    assert kafka.rebalance_max_retries == SelfBalanceOptions.rebalance_max_retries
    assert kafka.time_boundary_s == PartitionerOptions.time_boundary_s
    for mode in ("zk", "coordinator"):
        settings = kafka.member_settings(mode, "classic")
        assert (
            settings["session_timeout_ms"]
            == MemberConfig(group="g", topics=("t",), mode=mode).session_timeout
        )
        assert settings["heartbeat_interval_ms"] == MemberConfig.heartbeat_interval_ms
        assert settings["rebalance_timeout_ms"] == MemberConfig.rebalance_timeout_ms


def test_offsets_waits_are_bounded_like_stable(tmp_path: Path) -> None:
    raw = changed(
        timeline=[
            {"action": "start_members", "wait": "offsets_committed", "timeout": 40},
            {"action": "kill_member", "wait": "offsets_fetched"},
            {"action": "stop"},
        ]
    )
    s = load_scenario(write(tmp_path, raw))
    assert s.timeline[0].wait.kind == WaitKind.OFFSETS_COMMITTED and s.timeline[0].wait.seconds == 40
    assert s.timeline[1].wait.kind == WaitKind.OFFSETS_FETCHED
    assert s.timeline[1].wait.seconds == PROFILES["fast"].stable_timeout_s


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        (changed(groups={"members": "four", "topics": {"t": 1}}), "groups.members", "positive integer"),
        (changed(groups={"members": 2, "topics": {"t": 0}}), "groups.topics.t", "positive integer"),
        (changed(repetitions=1.5), "repetitions", "positive integer"),
        (changed(profile="slow"), "profile", "kafka-defaults, fast"),
        (changed(modes=[{"mode": "zk", "variant": "flock"}]), "modes[0].variant", "chain"),
        (changed(modes=[{"mode": "etcd"}]), "modes[0].mode", "coordinator"),
        (
            changed(timeline=[{"action": "start_members", "wait": "soon"}]),
            "timeline[0].wait",
            "stable, offsets_committed, offsets_fetched or a number",
        ),
        (
            changed(timeline=[{"action": "start_members", "count": -2}]),
            "timeline[0].count",
            "positive integer",
        ),
        (changed(timeline=[{"action": "start_members", "group": 5}]), "timeline[0].group", "groups.count=2"),
        (
            changed(overrides={"zk_session_timeout_ms": "6s"}),
            "overrides.zk_session_timeout_ms",
            "positive integer",
        ),
    ],
)
def test_bad_values_name_the_field_and_the_expectation(
    tmp_path: Path, raw: dict[str, Any], field: str, expected: str
) -> None:
    error = error_of(tmp_path, raw)
    assert error.field == field
    assert expected in str(error)


def test_unknown_action_lists_the_actions(tmp_path: Path) -> None:
    raw = changed(timeline=[{"action": "start_members"}, {"action": "explode"}])
    error = error_of(tmp_path, raw)
    assert error.field == "timeline[1].action"
    assert "kill_leader" in str(error) and "'explode'" in str(error)


def test_unknown_keys_are_errors_that_say_what_is_allowed(tmp_path: Path) -> None:
    error = error_of(tmp_path, changed(colour="red"))
    assert error.field == "colour"
    assert "allowed here: name, description" in str(error)

    error = error_of(
        tmp_path, changed(timeline=[{"action": "start_members"}, {"action": "kill_member", "pik": 1}])
    )
    assert error.field == "timeline[1].pik"
    assert "action, wait, timeout, hold, group, count, pick" in str(error)

    error = error_of(tmp_path, changed(overrides={"session_timeout": 5}))
    assert error.field == "overrides.session_timeout"
    assert "coordinator_session_timeout_ms" in str(error)


@pytest.mark.parametrize(
    ("step", "field", "expected"),
    [
        ({"action": "set_delay"}, "timeline[1].rtt_ms", "missing (required by set_delay)"),
        ({"action": "pause_member"}, "timeline[1]", "exactly one of seconds or sessions"),
        ({"action": "pause_member", "seconds": 3, "sessions": 1}, "timeline[1]", "exactly one"),
        ({"action": "kill_member", "pick": "eldest"}, "timeline[1].pick", "newest, oldest"),
        ({"action": "kill_coordinator"}, "timeline[1].action", "coordinator mode only"),
        ({"action": "stop_zk", "server": 3}, "timeline[1].server", "zk_nodes=3"),
        ({"action": "cut_link", "target": "broker-4"}, "timeline[1].target", "brokers=1"),
        ({"action": "cut_link", "target": "everything"}, "timeline[1].target", "zk-<i>"),
        (
            {"action": "heal_link", "wait": 1, "timeout": 3},
            "timeline[1].timeout",
            "only allowed with wait: stable",
        ),
        ({"action": "add_members", "hold": -1}, "timeline[1].hold", "seconds >= 0"),
        ({"action": "stop", "hold": 3}, "timeline[1].hold", "not allowed on stop"),
    ],
)
def test_action_parameters_are_checked_against_the_scenario(
    tmp_path: Path, step: dict[str, Any], field: str, expected: str
) -> None:
    error = error_of(tmp_path, changed(timeline=[{"action": "start_members"}, step]))
    assert error.field == field
    assert expected in str(error)


def test_timeline_order_is_checked(tmp_path: Path) -> None:
    error = error_of(tmp_path, changed(timeline=[{"action": "kill_member"}, {"action": "start_members"}]))
    assert error.field == "timeline[0].action"
    assert "before any start_members" in str(error)
    error = error_of(
        tmp_path,
        changed(timeline=[{"action": "start_members"}, {"action": "stop"}, {"action": "add_members"}]),
    )
    assert error.field == "timeline[1].action"


def test_a_timeline_must_end_with_stop(tmp_path: Path) -> None:
    error = error_of(tmp_path, changed(timeline=[{"action": "start_members"}, {"action": "add_members"}]))
    assert [(e.field, e.message) for e in error.errors] == [
        ("timeline", "expected a stop step at the end (the members leave and the run ends there)")
    ]


def test_brokers_may_be_0_only_without_a_coordinator_mode(tmp_path: Path) -> None:
    zk_only = load_scenario(write(tmp_path, changed(cluster={"zk_nodes": 1, "brokers": 0})))
    assert zk_only.cluster.brokers == 0
    modes = [{"mode": "zk", "variant": "chain"}, {"mode": "coordinator", "variant": "classic"}]
    error = error_of(tmp_path, changed(cluster={"zk_nodes": 1, "brokers": 0}, modes=modes))
    assert error.field == "cluster.brokers"
    assert "at least 1 broker" in error.message and "coordinator/classic" in error.message
    error = error_of(tmp_path, changed(cluster={"zk_nodes": 1, "brokers": -1}))
    assert error.field == "cluster.brokers" and "integer >= 0" in error.message


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ngroups: {members: 2\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_sweep_expands_into_the_cartesian_set(tmp_path: Path) -> None:
    raw = changed(
        sweep={"groups.members": [2, 8], "timeline[0].rtt_ms": [0, 5, 20]},
        timeline=[
            {"action": "set_delay", "rtt_ms": 0, "wait": 0},
            {"action": "start_members"},
            {"action": "stop"},
        ],
    )
    base = load_scenario(write(tmp_path, raw))
    runs = expand(base)
    assert len(runs) == 6
    assert [(r.groups.members, r.timeline[0].param("rtt_ms")) for r in runs] == [
        (2, 0),
        (2, 5),
        (2, 20),
        (8, 0),
        (8, 5),
        (8, 20),
    ]
    assert runs[4].name == "probe-members-8-rtt_ms-5"
    assert runs[4].swept == (("groups.members", 8), ("timeline[0].rtt_ms", 5))
    assert runs[4].family == "probe" and base.family == "probe"
    # What a run directory records loads again as the same scenario.
    again = load_scenario(write(tmp_path, yaml.safe_load(runs[4].to_yaml()), "again.yaml"))
    assert (
        again.name == runs[4].name and again.groups == runs[4].groups and again.timeline == runs[4].timeline
    )
    assert expand(again) == [again]


def test_sweep_errors_name_the_sweep(tmp_path: Path) -> None:
    error = error_of(tmp_path, changed(sweep={"groups.members": [2, 0]}))
    assert error.field == "groups.members"
    assert "groups.members=0" in str(error)
    error = error_of(tmp_path, changed(sweep={"timeline[9].rtt_ms": [1]}))
    assert error.field == "sweep.timeline[9].rtt_ms"
    error = error_of(tmp_path, changed(sweep={"groups.members": 4}))
    assert "non-empty list" in str(error)


def test_the_whole_library_validates() -> None:
    names = library()
    expected = {
        "cold-start",
        "scale-out-by-one",
        "scale-in-by-one",
        "member-crash",
        "leader-crash",
        "member-pause-past-session",
        "rolling-restart",
        "coordinator-broker-crash",
        "zk-node-loss-3-node-ensemble",
        "many-groups",
        "group-size-sweep",
        "rtt-sweep",
    }
    assert expected <= set(names)
    for name, path in names.items():
        scenario = load_scenario(path)
        assert scenario.name == name, f"{path}: the name should match the file"
        assert scenario.description
    sizes = [s.groups.members for s in expand(load_scenario(names["group-size-sweep"]))]
    assert min(sizes) == 2 and max(sizes) == 256
    rtts = [s.timeline[0].param("rtt_ms") for s in expand(load_scenario(names["rtt-sweep"]))]
    assert min(rtts) == 0 and max(rtts) == 20


def test_validate_command_reports_each_file_and_fails_on_any_error(tmp_path: Path) -> None:
    good = write(tmp_path, BASE, "good.yaml")
    bad = write(tmp_path, changed(repetitions=0), "bad.yaml")
    result = CliRunner().invoke(validate, [str(good), str(bad)])
    assert result.exit_code == 1
    assert f"OK    {good}" in result.output
    assert f"ERROR {bad}: repetitions: expected a positive integer" in result.output
    assert CliRunner().invoke(validate, [str(good)]).exit_code == 0


def test_every_error_of_a_file_is_reported_with_its_field(tmp_path: Path) -> None:
    raw = changed(
        colour="red",
        groups={"members": 0, "count": "two", "topics": {"orders": 8}},
        repetitions=1.5,
        timeline=[
            {"action": "start_members", "count": -1},
            {"action": "kill_member", "pick": "eldest", "wait": "soon"},
            {"action": "explode"},
            {"action": "stop"},
        ],
    )
    error = error_of(tmp_path, raw)
    found = {(e.field, e.message.split(",")[0]) for e in error.errors}
    assert {field for field, _ in found} == {
        "colour",
        "groups.members",
        "groups.count",
        "repetitions",
        "timeline[0].count",
        "timeline[1].pick",
        "timeline[1].wait",
        "timeline[2].action",
    }, found
    assert all("expected" in e.message or "unknown key" in e.message for e in error.errors)
    path = write(tmp_path, raw)
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 1
    assert result.output.count("ERROR ") == len(error.errors)
    assert f"ERROR {path}: groups.count: expected a positive integer, got 'two'" in result.output


def test_missing_required_keys_are_all_named(tmp_path: Path) -> None:
    raw = {k: v for k, v in BASE.items() if k not in ("groups", "modes")}
    error = error_of(tmp_path, raw)
    assert [(e.field, e.message) for e in error.errors] == [
        ("groups", "missing (required)"),
        ("modes", "missing (required)"),
    ]


def test_a_misspelt_library_name_lists_the_library_closest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no file of that name either
    result = CliRunner().invoke(validate, ["leader-crsh"])
    assert result.exit_code == 1
    assert "leader-crsh: neither a file nor a library scenario" in result.output
    listed = result.output.split("closest first: ")[1].strip().split(", ")
    assert listed[0] == "leader-crash"
    assert sorted(listed) == sorted(library())


def test_scenarios_command_lists_the_library() -> None:
    result = CliRunner().invoke(scenarios, [])
    assert result.exit_code == 0
    for name in library():
        assert name in result.output
    assert "modes: " in result.output


def test_sessions_the_servers_would_not_grant_are_refused(tmp_path: Path) -> None:
    low = error_of(tmp_path, changed(overrides={"coordinator_session_timeout_ms": 3000}))
    assert "group.min.session.timeout.ms (6000)" in str(low)
    for value in (500, 90_000):
        error = error_of(tmp_path, changed(overrides={"zk_session_timeout_ms": value}))
        assert "overrides.zk_session_timeout_ms: expected 1000..60000" in str(error)


def test_variant_all_leaves_out_the_java_variants_which_a_scenario_names(tmp_path: Path) -> None:
    """``all`` means the Python members (runnable wherever the project is); curator and the Java
    consumer need Java, so a scenario lists them explicitly."""
    everything = [{"mode": "zk", "variant": "all"}, {"mode": "coordinator", "variant": "all"}]
    s = load_scenario(write(tmp_path, changed(modes=everything)))
    assert [str(m) for m in s.modes] == [
        "zk/chain",
        "zk/herd",
        "zk/selfbalance",
        "zk/setpartitioner",
        "coordinator/classic",
        "coordinator/cooperative",
    ]
    named = [{"mode": "zk", "variant": "curator"}, {"mode": "coordinator", "variant": "java"}]
    s = load_scenario(write(tmp_path, changed(modes=named)))
    assert [str(m) for m in s.modes] == ["zk/curator", "coordinator/java"]


def test_run_leaves_out_the_java_variants_where_java_member_is_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.experiment.runner import without_unbuilt_java_members

    monkeypatch.setenv("REBALANCE_LAB_JAVA_CACHE", str(tmp_path / "empty"))
    named = [{"mode": "zk", "variant": "curator"}, {"mode": "coordinator", "variant": "java"}]
    s = load_scenario(write(tmp_path, changed(modes=[*named, {"mode": "zk", "variant": "chain"}])))
    said: list[str] = []
    targets = [("zk", "curator"), ("coordinator", "java"), ("zk", "chain")]
    assert without_unbuilt_java_members([(s, targets)], said.append) == [(s, [("zk", "chain")])]
    assert [line.split(":")[0] for line in said] == [
        "skipping probe [zk/curator]",
        "skipping probe [coordinator/java]",
    ]
    assert without_unbuilt_java_members([(s, targets[:2])], said.append) == []

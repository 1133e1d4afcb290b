"""``rebalance-lab member``'s options come from MemberConfig's fields: names, variables, defaults, help."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from bench.services.member_host import _parse_options, member
from group_api import ASSIGNOR_NAMES, ConfigError, MemberConfig
from group_api.registry import MODES, create_member, runs_in

#: The options' names and variables as scripts, compose and the runner use them (they must not move).
OPTIONS = {
    "group": ("--group", "REBALANCE_LAB_GROUP"),
    "topics": ("--topic", "REBALANCE_LAB_TOPICS"),
    "mode": ("--mode", "REBALANCE_LAB_MODE"),
    "variant": ("--variant", "REBALANCE_LAB_VARIANT"),
    "assignor": ("--assignor", "REBALANCE_LAB_ASSIGNOR"),
    "member_name": ("--name", "REBALANCE_LAB_NAME"),
    "session_timeout_ms": ("--session-timeout-ms", "REBALANCE_LAB_SESSION_TIMEOUT_MS"),
    "heartbeat_interval_ms": ("--heartbeat-interval-ms", "REBALANCE_LAB_HEARTBEAT_INTERVAL_MS"),
    "rebalance_timeout_ms": ("--rebalance-timeout-ms", "REBALANCE_LAB_REBALANCE_TIMEOUT_MS"),
    "zk_hosts": ("--zk", "REBALANCE_LAB_ZK"),
    "zk_root": ("--zk-root", "REBALANCE_LAB_ZK_ROOT"),
    "bootstrap": ("--bootstrap", "REBALANCE_LAB_BOOTSTRAP"),
    "group_instance_id": ("--group-instance-id", "REBALANCE_LAB_GROUP_INSTANCE_ID"),
    "options": ("--option", "REBALANCE_LAB_OPTIONS"),
}


def option(name: str) -> click.Option:
    (param,) = [p for p in member.params if p.name == name]
    assert isinstance(param, click.Option)
    return param


@pytest.mark.parametrize("field", dataclasses.fields(MemberConfig), ids=lambda f: f.name)
def test_every_config_field_has_an_option_with_its_default_and_help(field: dataclasses.Field) -> None:
    param = option(field.name)
    assert (param.opts, param.envvar) == ([OPTIONS[field.name][0]], OPTIONS[field.name][1])
    assert param.help == field.metadata["help"] and param.help
    if field.default is not dataclasses.MISSING:
        assert param.default == field.default and not param.required
    elif field.default_factory is not dataclasses.MISSING:
        assert param.multiple and not param.required  # options: none unless given
    else:
        assert param.required


def test_the_options_are_exactly_the_config_fields_count_and_client() -> None:
    own = {"count", "client"}
    assert {p.name for p in member.params} == {f.name for f in dataclasses.fields(MemberConfig)} | own
    assert (option("count").envvar, option("count").default) == ("REBALANCE_LAB_COUNT", 1)
    assert (option("client").envvar, option("client").default) == ("REBALANCE_LAB_CLIENT", "python")
    assert tuple(option("client").type.choices) == ("python", "java")


def test_types_choices_and_bounds() -> None:
    assert list(option("mode").type.choices) == sorted(MODES)
    assert tuple(option("assignor").type.choices) == ASSIGNOR_NAMES
    for name in ("session_timeout_ms", "heartbeat_interval_ms", "rebalance_timeout_ms", "count"):
        assert isinstance(option(name).type, click.IntRange) and option(name).type.min == 1
    assert option("topics").multiple and option("options").multiple


def params(args: list[str]) -> dict[str, object]:
    with member.make_context("member", args) as ctx:
        return ctx.params


def test_flags_parse_into_config_fields() -> None:
    p = params(["--group", "g", "--topic", "a,b", "--topic", "c", "--zk", "h:1", "--name", "n"])
    p.pop("count")
    p.pop("client")
    config = MemberConfig(**{**p, "options": _parse_options(p["options"])})  # type: ignore[arg-type]
    assert config == MemberConfig(group="g", topics=("a", "b", "c"), zk_hosts="h:1", member_name="n")
    assert _parse_options(("time_boundary_s=2", "x=1.5", "k=v")) == {"time_boundary_s": 2, "x": 1.5, "k": "v"}


@pytest.mark.parametrize(
    "args", [["--mode", "kraft"], ["--assignor", "fair"], ["--count", "0"], ["--heartbeat-interval-ms", "0"]]
)
def test_bad_values_are_refused(args: list[str]) -> None:
    result = CliRunner().invoke(member, ["--group", "g", "--topic", "t", *args])
    assert result.exit_code == 2 and args[0] in result.output


def test_help_names_every_option_its_variable_and_default() -> None:
    result = CliRunner().invoke(member, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag, env in OPTIONS.values():
        assert flag in result.output and env in result.output
    assert "default: /zkmode" in result.output and "default: 300000" in result.output
    assert "Variant knob KEY=VALUE" in result.output


@pytest.mark.parametrize(
    ("mode", "variant", "program"),
    [
        ("zk", "curator", "java"),
        ("coordinator", "java", "java"),
        ("zk", "chain", None),
        ("coordinator", None, None),
    ],
)
def test_java_variants_run_in_the_jvm_and_nowhere_else(
    mode: str, variant: str | None, program: str | None
) -> None:
    config = MemberConfig(group="g", topics=("t",), mode=mode, variant=variant)
    assert runs_in(config) == program
    if program is not None:
        with pytest.raises(ConfigError, match=f"{variant} runs on java"):
            create_member(config, lambda event: None)


@pytest.mark.parametrize(
    ("mode", "variant", "says"),
    [
        ("coordinator", "classic", "--client java is the coordinator variant java"),
        ("zk", "chain", "the Java members are coordinator mode and zk's curator, got zk/chain"),
    ],
)
def test_client_java_refuses_what_java_does_not_run(mode: str, variant: str, says: str) -> None:
    args = ["--group", "g", "--topic", "t", "--mode", mode, "--variant", variant, "--client", "java"]
    result = CliRunner().invoke(member, args)
    assert result.exit_code == 1 and says in result.output

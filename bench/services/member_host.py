"""``rebalance-lab member``: run group members in the foreground, events as JSON lines on stdout.

One process may host many members (``--count``), each with its own session, so hundreds of members
fit on one machine; a fault aimed at a member hits its whole process. SIGTERM (and Ctrl-C) make
every member leave gracefully and the process exit 0.

``--client java`` (and the zk variant ``curator``, which only Java runs) replaces this process with
the JVM of ``java/member`` (:func:`exec_java`), which hosts the members the same way and prints the
same events, so whoever started the process (the runner, a test) cannot tell the difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from bench.services.java import java_binary, java_module
from group_api import (
    ASSIGNOR_NAMES,
    LEAVE_BOUND_S,
    ConfigError,
    JsonLinesSink,
    MemberConfig,
    MemberState,
)
from group_api.registry import MODES, create_member, runs_in

#: Every option can come from ``REBALANCE_LAB_<NAME>`` instead (compose's scaled member service).
ENV_PREFIX = "REBALANCE_LAB_"


#: ``--client`` values: our members, or Kafka's Java consumer (java/member).
CLIENTS = ("python", "java")


def _env(name: str) -> str:
    return ENV_PREFIX + name


def _split_topics(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--topic a --topic b``, ``--topic a,b`` and ``REBALANCE_LAB_TOPICS="a b"`` or ``"a,b"`` alike."""
    topics = tuple(t for value in values for t in value.replace(",", " ").split())
    if not topics:
        raise click.BadParameter("expected at least one topic", ctx, param)
    return topics


#: Where an option is not simply ``--field-name`` / ``REBALANCE_LAB_FIELD_NAME`` of its
#: :class:`MemberConfig` field, or needs more than the field's type says.
OPTION_OVERRIDES: dict[str, dict[str, Any]] = {
    "topics": {"flag": "topic", "callback": _split_topics},  # variable: REBALANCE_LAB_TOPICS
    "options": {"flag": "option"},  # KEY=VALUE pairs, parsed by the command; REBALANCE_LAB_OPTIONS
    "member_name": {"flag": "name", "env": "NAME"},
    "zk_hosts": {"flag": "zk", "env": "ZK"},
    "mode": {"type": click.Choice(sorted(MODES))},
    "assignor": {"type": click.Choice(ASSIGNOR_NAMES)},
}


def config_option(f: dataclasses.Field[Any], hints: dict[str, Any]) -> click.Option:
    """The ``member`` option for one :class:`MemberConfig` field: its name (``--kebab-case``), type,
    default and help (``metadata["help"]``) from the dataclass, and the variable ``REBALANCE_LAB_<NAME>``."""
    spec = OPTION_OVERRIDES.get(f.name, {})
    flag = spec.get("flag", f.name.replace("_", "-"))
    kind = hints[f.name]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (types.UnionType, typing.Union) and len(args) == 1:
        kind = args[0]  # X | None: an X, whose default is None
    multiple = typing.get_origin(kind) in (tuple, dict) or kind in (tuple, dict)
    kwargs: dict[str, Any] = {"envvar": _env(spec.get("env", f.name.upper())), "show_envvar": True}
    kwargs["help"] = f.metadata["help"]
    if "type" in spec:
        kwargs["type"] = spec["type"]
    elif kind is int:
        minimum = f.metadata.get("min")
        kwargs["type"] = click.IntRange(min=minimum) if minimum is not None else click.INT
    if multiple:
        kwargs["multiple"] = True
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        kwargs["required"] = True
    elif f.default is not dataclasses.MISSING:
        kwargs["default"] = f.default
    if "callback" in spec:
        kwargs["callback"] = spec["callback"]
    return click.Option([f"--{flag}", f.name], **kwargs)


def config_options(command: Callable[..., None]) -> Callable[..., None]:
    """Adds one option per :class:`MemberConfig` field, in the dataclass's order, before the command's own."""
    hints = typing.get_type_hints(MemberConfig)
    params = getattr(command, "__click_params__", [])  # click reverses this list when it builds the command
    params.extend(config_option(f, hints) for f in reversed(dataclasses.fields(MemberConfig)))
    command.__click_params__ = params  # type: ignore[attr-defined]
    return command


@click.command(context_settings={"show_default": True})
@config_options
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=1,
    envvar=_env("COUNT"),
    show_envvar=True,
    help="Members in this process.",
)
@click.option(
    "--client",
    type=click.Choice(CLIENTS),
    default="python",
    envvar=_env("CLIENT"),
    show_envvar=True,
    help="Who the members are: ours (python) or, in coordinator mode, Kafka's Java consumer (java: "
    "kafka-clients in java/member, the variant java). The variants coordinator java and zk curator "
    "are always java.",
)
def member(options: tuple[str, ...], count: int, client: str, **kwargs: object) -> None:
    """Run members of a consumer group until SIGTERM."""
    try:
        config = MemberConfig(**kwargs, options=_parse_options(options))  # type: ignore[arg-type]
        if client == "java" and config.mode == "coordinator":
            if config.variant not in (None, "java"):
                raise ConfigError(
                    f"variant: --client java is the coordinator variant java, got {config.variant!r}"
                )
            config = config.with_(variant="java")
        external = runs_in(config)
        if client == "java" and external != "java":
            raise ConfigError(
                f"--client java: the Java members are coordinator mode and zk's curator, got "
                f"{config.mode}/{config.variant or 'default'}"
            )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if external == "java":
        exec_java(config, count)
    sink = JsonLinesSink(sys.stdout)
    members = []
    # Before the first member starts: a SIGTERM that arrives while the others are still starting
    # must make the started ones leave, not kill the process with its members still in the group.
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        for i in range(count):
            name = config.member_name if count == 1 else f"{config.member_name or 'm'}.{i}"
            members.append(create_member(config.with_(member_name=name), sink))
        for group_member in members:
            group_member.start()
    except (ConfigError, ConnectionError) as exc:
        for group_member in members:
            group_member.close()
        raise click.ClickException(str(exc)) from None

    while not done.wait(0.5):
        if all(m.state == MemberState.FAILED for m in members):
            for group_member in members:
                group_member.close()
            raise click.ClickException("every member gave up (see the log above)")
    # Leave in parallel: a large host must not take count x leave-time to exit.
    leaving = [threading.Thread(target=m.leave) for m in members]
    for thread in leaving:
        thread.start()
    for thread in leaving:
        thread.join()
    for group_member in members:
        group_member.close()


#: The JVM's flags: members are small and many share two cores, so a small heap, the serial
#: collector and the quick C1 compiler (a faster start than C2's for a program this short-lived).
JVM_FLAGS = ("-Xss512k", "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")


def java_command(config: MemberConfig, count: int) -> list[str]:
    """The JVM command that hosts ``count`` Java members of ``config`` (``rebalancelab.member.Main``)."""
    module = java_module("member")
    if not module.available:
        raise click.ClickException(f"the Java members cannot run here: {module.reason}")
    java = java_binary()
    resolved = dataclasses.asdict(config) | {"session_timeout_ms": config.session_timeout}
    request_timeout_ms = int(config.options.get("request_timeout_ms", 30_000))
    leave_bound_ms = int(LEAVE_BOUND_S * 1000) + (request_timeout_ms if config.mode == "coordinator" else 0)
    spec = {"config": resolved, "count": count, "leave_bound_ms": leave_bound_ms}
    return [java, *JVM_FLAGS, "-cp", module.classpath, "rebalancelab.member.Main", json.dumps(spec)]


def exec_java(config: MemberConfig, count: int) -> None:
    """Become the JVM: same pid, stdout and stderr, so signals and events reach it unchanged."""
    command = java_command(config, count)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            out[key] = value
    return out

"""``rebalance-lab member``: run group members in the foreground, events as JSON lines on stdout.

One process may host many members (``--count``), each with its own session, so hundreds of members
fit on one machine; a fault aimed at a member hits its whole process. SIGTERM (and Ctrl-C) make
every member leave gracefully and the process exit 0.
"""

from __future__ import annotations

import signal
import sys
import threading

import click

from group_api import ASSIGNOR_NAMES, ConfigError, JsonLinesSink, MemberConfig, MemberState
from group_api.registry import MODES, create_member

#: Every option can come from ``REBALANCE_LAB_<NAME>`` instead (compose's scaled member service).
ENV_PREFIX = "REBALANCE_LAB_"


def _env(name: str) -> str:
    return ENV_PREFIX + name


def _split_topics(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--topic a --topic b``, ``--topic a,b`` and ``REBALANCE_LAB_TOPICS="a b"`` or ``"a,b"`` alike."""
    topics = tuple(t for value in values for t in value.replace(",", " ").split())
    if not topics:
        raise click.BadParameter("expected at least one topic", ctx, param)
    return topics


@click.command(context_settings={"show_default": True})
@click.option(
    "--mode",
    type=click.Choice(sorted(MODES)),
    default=MemberConfig.mode,
    envvar=_env("MODE"),
    show_envvar=True,
)
@click.option(
    "--variant",
    default=None,
    envvar=_env("VARIANT"),
    show_envvar=True,
    help="zk: chain (default), herd, selfbalance, setpartitioner.",
)
@click.option("--group", required=True, envvar=_env("GROUP"), show_envvar=True, help="Consumer group id.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    required=True,
    callback=_split_topics,
    envvar=_env("TOPICS"),
    show_envvar=True,
    help="Subscribed topic (repeatable, or comma-separated).",
)
@click.option(
    "--zk",
    "zk_hosts",
    default=None,
    envvar=_env("ZK"),
    show_envvar=True,
    help="zk mode: ZooKeeper connect string.",
)
@click.option(
    "--zk-root",
    default=MemberConfig.zk_root,
    envvar=_env("ZK_ROOT"),
    show_envvar=True,
    help="zk mode: root znode.",
)
@click.option(
    "--bootstrap",
    default=None,
    envvar=_env("BOOTSTRAP"),
    show_envvar=True,
    help="coordinator mode: brokers host:port,...",
)
@click.option(
    "--assignor",
    type=click.Choice(ASSIGNOR_NAMES),
    default=MemberConfig.assignor,
    envvar=_env("ASSIGNOR"),
    show_envvar=True,
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(min=1),
    default=None,
    envvar=_env("SESSION_TIMEOUT_MS"),
    show_envvar=True,
    help="Default: the mode's.",
)
@click.option(
    "--heartbeat-interval-ms",
    type=click.IntRange(min=1),
    default=MemberConfig.heartbeat_interval_ms,
    envvar=_env("HEARTBEAT_INTERVAL_MS"),
    show_envvar=True,
)
@click.option(
    "--rebalance-timeout-ms",
    type=click.IntRange(min=1),
    default=MemberConfig.rebalance_timeout_ms,
    envvar=_env("REBALANCE_TIMEOUT_MS"),
    show_envvar=True,
)
@click.option(
    "--name",
    "member_name",
    default=None,
    envvar=_env("NAME"),
    show_envvar=True,
    help="Prefix of the member id.",
)
@click.option(
    "--group-instance-id",
    default=None,
    envvar=_env("GROUP_INSTANCE_ID"),
    show_envvar=True,
    help="coordinator mode: static membership id.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    envvar=_env("OPTIONS"),
    show_envvar=True,
    help="Variant knob KEY=VALUE, e.g. time_boundary_s=2 (the variable: space-separated).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=1,
    envvar=_env("COUNT"),
    show_envvar=True,
    help="Members in this process.",
)
def member(options: tuple[str, ...], count: int, **kwargs: object) -> None:
    """Run members of a consumer group until SIGTERM."""
    sink = JsonLinesSink(sys.stdout)
    members = []
    # Before the first member starts: a SIGTERM that arrives while the others are still starting
    # must make the started ones leave, not kill the process with its members still in the group.
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        config = MemberConfig(**kwargs, options=_parse_options(options))  # type: ignore[arg-type]
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

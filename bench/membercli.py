"""``rebalance-lab member``: run one group member in the foreground, events as JSON lines on stdout.

SIGTERM (and Ctrl-C) make the member leave gracefully and exit 0. On exit the member's own counts
of ZooKeeper calls (zk mode) or broker requests (coordinator mode) are logged on stderr.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from bench.api import ASSIGNOR_NAMES, ConfigError, JsonLinesSink, MemberConfig
from bench.api.registry import MODES, create_member

log = logging.getLogger(__name__)


@click.command()
@click.option("--mode", type=click.Choice(sorted(MODES)), default="zk", show_default=True)
@click.option("--variant", default=None, help="zk: chain (default), herd, selfbalance, setpartitioner.")
@click.option("--group", required=True, help="Consumer group id.")
@click.option("--topic", "topics", multiple=True, required=True, help="Subscribed topic (repeatable).")
@click.option("--zk", "zk_hosts", default=None, help="zk mode: ZooKeeper connect string.")
@click.option("--zk-root", default=MemberConfig.zk_root, show_default=True, help="zk mode: root znode.")
@click.option("--bootstrap", default=None, help="coordinator mode: brokers host:port,...")
@click.option("--assignor", type=click.Choice(ASSIGNOR_NAMES), default="range", show_default=True)
@click.option("--session-timeout-ms", type=click.IntRange(min=1), default=None, help="Default: the mode's.")
@click.option("--heartbeat-interval-ms", type=click.IntRange(min=1), default=MemberConfig.heartbeat_interval_ms)
@click.option("--name", "member_name", default=None, help="Prefix of the member id.")
@click.option("--group-instance-id", default=None, help="coordinator mode: static membership id.")
@click.option("--option", "options", multiple=True, help="Variant knob KEY=VALUE, e.g. time_boundary_s=2.")
def member(options: tuple[str, ...], **kwargs: object) -> None:
    """Run one member of a consumer group until SIGTERM."""
    try:
        config = MemberConfig(**kwargs, options=_parse_options(options))  # type: ignore[arg-type]
        group_member = create_member(config, JsonLinesSink(sys.stdout))
        group_member.start()
    except (ConfigError, ConnectionError) as exc:
        raise click.ClickException(str(exc)) from None

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    try:
        group_member.leave()
    finally:
        counts = getattr(group_member, "zk_counts", None) or getattr(group_member, "stats", None)
        if counts is not None:
            log.info("member %s cost: %s", group_member.member_id, counts())
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

"""``rebalance-lab broker``: run one coordinator-mode broker in the foreground."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from .config import BrokerConfig
from .controller import DEFAULT_ZK_ROOT
from .server import run_broker

_D = BrokerConfig.__dataclass_fields__  # defaults come from the dataclass, declared once
# Every option's name is a BrokerConfig field: the command's parameters are the configuration.


@click.command("broker")
@click.option("--id", "broker_id", type=int, required=True, help="Broker id (broker.id).")
@click.option("--zk", "zk_connect", required=True, help="ZooKeeper connect string host:port,...")
@click.option("--port", type=int, required=True, help="Port to listen on.")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="This broker's own log directory (its replicas of the offsets partitions).",
)
@click.option(
    "--offsets-replication-factor",
    type=click.IntRange(min=1),
    default=_D["offsets_replication_factor"].default,
    show_default=True,
    help="offsets.topic.replication.factor",
)
@click.option(
    "--replica-lag-time-max-ms",
    type=click.IntRange(min=1),
    default=_D["replica_lag_time_max_ms"].default,
    show_default=True,
    help="replica.lag.time.max.ms",
)
@click.option(
    "--offsets-commit-timeout-ms",
    type=click.IntRange(min=1),
    default=_D["offsets_commit_timeout_ms"].default,
    show_default=True,
    help="offsets.commit.timeout.ms",
)
@click.option(
    "--log-flush-interval-messages",
    type=click.IntRange(min=1),
    default=None,
    help="log.flush.interval.messages [default: never fsync per append, as Kafka]",
)
@click.option(
    "--leader-imbalance-check-interval-s",
    type=click.FloatRange(min=0.1),
    default=_D["leader_imbalance_check_interval_s"].default,
    show_default=True,
    help="leader.imbalance.check.interval.seconds",
)
@click.option(
    "--offsets-partitions",
    type=click.IntRange(min=1),
    default=_D["offsets_partitions"].default,
    show_default=True,
)
@click.option(
    "--initial-rebalance-delay-ms",
    type=int,
    default=_D["initial_rebalance_delay_ms"].default,
    show_default=True,
    help="group.initial.rebalance.delay.ms",
)
@click.option("--zk-root", default=DEFAULT_ZK_ROOT, show_default=True, help="Root znode of the cluster.")
@click.option("--host", default=_D["host"].default, show_default=True, help="Address to listen on.")
@click.option(
    "--advertised-host",
    default=None,
    help="Host registered in ZooKeeper and given to clients (e.g. a compose service name) [default: --host].",
)
@click.option(
    "--advertised-port",
    type=int,
    default=None,
    help="Port registered in ZooKeeper and given to clients (e.g. a proxy's) [default: --port].",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where broker_stats.json goes [default: LOG_DIR/broker-ID].",
)
@click.option(
    "--zk-session-timeout-ms", type=int, default=_D["zk_session_timeout_ms"].default, show_default=True
)
@click.option(
    "--min-session-timeout-ms",
    type=int,
    default=_D["min_session_timeout_ms"].default,
    show_default=True,
    help="group.min.session.timeout.ms",
)
@click.option(
    "--consumer-session-timeout-ms",
    type=click.IntRange(min=1),
    default=_D["consumer_session_timeout_ms"].default,
    show_default=True,
    help="group.consumer.session.timeout.ms (KIP-848 groups)",
)
@click.option(
    "--consumer-heartbeat-interval-ms",
    type=click.IntRange(min=1),
    default=_D["consumer_heartbeat_interval_ms"].default,
    show_default=True,
    help="group.consumer.heartbeat.interval.ms (KIP-848 groups)",
)
def broker(**params: Any) -> None:
    """Run a Kafka-wire broker whose metadata lives in ZooKeeper (coordinator mode)."""
    run_broker(BrokerConfig(**params))


def config_from_args(args: Sequence[str]) -> BrokerConfig:
    """The configuration ``rebalance-lab broker ARGS`` runs with (e.g. read off a container's command)."""
    with broker.make_context("broker", list(args)) as ctx:
        return BrokerConfig(**ctx.params)

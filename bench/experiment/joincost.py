"""What one join costs each design's coordination service: ``rebalance-lab join-cost``.

For each variant and group size N, it forms a group of N-1 in-process members (each with its own
kazoo session), waits until the group is stable and ZooKeeper is quiet, reads every server's
``mntr`` and every member's own call counts, adds the N-th member, waits until all N hold one
complete, disjoint generation and ZooKeeper is quiet again, and reads both once more. The
difference is the join's cost, from the server's counters and the clients' counts side by side.

"Quiet" means the namespace's read and write counters did not move between two readings
``quiet_s`` apart; pings do not move them (see :mod:`bench.services.mntr`), so idle sessions do not count.
Server reads exclude ``exists`` on a missing znode and server writes count each op of a ``multi``,
which is why they can differ from the client counts in both directions.

Beside each measurement it prints the cost model's prediction (:mod:`bench.model`) and the residual
(measured minus the nearest value the model allows).

Coordinator mode (variant ``classic``) is measured the same way on a broker cluster of its own
(three brokers, so ``__consumer_offsets`` is replicated three ways), with our consumer's members:
"quiet" then also means that the brokers' coordination counters held still between two of their
stats files, heartbeats aside, which are the coordinator's pings (and are left out of the cost as
ZooKeeper's pings are). Every measurement is also put on the ledger of ``coordination_load.csv``
(:mod:`bench.analysis.metrics.ledger`): requests, bytes, durable writes, fsyncs and replication,
per service.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from bench.analysis.metrics.ledger import GROUP_APIS, LEDGER_VALUES, broker_entries, zookeeper_entry
from bench.analysis.metrics.samples import BrokerSample
from bench.analysis.ownership import GroupOwnership
from bench.model import Count, Prediction, Workload, predict
from bench.services.brokers import BrokerCluster
from bench.services.catalog import provision_topics
from bench.services.mntr import ZkLoad, wait_quiet, zk_load
from group_api import ConfigError, ListSink, MemberConfig
from group_api.registry import create_member, default_variants

log = logging.getLogger(__name__)

TOPIC = "joincost"
#: Knobs that keep the slow defaults of two variants from dominating a cost measurement, and no
#: offset commits: periodic commits would keep ZooKeeper from ever being quiet, and the join's own
#: cost is the election's (with commits, each moved partition adds a write and a read).
FAST_OPTIONS: dict[str, Any] = {
    "time_boundary_s": 0.5,
    "rebalance_backoff_ms": 200,
    "enable_auto_commit": "false",
}


COORDINATOR_VARIANT = "classic"
#: The coordinator-mode members' heartbeat and commit knobs: heartbeats every 3 s (the Java default)
#: are the background, and commits are left out so that the join is what is measured.
COORDINATOR_OPTIONS: dict[str, Any] = {"auto_commit_interval_ms": 3_600_000}
HEARTBEAT_API = "Heartbeat"


@dataclass(frozen=True)
class JoinCost:
    variant: str
    members: int
    server: ZkLoad
    client: dict[str, int]
    join_to_stable_ms: float
    ledger: tuple[dict[str, Any], ...] = ()  # one entry per coordination service


def parse_hosts(connect: str) -> list[tuple[str, int]]:
    """``host:port,host:port[/chroot]`` -> [(host, port), ...]."""
    return [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in connect.split("/", 1)[0].split(","))]


def _wait_stable(
    sink: ListSink, ids: list[str], partitions: set[tuple[str, int]], after: int | None, timeout: float
) -> int:
    def stable(events: list) -> bool:
        view = GroupOwnership(partitions).apply_all(events)
        generation = view.generation(ids)
        return view.converged(ids) and (after is None or (generation or -1) > after)

    if not sink.wait_for(stable, timeout):
        raise TimeoutError(f"{len(ids)} members did not converge within {timeout:.0f}s")
    return GroupOwnership(partitions).apply_all(sink.events).generation(ids) or 0


def measure_join(
    zk_hosts: str,
    servers: Sequence[tuple[str, int]],
    variant: str,
    members: int,
    partitions: int,
    *,
    assignor: str = "range",
    session_timeout_ms: int = 10_000,
    quiet_s: float = 0.5,
    timeout: float = 300.0,
) -> JoinCost:
    root = f"/zkmode/joincost-{uuid.uuid4().hex[:8]}"
    provision_topics(zk_hosts, {TOPIC: partitions}, zk_root=root)
    all_parts = {(TOPIC, p) for p in range(partitions)}
    config = MemberConfig(
        group="joincost",
        topics=(TOPIC,),
        mode="zk",
        variant=variant,
        assignor=assignor,
        zk_hosts=zk_hosts,
        zk_root=root,
        session_timeout_ms=session_timeout_ms,
        options=FAST_OPTIONS,
    )
    sink = ListSink()
    group = [create_member(config.with_(member_name=f"m{i}"), sink) for i in range(members - 1)]
    try:
        for m in group:
            m.start()
        generation = (
            _wait_stable(sink, [m.member_id for m in group], all_parts, None, timeout) if group else None
        )
        before = wait_quiet(servers, "zkmode", quiet_s, timeout)
        counts_before = [m.zk_counts() for m in group]

        newcomer = create_member(config.with_(member_name=f"m{members - 1}"), sink)
        group.append(newcomer)
        started = time.monotonic_ns()
        newcomer.start()
        _wait_stable(sink, [m.member_id for m in group], all_parts, generation, timeout)
        stable_ms = (max(e.mono_ns for e in sink.events) - started) / 1e6
        after = wait_quiet(servers, "zkmode", quiet_s, timeout)
        counts_after = [m.zk_counts() for m in group]
    finally:
        for m in group:
            m.close()
    client: dict[str, int] = {}
    for i, now in enumerate(counts_after):
        then = counts_before[i] if i < len(counts_before) else {}
        for key, value in now.items():
            client[key] = client.get(key, 0) + value - then.get(key, 0)
    return JoinCost(
        variant,
        members,
        zk_load(before, after, namespace=root),
        client,
        stable_ms,
        (zookeeper_entry(before, after, root),),
    )


def _broker_readings(cluster: BrokerCluster, after_time: float) -> list[BrokerSample]:
    """Every broker's stats file once it was rewritten after ``after_time`` (wall clock), without the
    heartbeats (the coordinator's pings)."""
    deadline = time.monotonic() + 30.0
    while True:
        stats = cluster.stats()
        if all(s is not None and float(s.get("time", 0)) > after_time for s in stats.values()):
            return [
                BrokerSample(
                    str(b),
                    time.monotonic_ns(),
                    {api: c for api, c in s["apis"].items() if api != HEARTBEAT_API},
                    s.get("partitions", {}),
                )
                for b, s in sorted(stats.items())
                if s is not None
            ]
        if time.monotonic() > deadline:
            raise TimeoutError("the brokers did not rewrite their stats files within 30 s")
        time.sleep(0.2)


def _coordination_counters(readings: list[BrokerSample]) -> list[Any]:
    """What must hold still for the brokers to be quiet: the group APIs and the appends (replica
    fetches go on all the time, whether there is something to replicate or not)."""
    appended = ("group_metadata_records", "offset_commit_records", "other_records", "fsyncs")
    return [
        (
            {api: c.get("requests") for api, c in r.stats.items() if api in GROUP_APIS},
            {p: [c.get(k) for k in appended] for p, c in r.partitions.items()},
        )
        for r in readings
    ]


def wait_brokers_quiet(cluster: BrokerCluster, timeout: float) -> list[BrokerSample]:
    """Broker readings once two successive stats files agree on every coordination counter."""
    deadline = time.monotonic() + timeout
    last = _broker_readings(cluster, time.time())
    while True:
        now = _broker_readings(cluster, time.time())
        if _coordination_counters(now) == _coordination_counters(last):
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"the brokers did not go quiet within {timeout:.0f}s")
        last = now


def measure_coordinator_join(
    zk_hosts: str,
    servers: Sequence[tuple[str, int]],
    members: int,
    partitions: int,
    *,
    brokers: int = 3,
    quiet_s: float = 0.5,
    timeout: float = 300.0,
) -> JoinCost:
    """One join into a coordinator-mode group of ``members - 1`` on a cluster of ``brokers``."""
    root = f"/kafka-joincost-{uuid.uuid4().hex[:8]}"
    namespace = root.strip("/")
    with tempfile.TemporaryDirectory(prefix="joincost-") as tmp:
        cluster = BrokerCluster(
            zk_hosts,
            brokers,
            Path(tmp),
            topics={TOPIC: partitions},
            initial_rebalance_delay_ms=0,
            zk_root=root,
        )
        all_parts = {(TOPIC, p) for p in range(partitions)}
        config = MemberConfig(
            group="joincost",
            topics=(TOPIC,),
            mode="coordinator",
            variant=COORDINATOR_VARIANT,
            bootstrap="",
            options=COORDINATOR_OPTIONS,
        )
        sink = ListSink()
        group: list[Any] = []
        try:
            cluster.start()
            config = config.with_(bootstrap=cluster.bootstrap)
            group = [create_member(config.with_(member_name=f"m{i}"), sink) for i in range(members - 1)]
            for m in group:
                m.start()
            generation = (
                _wait_stable(sink, [m.member_id for m in group], all_parts, None, timeout) if group else None
            )
            zk_before = wait_quiet(servers, namespace, quiet_s, timeout)
            b_before = wait_brokers_quiet(cluster, timeout)
            newcomer = create_member(config.with_(member_name=f"m{members - 1}"), sink)
            group.append(newcomer)
            started = time.monotonic_ns()
            newcomer.start()
            _wait_stable(sink, [m.member_id for m in group], all_parts, generation, timeout)
            stable_ms = (max(e.mono_ns for e in sink.events) - started) / 1e6
            b_after = wait_brokers_quiet(cluster, timeout)
            zk_after = wait_quiet(servers, namespace, quiet_s, timeout)
        finally:
            for m in group:
                m.close()
            cluster.stop()
    ledger = (zookeeper_entry(zk_before, zk_after, namespace), *broker_entries(b_before, b_after))
    return JoinCost(
        COORDINATOR_VARIANT,
        members,
        zk_load(zk_before, zk_after, namespace=namespace),
        {},
        stable_ms,
        ledger,
    )


def predicted(row: JoinCost, partitions: int) -> Prediction:
    """The cost model's prediction for one measured join (commits off, as measured)."""
    mode = "coordinator" if row.variant == COORDINATOR_VARIANT else "zk"
    # The coordinator's members keep auto-commit on (only its interval is long), so each commits
    # before it rejoins; the zk members' commits are off (FAST_OPTIONS).
    commits = mode == "coordinator"
    return predict(
        mode, row.variant, "join", Workload(members=row.members, partitions=partitions, commits=commits)
    )


def _beside(measured: float, model: Count) -> str:
    """``measured/model (residual)``; the residual is 0 inside a bounded (racing) prediction."""
    residual = model.residual(measured)
    return f"{measured:g}/{model} ({residual:+g})"


def format_ledger(rows: Sequence[JoinCost], partitions: int) -> str:
    """Every measurement on the ledger of ``coordination_load.csv``: one line per service; the
    coordinator's requests beside the model's."""
    short = {
        "requests": "requests",
        "bytes_in": "bytes in",
        "bytes_out": "bytes out",
        "durable_writes": "durable",
        "fsyncs": "fsyncs",
        "replication_messages": "repl msgs",
        "replication_bytes": "repl bytes",
    }
    head = (
        f"{'variant':<15}{'N':>4}  {'service':<18}"
        + "".join(f"{short[k]:>11}" for k in LEDGER_VALUES)
        + f"  {'model requests':>16}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        model = predicted(r, partitions)
        for entry in r.ledger:
            cells = "".join(f"{'-' if entry[k] is None else entry[k]:>11}" for k in LEDGER_VALUES)
            beside = str(model.coordinator_requests) if entry["service"] == "group_coordinator" else "-"
            lines.append(f"{r.variant:<15}{r.members:>4}  {entry['service']:<18}{cells}  {beside:>16}")
    return "\n".join(lines)


def format_table(rows: Sequence[JoinCost], partitions: int) -> str:
    """Server and client counts, then the client's beside the model's (measured/model (residual))."""
    head = (
        f"{'variant':<15}{'N':>4}  {'reads srv/cli':>15}  {'writes srv/cli':>15}  {'notif srv/cli':>14}"
        f"  {'reads cli/model':>22}  {'writes cli/model':>20}  {'notif cli/model':>20}  {'join->stable ms':>15}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.variant == COORDINATOR_VARIANT:
            continue  # its costs are the ledger's
        model = predicted(r, partitions)
        reads, writes, notif = (r.client.get(k, 0) for k in ("reads", "writes", "watch_events"))
        lines.append(
            f"{r.variant:<15}{r.members:>4}  {r.server.reads:>7}/{reads:<7}  "
            f"{r.server.writes:>7}/{writes:<7}  "
            f"{r.server.watch_notifications:>6}/{notif:<7}  "
            f"{_beside(reads, model.zk_reads):>22}  {_beside(writes, model.zk_writes):>20}  "
            f"{_beside(notif, model.zk_watch_events):>20}  {r.join_to_stable_ms:>15.0f}"
        )
    return "\n".join(lines)


def run_join_costs(
    sizes: Sequence[int],
    variant_names: Sequence[str],
    partitions: int,
    zk_hosts: str | None,
    progress: Callable[[str], None] = log.info,
) -> list[JoinCost]:
    """Measure every (variant, size) pair, against ``zk_hosts`` or a standalone server we start."""
    from bench.services.zookeeper import ZooKeeperEnsemble

    ensemble = None
    if zk_hosts is None:
        ensemble = ZooKeeperEnsemble(size=1)
        ensemble.start()
        zk_hosts = ensemble.connect_string
    servers = parse_hosts(zk_hosts)
    try:
        rows = []
        for variant in variant_names:
            for n in sizes:
                progress(f"measuring one join into {n - 1} members, variant {variant}")
                if variant == COORDINATOR_VARIANT:
                    rows.append(measure_coordinator_join(zk_hosts, servers, n, partitions))
                else:
                    rows.append(measure_join(zk_hosts, servers, variant, n, partitions))
        return rows
    finally:
        if ensemble is not None:
            ensemble.stop()


@click.command("join-cost")
@click.option(
    "--sizes", default="4,16,64", show_default=True, help="Group sizes N (after the join), comma-separated."
)
@click.option(
    "--variant",
    "variant_names",
    multiple=True,
    help=f"zk variants, or {COORDINATOR_VARIANT!r} for coordinator mode on three brokers (default: all).",
)
@click.option("--partitions", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--zk",
    "zk_hosts",
    default=None,
    help="Use this ZooKeeper (mntr must be whitelisted); default: start one.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per measurement instead of a table.")
def join_cost(
    sizes: str, variant_names: tuple[str, ...], partitions: int, zk_hosts: str | None, as_json: bool
) -> None:
    """What one join costs, per variant and group size: ZooKeeper's reads, writes and watch
    notifications, then every design's coordination services on one ledger."""
    try:
        ns = [int(s) for s in sizes.split(",")]
        if any(n < 1 for n in ns):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected positive integers separated by commas, got {sizes!r}") from None
    known = (
        *default_variants("zk"),
        COORDINATOR_VARIANT,
    )  # the Python members: join-cost counts their kazoo calls
    for v in variant_names:
        if v not in known:
            raise click.BadParameter(f"expected one of {', '.join(known)}, got {v!r}", param_hint="--variant")
    try:
        rows = run_join_costs(
            ns, variant_names or known, partitions, zk_hosts, progress=lambda m: click.echo(m, err=True)
        )
    except (ConfigError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for r in rows:
            model = predicted(r, partitions)
            click.echo(json.dumps({**asdict(r), "server": r.server.as_dict(), "model": asdict(model)}))
    else:
        click.echo(format_table(rows, partitions))
        click.echo()
        click.echo(format_ledger(rows, partitions))

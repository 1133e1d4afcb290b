"""One cost ledger for both designs: the rows of ``coordination_load.csv``.

Per episode (between the readings that bracket it) and per steady window (a rate's worth of
readings inside it), one row per *coordination service*:

``zookeeper``
    ZooKeeper, counted under the namespace of the run's groups: ``zkmode`` for zk mode (the members'
    coordination), ``kafka`` (the brokers' root) for coordinator mode (the brokers' own metadata:
    registrations, controller, partition states and ISR updates).
``group_coordinator``
    coordinator mode: the brokers' group APIs (:data:`GROUP_APIS`) and what the coordinators
    appended to ``__consumer_offsets`` as partition leaders.
``offsets_replicas``
    coordinator mode: replicating ``__consumer_offsets`` (the followers' Fetch requests, what they
    appended) and every fsync of the offsets partitions.

The columns, for each service:

``requests``
    requests served: the namespace's reads + writes (``mntr`` per-namespace counters, no pings or
    session setup); the group API requests; the followers' Fetch requests (``FetchFollower``).
``bytes_in`` / ``bytes_out``
    ZooKeeper: ``zk_bytes_received_count`` over the ensemble (every namespace; ZooKeeper counts no
    bytes sent); the brokers: request and response bytes of those APIs.
``durable_writes``
    ZooKeeper: znode changes applied in the namespace (each op of a ``multi``); the coordinators:
    records they appended as leaders (group metadata and offset commits); the replicas: records
    the followers appended.
``fsyncs``
    ZooKeeper: ``zk_cnt_fsynctime`` summed over the servers (each server fsyncs its own transaction
    log; ensemble-wide); the brokers: fsyncs of their offsets replicas (none per append by default,
    see ``log_flush`` in the run's environment).
``replication_messages`` / ``replication_bytes``
    ZooKeeper: proposals the followers received (``zk_learner_proposal_received_count``, summed;
    ensemble-wide; 0 for a standalone server), bytes not counted; the replicas: fetch answers that
    carried records of a partition to a follower, and those record bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.analysis.metrics.episodes import Episode
from bench.analysis.metrics.rows import STEADY_MIN_S, STEADY_SETTLE_S, WINDOW_KEYS, span_columns
from bench.analysis.metrics.samples import (
    BrokerSample,
    Samples,
    bracket_readings,
    broker_load,
    partition_load,
    reading_span,
    readings_inside,
)
from bench.analysis.replay import RunHistory
from bench.services.mntr import Mntr, zk_load

#: The APIs of the group coordinator (what Kafka's ``GroupCoordinator`` serves, and FindCoordinator).
GROUP_APIS = frozenset(
    {
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "Heartbeat",
        "LeaveGroup",
        "OffsetCommit",
        "OffsetFetch",
        "DescribeGroups",
        "ListGroups",
    }
)
REPLICA_FETCH_API = "FetchFollower"

LEDGER_VALUES = [
    "requests",
    "bytes_in",
    "bytes_out",
    "durable_writes",
    "fsyncs",
    "replication_messages",
    "replication_bytes",
]
LEDGER_KEYS = [
    *WINDOW_KEYS,
    "service",
    "namespace",
]
LEDGER_COLUMNS = [*LEDGER_KEYS, *LEDGER_VALUES]


def _ensemble_total(before: Sequence[Mntr], after: Sequence[Mntr], key: str) -> int:
    """A cumulative counter summed over servers; a restarted server (uptime went down) from zero."""
    by_server = {m.server: m for m in before}
    total = 0.0
    for a in after:
        b = by_server.get(a.server)
        if b is not None and a.get("zk_uptime") < b.get("zk_uptime"):
            b = None
        total += a.get(key) - (b.get(key) if b is not None else 0)
    return int(total)


def zookeeper_entry(before: Sequence[Mntr], after: Sequence[Mntr], namespace: str) -> dict[str, Any]:
    load = zk_load(before, after, namespace=namespace)
    return {
        "service": "zookeeper",
        "namespace": load.namespace,
        "requests": load.reads + load.writes,
        "bytes_in": load.bytes_received,
        "bytes_out": None,
        "durable_writes": load.writes,
        "fsyncs": _ensemble_total(before, after, "zk_cnt_fsynctime"),
        "replication_messages": _ensemble_total(before, after, "zk_learner_proposal_received_count"),
        "replication_bytes": None,
    }


def broker_entries(before: Sequence[BrokerSample], after: Sequence[BrokerSample]) -> list[dict[str, Any]]:
    """The ``group_coordinator`` and ``offsets_replicas`` entries over every broker."""
    apis = broker_load(before, after)
    parts = partition_load(before, after)

    def api_sum(names: frozenset[str], key: str) -> int:
        return sum(d[key] for (_, api), d in apis.items() if api in names)

    def part_sum(key: str) -> int:
        return sum(d.get(key, 0) for d in parts.values())

    appended = (
        part_sum("group_metadata_records") + part_sum("offset_commit_records") + part_sum("other_records")
    )
    fetch = frozenset({REPLICA_FETCH_API})
    return [
        {
            "service": "group_coordinator",
            "namespace": None,
            "requests": api_sum(GROUP_APIS, "requests"),
            "bytes_in": api_sum(GROUP_APIS, "bytes_in"),
            "bytes_out": api_sum(GROUP_APIS, "bytes_out"),
            "durable_writes": part_sum("leader_records"),
            "fsyncs": None,
            "replication_messages": None,
            "replication_bytes": None,
        },
        {
            "service": "offsets_replicas",
            "namespace": None,
            "requests": api_sum(fetch, "requests"),
            "bytes_in": api_sum(fetch, "bytes_in"),
            "bytes_out": api_sum(fetch, "bytes_out"),
            "durable_writes": appended - part_sum("leader_records"),
            "fsyncs": part_sum("fsyncs"),
            "replication_messages": part_sum("fetches_served"),
            "replication_bytes": part_sum("fetch_bytes_out"),
        },
    ]


def _entries(
    samples: Samples, namespace: str, with_brokers: bool, bracket: bool, start: int, end: int
) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    """(reading span, entry) per service, for the readings around (``bracket``) or inside the window."""
    pick = bracket_readings if bracket else readings_inside
    out = []
    zk_before, zk_after = pick(samples.zk, start, end)
    if zk_before:
        out.append((reading_span(zk_before, zk_after), zookeeper_entry(zk_before, zk_after, namespace)))
    if with_brokers:
        b_before, b_after = pick(samples.brokers, start, end)
        if b_before:
            span = reading_span(b_before, b_after)
            out += [(span, e) for e in broker_entries(b_before, b_after)]
    return out


def ledger_rows(
    ident: dict[str, Any],
    history: RunHistory,
    episodes: list[Episode],
    quiet: list[tuple[int, int, int]],
    samples: Samples,
) -> list[dict[str, Any]]:
    """Every row of ``coordination_load.csv`` (see the module)."""
    rows = []
    start = history.start_ns
    coordinator = any(g.mode == "coordinator" for g in history.groups.values())
    for ep in episodes:
        spec = history.groups[ep.group]
        key = {
            **ident,
            "mode": spec.mode,
            "variant": spec.variant,
            "kind": "episode",
            "group": ep.group,
            "step": ep.step,
            "action": ep.action,
            "phase": ep.phase,
            "members": ep.members_after,
        }
        for span, entry in _entries(
            samples, spec.namespace, spec.mode == "coordinator", True, ep.trigger_ns, ep.end_ns
        ):
            rows.append({**key, **span_columns(span, start), **entry})
    namespaces = sorted({g.namespace for g in history.groups.values()})
    base = {**ident, "kind": "steady", "group": None, "step": None, "action": None, "phase": None}
    for q_start, q_end, members in quiet:
        lo = q_start + int(STEADY_SETTLE_S * 1e9)
        if (q_end - lo) / 1e9 < STEADY_MIN_S:
            continue
        for i, ns in enumerate(namespaces):
            # The brokers' entries once per window, not once per namespace.
            for span, entry in _entries(samples, ns, coordinator and i == 0, False, lo, q_end):
                rows.append({**base, **span_columns(span, start), "members": members, **entry})
    return rows

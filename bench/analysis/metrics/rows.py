"""The rows of one run's derived tables: per episode (``rebalances.csv`` and the episode rows of
``zk_load.csv`` and ``broker_load.csv``) and per run (the *steady* windows, stretches with no action
in progress and every group converged, starting ``STEADY_SETTLE_S`` after the last event, where the
idle load is measured as a rate; ensemble-wide counts including pings are reported beside the
per-namespace ones as ``reads_incl_pings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.analysis.metrics.episodes import Episode, Join, join_fields, joins, ms_between
from bench.analysis.metrics.samples import (
    Samples,
    bracket_readings,
    broker_load,
    reading_span,
    readings_inside,
)
from bench.analysis.replay import RunGroup, RunHistory
from bench.services.mntr import ZkLoad, zk_load
from group_api import EventKind

#: A steady window starts this long after the last event, so a rebalance's trailing traffic is not idle load.
STEADY_SETTLE_S = 1.0
#: Shortest steady window worth a rate.
STEADY_MIN_S = 2.0

#: The columns that name a load row's run and window: the first of every load table.
WINDOW_KEYS = [
    "run_id",
    "scenario",
    "family",
    "scenario_members",
    "mode",
    "variant",
    "repetition",
    "kind",
    "group",
    "step",
    "action",
    "phase",
    "start_s",
    "end_s",
    "duration_s",
    "members",
]


def span_columns(span: tuple[int, int], start_ns: int) -> dict[str, float]:
    """A row's ``start_s``/``end_s`` (from the run's start) and ``duration_s`` for a reading span."""
    return {
        "start_s": round((span[0] - start_ns) / 1e9, 3),
        "end_s": round((span[1] - start_ns) / 1e9, 3),
        "duration_s": round((span[1] - span[0]) / 1e9, 3),
    }


def _zk_fields(load: ZkLoad | None) -> dict[str, Any]:
    return {f: getattr(load, f) if load else None for f in ZkLoad.__dataclass_fields__ if f != "namespace"}


def _rebalance_row(
    key: dict[str, Any],
    ep: Episode,
    spec: RunGroup,
    group_joins: Sequence[Join],
    start: int,
    samples: Samples,
) -> dict[str, Any]:
    """One row of ``rebalances.csv``: the episode's latencies, ownership, joins and its ZooKeeper and
    broker cost between the readings that bracket it."""
    window = bracket_readings(samples.zk, ep.trigger_ns, ep.end_ns)
    load = zk_load(*window, namespace=spec.namespace) if window[0] else None
    zk_span = reading_span(*window) if window[0] else (None, None)
    b_window = bracket_readings(samples.brokers, ep.trigger_ns, ep.end_ns)
    b_load = broker_load(*b_window) if b_window[0] else None
    return {
        **key,
        "trigger_s": round((ep.trigger_ns - start) / 1e9, 3),
        "targets": ";".join(ep.targets),
        "outcome": ep.outcome.value,
        "detection_ms": ms_between(ep.trigger_ns, ep.detection_ns),
        "detected_by": ep.detected_by,
        "detection_event": ep.detection_event,
        "convergence_ms": ms_between(ep.trigger_ns, ep.convergence_ns),
        "window_ms": ms_between(ep.trigger_ns, ep.window_end_ns),
        "unowned_partition_s": round(ep.unowned_partition_s, 6),
        "partitions": len(spec.partitions),
        "generation_before": ep.generation_before,
        "generation_after": ep.generation_after,
        "generations": ep.generations,
        "partitions_revoked": ep.partitions_revoked,
        "partitions_moved": ep.partitions_moved,
        "members_before": ep.members_before,
        "members_after": ep.members_after,
        "members_involved": ep.members_involved,
        **join_fields(ep, group_joins),
        "concurrent_groups": ep.concurrent_groups,
        "rtt_ms": ep.rtt_ms,
        "zk_namespace": spec.namespace,
        "zk_reads": load.reads if load else None,
        "zk_writes": load.writes if load else None,
        "zk_watch_notifications": load.watch_notifications if load else None,
        "zk_reads_incl_pings": load.reads_incl_pings if load else None,
        "zk_window_ms": ms_between(*zk_span),
        "broker_requests": sum(v["requests"] for v in b_load.values()) if b_load is not None else None,
    }


def _load_rows(
    key: dict[str, Any], ep: Episode, spec: RunGroup, start: int, samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The episode's rows of ``zk_load.csv`` (one, when readings bracket it) and ``broker_load.csv``
    (one per broker and API)."""
    zk_rows, broker_rows = [], []
    window = bracket_readings(samples.zk, ep.trigger_ns, ep.end_ns)
    if window[0]:
        load = zk_load(*window, namespace=spec.namespace)
        zk_span = reading_span(*window)
        zk_rows.append(
            {
                **key,
                "kind": "episode",
                **span_columns(zk_span, start),
                "members": ep.members_after,
                "namespace": spec.namespace,
                **_zk_fields(load),
            }
        )
    b_window = bracket_readings(samples.brokers, ep.trigger_ns, ep.end_ns)
    b_load = broker_load(*b_window) if b_window[0] else None
    for (broker, api), delta in sorted((b_load or {}).items()):
        b_span = reading_span(*b_window)
        broker_rows.append(
            {
                **key,
                "kind": "episode",
                **span_columns(b_span, start),
                "broker": broker,
                "api": api,
                **delta,
            }
        )
    return zk_rows, broker_rows


def episode_rows(
    ident: dict[str, Any], history: RunHistory, eps: list[Episode], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Per episode: its ``rebalances.csv`` row and its ``zk_load.csv`` and ``broker_load.csv`` rows."""
    rebalances, zk_rows, broker_rows = [], [], []
    by_group: dict[str, list[Join]] = {}
    for j in joins(history):
        by_group.setdefault(j.group, []).append(j)
    for ep in eps:
        spec = history.groups[ep.group]
        key = {
            **ident,
            "mode": spec.mode,
            "variant": spec.variant,
            "group": ep.group,
            "step": ep.step,
            "action": ep.action,
            "phase": ep.phase,
        }
        rebalances.append(
            _rebalance_row(key, ep, spec, by_group.get(ep.group, ()), history.start_ns, samples)
        )
        zk, brokers = _load_rows(key, ep, spec, history.start_ns, samples)
        zk_rows += zk
        broker_rows += brokers
    return rebalances, zk_rows, broker_rows


def _namespaces(history: RunHistory) -> list[str]:
    return sorted({g.namespace for g in history.groups.values()})


def steady_rows(
    ident: dict[str, Any], history: RunHistory, quiet: list[tuple[int, int, int]], samples: Samples
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    zk_rows, broker_rows = [], []
    start = history.start_ns
    base = {**ident, "group": None, "step": None, "action": None, "phase": None, "kind": "steady"}
    for q_start, q_end, members in quiet:
        lo = q_start + int(STEADY_SETTLE_S * 1e9)
        if (q_end - lo) / 1e9 < STEADY_MIN_S:
            continue
        first, last = readings_inside(samples.zk, lo, q_end)
        if first:
            span = reading_span(first, last)
            for ns in _namespaces(history):
                zk_rows.append(
                    {
                        **base,
                        **span_columns(span, start),
                        "members": members,
                        "namespace": ns,
                        **_zk_fields(zk_load(first, last, namespace=ns)),
                    }
                )
        b_first, b_last = readings_inside(samples.brokers, lo, q_end)
        if b_first:
            span = reading_span(b_first, b_last)
            for (broker, api), delta in sorted(broker_load(b_first, b_last).items()):
                broker_rows.append(
                    {
                        **base,
                        **span_columns(span, start),
                        "broker": broker,
                        "api": api,
                        **delta,
                    }
                )
    return zk_rows, broker_rows


def _client_calls(history: RunHistory) -> tuple[dict[str, int], int]:
    """ZooKeeper calls the members counted themselves, summed over the ``left`` events that carry them."""
    total: dict[str, int] = {}
    reporting = 0
    for e in history.events:
        calls = e.extra.get("zk_calls") if e.kind == EventKind.LEFT else None
        if isinstance(calls, dict):
            reporting += 1
            for k, v in calls.items():
                total[k] = total.get(k, 0) + int(v)
    return total, reporting


def run_rows(ident: dict[str, Any], history: RunHistory, samples: Samples) -> list[dict[str, Any]]:
    """The whole measured run per namespace, with the members' own call counts beside it."""
    first, last = readings_inside(samples.zk, 0, history.analysis_end_ns)
    if not first:
        return []
    calls, reporting = _client_calls(history)
    span = reading_span(first, last)
    rows = []
    for ns in _namespaces(history):
        rows.append(
            {
                **ident,
                "group": None,
                "step": None,
                "action": None,
                "phase": None,
                "kind": "run",
                **span_columns(span, history.start_ns),
                "members": len({e.member for e in history.events}),
                "namespace": ns,
                **_zk_fields(zk_load(first, last, namespace=ns)),
                "client_members": reporting,
                "client_reads": calls.get("reads"),
                "client_writes": calls.get("writes"),
                "client_watch_events": calls.get("watch_events"),
            }
        )
    return rows


def steady_summary(zk_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in zk_rows:
        if row["kind"] != "steady" or not row["duration_s"]:
            continue
        d = row["duration_s"]
        out.append(
            {
                "namespace": row["namespace"],
                "start_s": row["start_s"],
                "duration_s": d,
                "members": row["members"],
                **{
                    f"{k}_per_s": round(row[k] / d, 3)
                    for k in (
                        "reads",
                        "writes",
                        "reads_incl_pings",
                        "watch_notifications",
                        "packets_received",
                    )
                },
            }
        )
    return out

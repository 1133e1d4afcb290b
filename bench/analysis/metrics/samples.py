"""ZooKeeper and broker load of an episode, from the ``samples.jsonl`` readings that bracket it.

Per server the last reading at or before the trigger and the first at or after convergence (or the
episode's end), through :func:`bench.services.mntr.zk_load` with the group's namespace (``zkmode``
for zk members, ``kafka`` for the brokers of coordinator mode). The per-namespace read and write
counters never count pings or session setup, so ``zk_reads``/``zk_writes`` are the episode's own
requests. Broker requests per episode come the same way from the brokers' counters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.services.mntr import Mntr

# -- samples ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerSample:
    broker: str
    mono_ns: int
    stats: dict[str, dict[str, int]]  # per API
    partitions: dict[str, dict[str, int]] = field(default_factory=dict)  # per offsets partition
    info: dict[str, Any] = field(default_factory=dict)  # the rest of the broker's stats file


@dataclass(frozen=True)
class Samples:
    zk: dict[str, list[Mntr]]  # by server, in clock order
    brokers: dict[str, list[BrokerSample]]
    problems: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> Samples:
        zk: dict[str, list[Mntr]] = {}
        brokers: dict[str, list[BrokerSample]] = {}
        problems = []
        p = Path(path)
        lines = p.read_text().splitlines() if p.exists() else []
        if not p.exists():
            problems.append(f"{p.name} missing: no ZooKeeper or broker cost")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if d["source"] == "zk":
                    zk.setdefault(d["server"], []).append(
                        Mntr(
                            server=d["server"],
                            values=d["values"],
                            mono_ns=int(d["mono_ns"]),
                            answer_bytes=int(d.get("answer_bytes", 0)),
                        )
                    )
                elif d["source"] == "broker":
                    broker = str(d["broker"])
                    brokers.setdefault(broker, []).append(
                        BrokerSample(
                            broker,
                            int(d["mono_ns"]),
                            d["stats"],
                            d.get("partitions") or {},
                            d.get("info") or {},
                        )
                    )
                else:
                    problems.append(f"{p.name} line {number}: unknown source {d['source']!r}")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                problems.append(f"{p.name} line {number}: not a sample")
        for readings in (*zk.values(), *brokers.values()):
            readings.sort(key=lambda r: r.mono_ns)
        return cls(zk, brokers, tuple(problems))


Reading = TypeVar("Reading", Mntr, BrokerSample)


def _before(readings: Sequence[Reading], t: int) -> Reading | None:
    earlier = [r for r in readings if r.mono_ns <= t]
    return earlier[-1] if earlier else None


def _after(readings: Sequence[Reading], t: int) -> Reading | None:
    return next((r for r in readings if r.mono_ns >= t), None)


def bracket_readings(
    by_source: dict[str, list[Reading]], start: int, end: int
) -> tuple[list[Reading], list[Reading]]:
    """Per source the last reading at or before ``start`` and the first at or after ``end``."""
    before, after = [], []
    for readings in by_source.values():
        b, a = _before(readings, start), _after(readings, end)
        if b is not None and a is not None and a.mono_ns > b.mono_ns:
            before.append(b)
            after.append(a)
    return before, after


def readings_inside(
    by_source: dict[str, list[Reading]], start: int, end: int
) -> tuple[list[Reading], list[Reading]]:
    """Per source the first and last readings inside ``[start, end]`` (for rates over a window)."""
    first, last = [], []
    for readings in by_source.values():
        inside = [r for r in readings if start <= r.mono_ns <= end]
        if len(inside) >= 2:
            first.append(inside[0])
            last.append(inside[-1])
    return first, last


def reading_span(
    before: Sequence[Mntr | BrokerSample], after: Sequence[Mntr | BrokerSample]
) -> tuple[int, int]:
    return min(r.mono_ns for r in before), max(r.mono_ns for r in after)


def broker_load(
    before: Sequence[BrokerSample], after: Sequence[BrokerSample]
) -> dict[tuple[str, str], dict[str, int]]:
    """Requests and bytes per (broker, api) between two sets of samples; a restarted broker (a
    counter went down) counts from zero."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    by_broker = {b.broker: b for b in before}
    for a in after:
        b = by_broker.get(a.broker)
        restarted = b is not None and any(
            a.stats.get(api, {}).get("requests", 0) < s.get("requests", 0) for api, s in b.stats.items()
        )
        for api, stats in a.stats.items():
            then = {} if b is None or restarted else b.stats.get(api, {})
            delta = {
                k: int(stats.get(k, 0)) - int(then.get(k, 0)) for k in ("requests", "bytes_in", "bytes_out")
            }
            if any(delta.values()):
                out[(a.broker, api)] = delta
    return out


def partition_load(
    before: Sequence[BrokerSample], after: Sequence[BrokerSample]
) -> dict[tuple[str, str], dict[str, int]]:
    """Per (broker, offsets partition) the change of every counter between two sets of samples; a
    restarted broker (a counter went down) counts from zero."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    by_broker = {b.broker: b for b in before}
    for a in after:
        b = by_broker.get(a.broker)
        restarted = b is not None and any(
            int(a.partitions.get(p, {}).get(k, 0)) < int(v)
            for p, counters in b.partitions.items()
            for k, v in counters.items()
        )
        for partition, counters in a.partitions.items():
            then = {} if b is None or restarted else b.partitions.get(partition, {})
            delta = {k: int(v) - int(then.get(k, 0)) for k, v in counters.items()}
            if any(delta.values()):
                out[(a.broker, partition)] = delta
    return out


def offsets_durability(samples: Samples) -> dict[str, Any] | None:
    """How the brokers made ``__consumer_offsets`` durable (replication factor, flush policy), from
    their last samples; None without brokers (or from brokers that did not say)."""
    last = [readings[-1].info for readings in samples.brokers.values() if readings]
    said = [i for i in last if "offsets_replication_factor" in i]
    if not said:
        return None
    flush = {i.get("log_flush_interval_messages") for i in said}
    return {
        "replication_factor": max(int(i["offsets_replication_factor"] or 0) for i in said),
        "flush": "no fsync per append (Kafka's default: durability by replication)"
        if flush == {None}
        else f"fsync every {sorted(f for f in flush if f is not None)} messages (log.flush.interval.messages)",
    }

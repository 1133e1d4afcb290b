"""What a rebalance cost the application, from the members' ``consumed`` events: lost records,
duplicates (and whether a crash explains them), the pause of each partition that changed hands,
end-to-end latency, and records consumed per second.

The rules the checker applies (Kafka's consumer system tests assert the same, ``consumer_test.py``):

* **No record lost**: every offset the producer had acknowledged is in some ``consumed`` event.
* **No duplicate across a graceful hand-over**: an offset consumed twice is allowed only when each
  processing but the last was by a member that crashed (it never emitted ``left``), at or after
  the position of its last acknowledged commit for that partition: work it did but could not
  commit, which its successor redoes from the committed offset. That is the *crash bound*; a duplicate outside it is
  a violation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from group_api import Event, EventKind, TopicPartition


@dataclass(frozen=True)
class Consumption:
    """One ``consumed`` event, flattened."""

    member: str
    tp: TopicPartition
    first_offset: int
    last_offset: int
    count: int
    mono_ns: int
    wall: float
    produce_ms_min: int | None
    produce_ms_max: int | None


def consumptions(events: Iterable[Event]) -> list[Consumption]:
    out = []
    for e in events:
        if e.kind is not EventKind.CONSUMED or not e.partitions:
            continue
        x = e.extra
        out.append(
            Consumption(
                e.member,
                e.partitions[0],
                int(x["first_offset"]),
                int(x["last_offset"]),
                int(x["count"]),
                e.mono_ns,
                e.wall,
                x.get("produce_ms_min"),
                x.get("produce_ms_max"),
            )
        )
    return sorted(out, key=lambda c: c.mono_ns)


@dataclass
class RecordsCheck:
    produced: int = 0
    consumed: int = 0  # record deliveries, duplicates included
    lost: list[tuple[TopicPartition, int]] = field(default_factory=list)
    duplicates: list[tuple[TopicPartition, int, tuple[str, ...]]] = field(default_factory=list)
    beyond_crash_bound: list[tuple[TopicPartition, int, tuple[str, ...]]] = field(default_factory=list)
    crash_bound: int = 0  # offsets crashed members had processed past their last commit

    @property
    def ok(self) -> bool:
        return not self.lost and not self.beyond_crash_bound

    def summary(self) -> dict[str, int]:
        return {
            "produced": self.produced,
            "consumed": self.consumed,
            "lost": len(self.lost),
            "duplicates": len(self.duplicates),
            "duplicates_beyond_crash_bound": len(self.beyond_crash_bound),
            "crash_bound": self.crash_bound,
        }


def _crash_window(events: list[Event], used: list[Consumption]) -> set[tuple[str, TopicPartition, int]]:
    """(member, partition, offset) that members which never left processed at or after their last
    acknowledged commit: what a successor may redo after their crash."""
    left = {e.member for e in events if e.kind is EventKind.LEFT}
    committed: dict[tuple[str, TopicPartition], int] = {}
    for e in events:
        if e.kind is EventKind.OFFSETS_COMMITTED:
            for t, p, o in e.extra.get("offsets") or []:
                committed[(e.member, (str(t), int(p)))] = int(o)
    window = set()
    for c in used:
        if c.member in left:
            continue
        start = committed.get((c.member, c.tp), 0)
        window.update((c.member, c.tp, o) for o in range(max(c.first_offset, start), c.last_offset + 1))
    return window


def check_records(events: Iterable[Event], produced: dict[TopicPartition, Iterable[int]]) -> RecordsCheck:
    """Lost records and duplicates of a history against what the producer had acknowledged.

    Offsets inside a ``consumed`` range are counted as consumed; the members' ranges are contiguous
    runs of one fetch (a log without gaps: no compaction, no transactions)."""
    events = list(events)
    used = consumptions(events)
    by_offset: dict[tuple[TopicPartition, int], list[str]] = defaultdict(list)
    for c in used:
        for o in range(c.first_offset, c.last_offset + 1):
            by_offset[(c.tp, o)].append(c.member)
    window = _crash_window(events, used)
    check = RecordsCheck(crash_bound=len(window))
    for tp, offsets in sorted(produced.items()):
        for o in offsets:
            check.produced += 1
            if (tp, o) not in by_offset:
                check.lost.append((tp, o))
    for (tp, o), members in sorted(by_offset.items()):
        check.consumed += len(members)
        if len(members) > 1:
            dup = (tp, o, tuple(members))
            check.duplicates.append(dup)
            # Every processing but the last must be a crashed member's uncommitted work, and no
            # member may process an offset twice.
            if len(set(members)) < len(members) or any((m, tp, o) not in window for m in members[:-1]):
                check.beyond_crash_bound.append(dup)
    return check


def handover_pauses(events: Iterable[Event]) -> dict[TopicPartition, list[float]]:
    """Per partition, each gap (s) between the last record one member processed and the first the
    next member processed: how long the partition sat idle while it changed hands."""
    pauses: dict[TopicPartition, list[float]] = defaultdict(list)
    last: dict[TopicPartition, Consumption] = {}
    for c in consumptions(events):
        prev = last.get(c.tp)
        if prev is not None and prev.member != c.member:
            pauses[c.tp].append((c.mono_ns - prev.mono_ns) / 1e9)
        last[c.tp] = c
    return dict(pauses)


def rate_per_second(events: Iterable[Event]) -> list[tuple[int, int]]:
    """(second since the first record, records consumed in it): the records/s curve."""
    used = consumptions(events)
    if not used:
        return []
    start = used[0].mono_ns
    bins: dict[int, int] = defaultdict(int)
    for c in used:
        bins[int((c.mono_ns - start) / 1e9)] += c.count
    return [(s, bins.get(s, 0)) for s in range(max(bins) + 1)]


def latencies_ms(events: Iterable[Event]) -> list[float]:
    """Produce-to-process latency per batch (ms): processing time minus the batch's oldest record."""
    return [c.wall * 1000 - c.produce_ms_min for c in consumptions(events) if c.produce_ms_min is not None]

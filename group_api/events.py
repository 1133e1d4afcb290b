"""Events: what every member emits, and the one JSON shape they take.

Members never time anything themselves. They stamp each event with ``time.monotonic_ns()`` (one
clock for every process on a host, so histories from many processes merge) and wall-clock time, and
the harness computes every latency from the history afterwards, as Kafka's system tests do with their
verifiable consumer's JSON events.

Ownership semantics, which the checker relies on:

* ``assigned`` carries the member's **complete** set of owned partitions from now on;
* ``revoked`` carries the partitions the member has **stopped** owning (a member revokes before any
  other member may be assigned them);
* ``left`` and ``session_lost`` end all ownership.

``offsets_committed`` and ``offsets_fetched`` carry ``offsets`` as ``[[topic, partition, offset], ...]``
(and ``request_mono_ns``, when the fetch was sent); they say nothing about ownership.

``consumed`` says the member processed one fetched batch of one partition (``partitions``: that
one): ``first_offset``, ``last_offset``, ``count`` and the produce-time range of its records
(``produce_ms_min``/``produce_ms_max``, epoch ms, null for records the harness did not write), emitted
once processing finished and before the position moves past it; enough to tell who processed which
offset when, without a line per record.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

TopicPartition = tuple[str, int]


class EventKind(StrEnum):
    JOINED = "joined"  # the member is registered in the group (znode created / JoinGroup answered)
    LEADER_ELECTED = "leader_elected"  # the member learned who leads the generation (itself or another)
    ASSIGNMENT_COMPUTED = "assignment_computed"  # the leader ran the assignor (leader only)
    ASSIGNED = "assigned"  # the member now owns exactly these partitions
    REVOKED = "revoked"  # the member stopped owning these partitions
    LEFT = "left"  # graceful leave finished; the member owns nothing
    SESSION_LOST = "session_lost"  # the member's session expired; it owns nothing and will rejoin
    # Offset bookkeeping (both modes): not reactions to a rebalance, but what the checker needs to
    # prove that no committed offset is lost, across a coordinator failover or a change of owner.
    OFFSETS_COMMITTED = "offsets_committed"  # the coordinator (or ZooKeeper) acknowledged these
    OFFSETS_FETCHED = "offsets_fetched"  # what the coordinator (or ZooKeeper) answered (-1: none)
    # Records (both modes, when members consume): one per fetched batch and partition processed.
    CONSUMED = "consumed"


#: Events a member emits on its own schedule, not in reaction to the group changing.
OFFSET_EVENTS = frozenset({EventKind.OFFSETS_COMMITTED, EventKind.OFFSETS_FETCHED, EventKind.CONSUMED})


_CORE_KEYS = ("event", "member", "group", "mode", "variant", "generation", "partitions", "mono_ns", "wall")


@dataclass(frozen=True)
class Event:
    kind: EventKind
    member: str
    group: str
    mode: str
    variant: str
    generation: int | None = None
    partitions: tuple[TopicPartition, ...] | None = None
    mono_ns: int = 0
    wall: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "event": self.kind.value,
            "member": self.member,
            "group": self.group,
            "mode": self.mode,
            "variant": self.variant,
            "generation": self.generation,
            "partitions": None if self.partitions is None else [[t, p] for t, p in self.partitions],
            "mono_ns": self.mono_ns,
            "wall": self.wall,
        }
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        parts = d.get("partitions")
        return cls(
            kind=EventKind(d["event"]),
            member=d["member"],
            group=d["group"],
            mode=d["mode"],
            variant=d["variant"],
            generation=d.get("generation"),
            partitions=None if parts is None else tuple(sorted((str(t), int(p)) for t, p in parts)),
            mono_ns=int(d.get("mono_ns", 0)),
            wall=float(d.get("wall", 0.0)),
            extra={k: v for k, v in d.items() if k not in _CORE_KEYS},
        )


EventSink = Callable[[Event], None]


def stamp(
    kind: EventKind,
    *,
    member: str,
    group: str,
    mode: str,
    variant: str,
    generation: int | None = None,
    partitions: Iterable[TopicPartition] | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    wall_clock: Callable[[], float] = time.time,
    **extra: Any,
) -> Event:
    """Build an event stamped with both clocks; partitions are sorted for a stable shape."""
    return Event(
        kind=kind,
        member=member,
        group=group,
        mode=mode,
        variant=variant,
        generation=generation,
        partitions=None if partitions is None else tuple(sorted((t, int(p)) for t, p in partitions)),
        mono_ns=clock(),
        wall=wall_clock(),
        extra=extra,
    )


class JsonLinesSink:
    """Writes one JSON object per line and flushes, so a reader sees each event at once."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class ListSink:
    """Keeps events in memory; ``wait_for`` blocks until a predicate over them holds."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout)


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """Parse JSON lines, skipping blank lines and lines that are not events (e.g. log output)."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and d.get("event") in EventKind._value2member_map_:
            yield Event.from_dict(d)

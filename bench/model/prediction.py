"""What the model predicts for one design, variant and event: counts, round trips, detection.

A :class:`Count` is an interval: exact (``low == high``) where the protocol is deterministic, and
bounded where it races. In ZooKeeper a partition handed from one member to another is probed by its
new owner with a watched ``get``; whether the old owner's release lands before the probe (no watch
left, no notification) or after it (one notification) is a race, so the notifications of a join
lie between none and one per moved partition. selfbalance's members race for claims as Kafka 0.8's
did: a claim attempt that finds one still held is repeated after the backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Count:
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Count:
        return cls(value, value)

    @property
    def deterministic(self) -> bool:
        return self.low == self.high

    @property
    def mid(self) -> float:
        return (self.low + self.high) / 2

    def residual(self, measured: float) -> float:
        """Measured minus the nearest value the model allows (0 inside the interval)."""
        if measured < self.low:
            return measured - self.low
        if measured > self.high:
            return measured - self.high
        return 0.0

    def holds(self, measured: float, tolerance: float = 0.10) -> bool:
        """``measured`` is inside the interval, widened by ``tolerance`` unless it is exact."""
        if self.deterministic:
            return measured == self.low
        return self.low * (1 - tolerance) <= measured <= self.high * (1 + tolerance)

    def __str__(self) -> str:
        return f"{self.low:g}" if self.deterministic else f"{self.low:g}-{self.high:g}"


@dataclass(frozen=True)
class Prediction:
    """One design/variant/event. ZooKeeper counts are the members' own counted calls
    (:mod:`zk_mode.counting`: reads, writes with each op of a multi, watch notifications received);
    coordinator counts are group requests at the coordinator (heartbeats left out, as ZooKeeper's
    pings are) and records appended to ``__consumer_offsets``."""

    design: str
    variant: str
    event: str
    zk_reads: Count
    zk_writes: Count
    zk_watch_events: Count
    coordinator_requests: Count
    offsets_records: Count
    bytes: Count
    round_trips: float  # on the critical path: one per request and response, 0.5 per push
    detection_ms: tuple[float, float]  # (earliest, latest) the group can notice the event
    cites: tuple[str, ...] = field(default=())

"""An analytic cost model of both designs: pure, standard library (and our own pure assignors).

``predict(mode, variant, event, workload)`` gives, per design, variant and event (cold start,
join, graceful leave, crash, coordinator failover, ZooKeeper leader loss), the ZooKeeper reads,
writes and watch notifications, the coordinator's requests and offsets-topic records, an estimate
of the bytes, the round trips on the critical path and the detection bound, as functions of the
members N, partitions P, topics, the partitions the assignor moves and the timeouts. The formulas
and the code paths they count are in :mod:`bench.model.zookeeper` and :mod:`bench.model.coordinator`;
``rebalance-lab join-cost`` prints them beside what it measures, and a test holds them to it.
"""

from __future__ import annotations

from . import coordinator, zookeeper
from .prediction import Count, Prediction
from .workload import EVENTS, Moves, Workload, moves

#: rebalances.csv ``action`` -> the model's event.
EVENT_OF_ACTION = {
    "start_members": "cold_start",
    "add_members": "join",
    "stop_member": "leave",
    "remove_members": "leave",
    "kill_member": "crash",
    "kill_coordinator": "coordinator_failover",
    "stop_zk": "zk_leader_loss",
}

#: Bytes of one request or answer's framing (ZooKeeper's header with the path, Kafka's header with
#: the group id), the estimate's per-call term; payloads are added where they dominate.
FRAME_BYTES = 60
REGISTRATION_BYTES = 110  # a JSON subscription: member id, topics, time
SHARE_BYTES_PER_PARTITION = 14  # ["topic",p], in the assignment znode and SyncGroup's answer


def predict(mode: str, variant: str, event: str, w: Workload) -> Prediction:
    """The model's prediction; ValueError for an unknown design, variant or event."""
    if event not in EVENTS:
        raise ValueError(f"event: expected one of {', '.join(EVENTS)}, got {event!r}")
    none = Count.exact(0)
    assignment_bytes = w.total_partitions * SHARE_BYTES_PER_PARTITION + w.members * REGISTRATION_BYTES // 2
    if mode == "zk":
        unknown = Count(0, float("inf"))  # no formula: cold starts race, setpartitioner's departures
        if event == "join":
            reads, writes, events = zookeeper.join_counts(variant, w)
        elif event in ("leave", "crash"):
            reads, writes, events = zookeeper.departure_counts(variant, event, w) or (unknown,) * 3
        elif event in ("coordinator_failover", "zk_leader_loss"):
            # No ZooKeeper design has a coordinator; losing a ZooKeeper leader within the session
            # timeout moves no partition (kazoo reconnects and re-sends its watches in one request).
            reads = writes = events = none
        else:
            reads = writes = events = unknown
        calls = Count(reads.low + writes.low, reads.high + writes.high)
        byte_count = Count(
            calls.low * FRAME_BYTES + events.low * assignment_bytes,
            calls.high * FRAME_BYTES + events.high * assignment_bytes,
        )
        return Prediction(
            "zk",
            variant,
            event,
            reads,
            writes,
            events,
            none,
            none,
            byte_count,
            zookeeper.critical_path(variant, event, w) or 0.0,
            zookeeper.detection_ms(event, w),
            ("bench.model.zookeeper",),
        )
    if mode == "coordinator":
        requests, records = coordinator.counts(event, w)
        byte_count = Count(
            requests.low * FRAME_BYTES + w.members * assignment_bytes,
            requests.high * FRAME_BYTES + w.members * assignment_bytes,
        )
        return Prediction(
            "coordinator",
            variant,
            event,
            none,
            none,
            none,
            requests,
            records,
            byte_count,
            coordinator.critical_path(event) or 0.0,
            coordinator.detection_ms(event, w),
            ("bench.model.coordinator",),
        )
    raise ValueError(f"mode: expected zk or coordinator, got {mode!r}")


def critical_path(mode: str, variant: str, event: str, w: Workload | None = None) -> float | None:
    """The documented critical-path round trips of ``event``, or None."""
    if mode == "zk":
        return zookeeper.critical_path(variant, event, w)
    if mode == "coordinator":
        return coordinator.critical_path(event)
    return None


__all__ = [
    "EVENTS",
    "EVENT_OF_ACTION",
    "Count",
    "Moves",
    "Prediction",
    "Workload",
    "critical_path",
    "moves",
    "predict",
]

"""The server-side assignors of KIP-848: the coordinator, not a leader member, computes the plan.

Kafka 4.0 ships two (``group.consumer.assignors`` = ``uniform,range``; the first is the default), in
``org.apache.kafka.coordinator.group.assignor``: :class:`UniformAssignor` and :class:`RangeAssignor`.
A member names one in ConsumerGroupHeartbeat's ``ServerAssignor`` (``group.remote.assignor`` on
librdkafka, ``group.remote.assignor`` / ``group.assignor`` on the Java client); the group uses the
one most of its members name (``ConsumerGroup.computePreferredServerAssignor``), else the default.

Both are pure: ``assign(members, topics, current)`` with ``members`` the subscription of each member
id, ``topics`` the partition count of each subscribed topic that exists, ``current`` the group's
current target assignment; the result is every member's new target (members without partitions get
an empty one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

#: topic -> partition ids; one member's target or current assignment.
Partitions = Mapping[str, frozenset[int]]


class ServerAssignor(Protocol):
    name: str

    def assign(
        self,
        members: Mapping[str, tuple[str, ...]],
        topics: Mapping[str, int],
        current: Mapping[str, Partitions],
    ) -> dict[str, dict[str, frozenset[int]]]: ...


def _as_dict(owned: Mapping[str, set[tuple[str, int]]]) -> dict[str, dict[str, frozenset[int]]]:
    out: dict[str, dict[str, frozenset[int]]] = {}
    for member, tps in owned.items():
        by_topic: dict[str, set[int]] = {}
        for topic, partition in tps:
            by_topic.setdefault(topic, set()).add(partition)
        out[member] = {t: frozenset(ps) for t, ps in sorted(by_topic.items())}
    return out


class UniformAssignor:
    """Balanced and sticky, as Kafka's ``UniformAssignor`` (``UniformHomogeneousAssignmentBuilder``
    when every member subscribes to the same topics, ``UniformHeterogeneousAssignmentBuilder``
    otherwise): every member ends within one partition of every other member that could take the same
    partitions, and a partition stays with its current owner unless balance needs it elsewhere.

    The steps are the builders' in spirit, not line by line: (1) keep each member's current target
    partitions that it still subscribes to, at most the balanced quota of the homogeneous case;
    (2) hand each unassigned partition (in topic, partition order) to the eligible member owning
    fewest; (3) move partitions one at a time from the most to the least loaded eligible member while
    they differ by more than one. The partition-by-partition result may differ from Kafka's where
    several balanced answers exist; balance and stickiness, which the harness measures, are the same.
    """

    name = "uniform"

    def assign(
        self,
        members: Mapping[str, tuple[str, ...]],
        topics: Mapping[str, int],
        current: Mapping[str, Partitions],
    ) -> dict[str, dict[str, frozenset[int]]]:
        ids = sorted(members)
        if not ids:
            return {}
        subscribed = {m: {t for t in members[m] if t in topics} for m in ids}
        all_partitions = sorted({(t, p) for m in ids for t in subscribed[m] for p in range(topics[t])})
        owned: dict[str, set[tuple[str, int]]] = {m: set() for m in ids}
        homogeneous = len({frozenset(s) for s in subscribed.values()}) == 1
        quota = -(-len(all_partitions) // len(ids)) if homogeneous else len(all_partitions)
        taken: set[tuple[str, int]] = set()
        for m in ids:  # (1) stickiness
            keep = sorted(
                (t, p)
                for t, ps in current.get(m, {}).items()
                if t in subscribed[m]
                for p in ps
                if p < topics[t] and (t, p) not in taken
            )[:quota]
            owned[m].update(keep)
            taken.update(keep)
        for tp in all_partitions:  # (2) the unassigned partitions
            if tp in taken:
                continue
            eligible = [m for m in ids if tp[0] in subscribed[m]]
            target = min(eligible, key=lambda m: (len(owned[m]), m))
            owned[target].add(tp)
        while True:  # (3) balance
            moved = False
            for giver in sorted(ids, key=lambda m: (-len(owned[m]), m)):
                for tp in sorted(owned[giver], reverse=True):
                    eligible = [m for m in ids if tp[0] in subscribed[m] and m != giver]
                    if not eligible:
                        continue
                    taker = min(eligible, key=lambda m: (len(owned[m]), m))
                    if len(owned[giver]) - len(owned[taker]) > 1:
                        owned[giver].discard(tp)
                        owned[taker].add(tp)
                        moved = True
                        break
                if moved:
                    break
            if not moved:
                return _as_dict(owned)


class RangeAssignor:
    """Kafka's server ``RangeAssignor``: per topic, the members subscribed to it in member-id order
    take contiguous ranges, the first ``partitions % members`` one more. Co-partitioned topics
    (same partition count, same subscribers) land on the same member, which is what ``range`` is
    for. As Kafka's (``RangeAssignor.assignHomogeneousGroup``) it recomputes the ranges from the
    member order at every epoch, so how many partitions a join moves depends on where the new member
    id sorts; Kafka orders static members by instance id first (``sortMemberIds``), this one by
    member id only.
    """

    name = "range"

    def assign(
        self,
        members: Mapping[str, tuple[str, ...]],
        topics: Mapping[str, int],
        current: Mapping[str, Partitions],
    ) -> dict[str, dict[str, frozenset[int]]]:
        owned: dict[str, set[tuple[str, int]]] = {m: set() for m in members}
        for topic in sorted(topics):
            subscribers = sorted(m for m, subs in members.items() if topic in subs)
            if not subscribers:
                continue
            count = topics[topic]
            base, extra = divmod(count, len(subscribers))
            start = 0
            for i, m in enumerate(subscribers):
                size = base + (1 if i < extra else 0)
                owned[m].update((topic, p) for p in range(start, start + size))
                start += size
        return _as_dict(owned)


#: ``group.consumer.assignors``: name -> assignor; the first is the default.
SERVER_ASSIGNORS: dict[str, ServerAssignor] = {a.name: a for a in (UniformAssignor(), RangeAssignor())}
DEFAULT_SERVER_ASSIGNOR = "uniform"

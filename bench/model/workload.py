"""What a prediction is a function of: the group's shape and the event's partition moves.

``moved`` comes from the assignor's output, not from a guess: :func:`moves` runs the group's assignor
(:mod:`group_api.assignors`, the same pure function both modes run) on the membership before and
after the event and counts, per member, the partitions it gives up and gains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from group_api.assignors import assign

#: The events a prediction is made for.
EVENTS = ("cold_start", "join", "leave", "crash", "coordinator_failover", "zk_leader_loss")


@dataclass(frozen=True)
class Moves:
    """Per member of the group after the event: partitions given up and gained; the moved total."""

    lost: dict[str, int]
    gained: dict[str, int]
    shares: dict[str, int]  # partitions each member holds after the event

    @property
    def moved(self) -> int:
        return sum(self.gained.values())

    def changed(self, members: Sequence[str]) -> int:
        """How many of ``members`` have a share that changed."""
        return sum(1 for m in members if self.lost.get(m, 0) or self.gained.get(m, 0))


def member_names(n: int) -> list[str]:
    """Names sorted as the real ids are (``m<i>-<uuid>``: ``m1-…`` sorts before ``m10…``)."""
    return [f"m{i}" for i in range(n)]


def moves(
    before: Sequence[str], after: Sequence[str], partitions: int, topics: int = 1, assignor: str = "range"
) -> Moves:
    """The assignor's moves from the membership ``before`` to ``after`` (``topics`` topics of
    ``partitions`` each, every member subscribed to all). Members only ``before`` lose theirs."""
    counts = {f"t{i}": partitions for i in range(topics)}
    subs = {m: list(counts) for m in before}
    old = assign(assignor, subs, counts) if before else {}
    new = assign(assignor, {m: list(counts) for m in after}, counts, previous=old) if after else {}
    lost: dict[str, int] = {}
    gained: dict[str, int] = {}
    for m in set(old) | set(new):
        was, now = set(old.get(m, ())), set(new.get(m, ()))
        lost[m] = len(was - now)
        gained[m] = len(now - was)
    return Moves(lost, gained, {m: len(p) for m, p in new.items()})


@dataclass(frozen=True)
class Workload:
    """One event on one group: ``members`` after the event (before, for a leave or a crash),
    ``partitions`` per topic, ``topics``, and the knobs a count or a bound depends on."""

    members: int
    partitions: int
    topics: int = 1
    assignor: str = "range"
    commits: bool = False  # auto-commit on: commits before a hand-over and read-backs after it
    commit_interval_ms: int = 1_000
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 2_000
    replicas: int = 3  # __consumer_offsets replication factor (coordinator mode)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def total_partitions(self) -> int:
        return self.partitions * self.topics

    def moves(self, event: str) -> Moves:
        """The assignor's moves for ``event``: the last member joins, or leaves/crashes."""
        names = member_names(self.members)
        if event == "join":
            return moves(names[:-1], names, self.partitions, self.topics, self.assignor)
        if event in ("leave", "crash"):
            return moves(names, names[:-1], self.partitions, self.topics, self.assignor)
        if event == "cold_start":
            return moves([], names, self.partitions, self.topics, self.assignor)
        return moves(names, names, self.partitions, self.topics, self.assignor)

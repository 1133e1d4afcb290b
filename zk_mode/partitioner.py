"""kazoo's own ``SetPartitioner``, wrapped behind the interface as it is: the peer baseline.

The recipe joins a ShallowParty under ``partitioner/party``, waits until the party has been still for
``time_boundary`` seconds (kazoo's default 30 s; scenarios usually lower it), stripes the sorted
items over the sorted members and takes one kazoo ``Lock`` per item under ``partitioner/locks``.
Any party change or connection state change other than LOST moves it to RELEASE: every member drops
every lock (stop-the-world) and allocates again.

The wrapper only translates states into events: ACQUIRED -> read the offsets back, ``assigned``;
RELEASE -> commit the owned offsets, ``revoked``, then ``release_set()`` (offsets as
:mod:`zk_mode.member` says, around the recipe: it knows nothing of them). The recipe has no generation, so the wrapper uses the party's ``cversion``
at acquisition (one ``exists`` per acquisition, counted like every other call).

Round trips: the recipe's own, which this wrapper does not change. Every member gives back its locks
one by one (one delete each) and takes its new share one lock after another (``Lock.acquire``: an
``ensure_path`` exists, a sequential create and a ``get_children``: 3 each), after the party held
still for ``time_boundary``; so a rebalance's critical path grows with the share, about
3·⌈P/N⌉ + ⌈P/(N-1)⌉ round trips plus the detection and the joiner's handshake
(:func:`bench.model.zookeeper.setpartitioner_round_trips`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from kazoo.recipe.partitioner import SetPartitioner

from group_api import Assignment, EventKind, MemberState

from .member import ZkMember

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionerOptions:
    time_boundary_s: float = 30.0  # kazoo's default: how long the party must be still
    max_reaction_time_s: float = 1.0  # kazoo's default: lock acquisition timeout per try

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> PartitionerOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in options.items() if k in known})


class _Wake:
    """Stands in for the recipe's ``state_change_event``: a state change wakes our worker."""

    def __init__(self, member: ZkMember) -> None:
        self._member = member

    def set(self) -> None:
        self._member.submit("poll")

    def clear(self) -> None:
        pass


def item_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


class SetPartitionerMember(ZkMember):
    #: A safety net: the recipe's state changes wake the worker, this catches any it misses.
    poll_interval = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = PartitionerOptions.from_options(self.config.options)
        self._partitioner: SetPartitioner | None = None
        self._items: dict[str, tuple[str, int]] = {}  # filled in _join: the catalog is read in start()

    def _join(self) -> None:
        self._items = {item_name(t, p): (t, p) for t, p in self.all_partitions()}
        self._partitioner = self.client.SetPartitioner(
            self.paths.partitioner,
            set=sorted(self._items),
            identifier=self.member_id,
            time_boundary=self.options.time_boundary_s,
            max_reaction_time=self.options.max_reaction_time_s,
            state_change_event=_Wake(self),
        )
        self.emit(EventKind.JOINED, znode=f"{self.paths.partitioner}/party")
        self._task_poll()

    def _resync(self) -> None:
        self._task_poll()

    def _task_poll(self) -> None:
        p = self._partitioner
        if p is None or self._suspended:
            return
        if p.failed:
            self._partitioner = None  # the recipe is unusable now; a new session makes a new one
        elif p.release:
            # Commit while the locks still stand, as 0.8.2 commits before releasing ownership.
            self._give_up(self._owned, reason="rebalance")
            self.state = MemberState.REBALANCING
            p.release_set()
        elif p.acquired and self.state != MemberState.STABLE:
            share = sorted(self._items[item] for item in p)
            stat = self.client.exists(f"{self.paths.partitioner}/party")
            generation = stat.cversion if stat else None
            self._take_offsets(share, generation)
            self.generation = generation
            self._owned = set(share)
            self._set_assignment(Assignment.of(generation or 0, share, None, self.member_id))
            self.state = MemberState.STABLE
            self.emit(EventKind.ASSIGNED, generation=generation, partitions=share, leader=None)

    def _leave_group(self) -> None:
        if self._partitioner is not None:
            self._partitioner.finish()
            self._partitioner = None

"""The one fold of member events into who owns what, for the runner's waits, the checker and the metrics.

Counted ownership follows the members' reports: ``assigned`` is the member's full set from now on,
``revoked`` removes, ``left``/``session_lost`` clear. What the events alone cannot say is set from
outside with :meth:`GroupOwnership.change`: a killed member is ``dead`` (the runner knows whom it
killed, :meth:`GroupOwnership.mark_dead`; the replay reads it from the action records), a paused one
``paused`` and, after the resume, ``awaiting_report`` until its next ownership event (only the
replay knows pauses). Dead, gone (``left``) and paused members count as owning nothing.

A group is *converged* when live members exist, hold one generation and own every partition exactly
once; *stable* when they hold one generation and each last reported an assignment. The runner's
"stable" and the checker's "converged" are the same fold asked the same question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from group_api import Event, EventKind, TopicPartition

#: Member events after which a woken member's reports count again.
OWNERSHIP_EVENTS = frozenset({EventKind.ASSIGNED, EventKind.REVOKED, EventKind.LEFT, EventKind.SESSION_LOST})


@dataclass
class MemberOwnership:
    reported: frozenset[TopicPartition] = frozenset()  # what the member last said it owns
    generation: int | None = None
    leader: str | None = None
    dead: bool = False
    gone: bool = False  # left gracefully
    paused: bool = False  # SIGSTOPped: not live, owns nothing
    awaiting_report: bool = False  # resumed, owns nothing until its next ownership event
    settled: bool = False  # its last ownership event was ``assigned`` (not mid-rebalance)

    @property
    def live(self) -> bool:
        return not (self.dead or self.gone or self.paused)

    @property
    def counted(self) -> frozenset[TopicPartition]:
        if self.dead or self.gone or self.paused or self.awaiting_report:
            return frozenset()
        return self.reported


class GroupOwnership:
    """One group's members with incrementally kept owners, live generations and overlaps."""

    def __init__(self, partitions: Iterable[TopicPartition]) -> None:
        self.partitions = frozenset(partitions)
        self.members: dict[str, MemberOwnership] = {}
        self.owners: dict[TopicPartition, set[str]] = {}
        self._generations: Counter[int | None] = Counter()  # over live members
        self._live = 0
        self._unowned = len(self.partitions)
        self.overlapping: set[TopicPartition] = set()

    # The members' contributions are removed before a change and added back after it.
    def _remove(self, name: str, m: MemberOwnership) -> None:
        for tp in m.counted:
            owners = self.owners[tp]
            owners.discard(name)
            if len(owners) == 1:
                self.overlapping.discard(tp)
            if not owners:
                del self.owners[tp]
                if tp in self.partitions:
                    self._unowned += 1
        if m.live:
            self._live -= 1
            self._generations[m.generation] -= 1
            if not self._generations[m.generation]:
                del self._generations[m.generation]

    def _add(self, name: str, m: MemberOwnership) -> None:
        for tp in m.counted:
            owners = self.owners.setdefault(tp, set())
            if not owners and tp in self.partitions:
                self._unowned -= 1
            owners.add(name)
            if len(owners) > 1:
                self.overlapping.add(tp)
        if m.live:
            self._live += 1
            self._generations[m.generation] += 1

    def apply_all(self, events: Iterable[Event]) -> GroupOwnership:
        for event in events:
            self.apply(event)
        return self

    def mark_dead(self, member: str) -> None:
        """The member's process is known dead (killed): it owns nothing from now on."""
        self.change(member, dead=True)

    def change(self, name: str, **updates: Any) -> None:
        m = self.members.get(name)
        if m is None:
            m = self.members[name] = MemberOwnership()
        else:
            self._remove(name, m)
        for key, value in updates.items():
            setattr(m, key, value)
        self._add(name, m)

    def apply(self, event: Event) -> None:
        m = self.members.get(event.member) or MemberOwnership()
        woken = {"awaiting_report": False} if event.kind in OWNERSHIP_EVENTS else {}
        if event.kind == EventKind.ASSIGNED:
            self.change(
                event.member,
                reported=frozenset(event.partitions or ()),
                generation=event.generation,
                leader=event.extra.get("leader"),
                gone=False,
                settled=True,
                **woken,
            )
        elif event.kind == EventKind.REVOKED:
            self.change(
                event.member, reported=m.reported - frozenset(event.partitions or ()), settled=False, **woken
            )
        elif event.kind in (EventKind.LEFT, EventKind.SESSION_LOST):
            self.change(
                event.member,
                reported=frozenset(),
                generation=None,
                gone=event.kind == EventKind.LEFT,
                settled=False,
                **woken,
            )
        else:
            self.change(event.member, gone=False if event.kind == EventKind.JOINED else m.gone)

    # -- questions -------------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return self._live

    @property
    def unowned(self) -> int:
        """Partitions of the group that no member counts as owning."""
        return self._unowned

    def generation(self, members: Iterable[str] | None = None) -> int | None:
        """The one generation every live member (or every given one that has reported) holds, else None."""
        if members is not None:
            generations = {self.members[m].generation for m in members if m in self.members}
            return generations.pop() if len(generations) == 1 else None
        if len(self._generations) == 1:
            return next(iter(self._generations))
        return None

    def latest_generation(self) -> int | None:
        known = [g for g in self._generations if g is not None]
        return max(known) if known else None

    def stable(self) -> bool:
        """Live members exist, hold one generation, and each last reported an assignment."""
        if self._live == 0 or self.generation() is None:
            return False
        return all(m.settled and not m.awaiting_report for m in self.members.values() if m.live)

    def converged(self, members: Iterable[str] | None = None) -> bool:
        """Live members exist, hold one generation, and own every partition exactly once.

        With ``members``: those members (every one must have reported) hold one generation and what
        they count as owning is every partition exactly once, whatever the others own.
        """
        if members is not None:
            return self._converged_among(list(members))
        return (
            self._live > 0
            and self.generation() is not None
            and self._unowned == 0
            and not self.overlapping
            and all(tp in self.partitions for tp in self.owners)
        )

    def live_members(self) -> list[str]:
        return [n for n, m in self.members.items() if m.live]

    def _converged_among(self, names: list[str]) -> bool:
        if not names or any(m not in self.members for m in names):
            return False
        states = [self.members[m] for m in names]
        generations = {s.generation for s in states}
        if len(generations) != 1 or None in generations:
            return False
        owned = [tp for s in states for tp in s.counted]
        return len(owned) == len(set(owned)) and set(owned) == self.partitions

    def leaders(self, members: Iterable[str] | None = None) -> set[str | None]:
        """The leaders the live (or the given) members last heard of."""
        names = self.live_members() if members is None else members
        return {self.members[m].leader for m in names if m in self.members}

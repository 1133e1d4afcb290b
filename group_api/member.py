"""The consumer interface: one member of a consumer group, whatever elects its leader.

A member is started, joins in the background (its own threads or event loop), keeps an
:class:`Assignment`, and reports every step through an :data:`~group_api.events.EventSink`.
``leave()`` is the graceful exit (partitions revoked, the group told); ``close()`` frees resources
and is safe to call at any time, also after ``leave()`` or a failure.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from .config import MemberConfig
from .events import EventKind, EventSink, TopicPartition, stamp

#: How long a leave may take on top of its one bounded server request (coordinator mode: one
#: ``request.timeout.ms`` for LeaveGroup; zk mode: none, see ``ZkMember.leave``): a second for the
#: member's routines to stop, a second for the rest. Whatever the routines were doing, ``leave()``
#: returns within it, and a member that cannot reach its servers says so and leaves anyway.
LEAVE_BOUND_S = 2.0


class MemberState(StrEnum):
    UNJOINED = "unjoined"  # created, not started, or between sessions
    REBALANCING = "rebalancing"  # joined; waiting for or applying a new generation
    STABLE = "stable"  # owns the partitions of the current generation
    LEFT = "left"  # left gracefully; terminal
    FAILED = "failed"  # gave up (see the log); terminal


@dataclass(frozen=True)
class Assignment:
    """One member's share of one generation."""

    generation: int
    partitions: tuple[TopicPartition, ...]
    leader_id: str | None
    is_leader: bool

    @classmethod
    def of(
        cls, generation: int, partitions: Iterable[TopicPartition], leader_id: str | None, member_id: str
    ) -> Assignment:
        return cls(generation, tuple(sorted(partitions)), leader_id, leader_id == member_id)


class GroupMember(ABC):
    """Base class for both modes: member identity, state, and event emission."""

    #: ``zk`` or ``coordinator``; set by each implementation.
    mode: ClassVar[str]

    def __init__(
        self,
        config: MemberConfig,
        sink: EventSink,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config
        self._sink = sink
        self._clock = clock
        prefix = config.member_name or f"{config.group}-{os.getpid()}"
        self.member_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.state = MemberState.UNJOINED
        self._assignment: Assignment | None = None
        self._lock = threading.RLock()

    @property
    def variant(self) -> str:
        return self.config.variant or "default"

    # -- the interface -------------------------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Connect and join the group; returns promptly, joining continues in the background."""

    @abstractmethod
    def leave(self) -> None:
        """Leave gracefully: revoke owned partitions, tell the group, emit ``left``; returns within
        the mode's leave bound (:data:`LEAVE_BOUND_S` plus one bounded request), also when the
        servers are gone."""

    @abstractmethod
    def close(self) -> None:
        """Release every resource. Idempotent; does not wait for the group."""

    def assignment(self) -> Assignment | None:
        """The partitions this member owns now, or ``None`` while it owns nothing."""
        with self._lock:
            return self._assignment

    # -- helpers for implementations -----------------------------------------------------------

    def emit(
        self,
        kind: EventKind,
        *,
        generation: int | None = None,
        partitions: Iterable[TopicPartition] | None = None,
        **extra: Any,
    ) -> None:
        self._sink(
            stamp(
                kind,
                member=self.member_id,
                group=self.config.group,
                mode=self.mode,
                variant=self.variant,
                generation=generation,
                partitions=partitions,
                clock=self._clock,
                **extra,
            )
        )

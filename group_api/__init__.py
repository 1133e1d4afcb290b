"""The shared consumer interface: standard library only, the one thing both modes import."""

from .config import (
    ASSIGNOR_NAMES,
    DEFAULT_AUTO_COMMIT_INTERVAL_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    CommitSettings,
    ConfigError,
    MemberConfig,
)
from .events import (
    OFFSET_EVENTS,
    Event,
    EventKind,
    EventSink,
    JsonLinesSink,
    ListSink,
    TopicPartition,
    read_events,
    stamp,
)
from .member import LEAVE_BOUND_S, Assignment, GroupMember, MemberState

__all__ = [
    "ASSIGNOR_NAMES",
    "DEFAULT_AUTO_COMMIT_INTERVAL_MS",
    "LEAVE_BOUND_S",
    "DEFAULT_SESSION_TIMEOUT_MS",
    "Assignment",
    "CommitSettings",
    "ConfigError",
    "Event",
    "EventKind",
    "EventSink",
    "GroupMember",
    "JsonLinesSink",
    "ListSink",
    "MemberConfig",
    "MemberState",
    "OFFSET_EVENTS",
    "TopicPartition",
    "read_events",
    "stamp",
]

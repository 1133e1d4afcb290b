"""Member configuration: every default is declared here, once.

Both modes read the same :class:`MemberConfig`. A field that only one mode uses says so; a mode
ignores what it does not need rather than failing on it, so one scenario can drive both modes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Assignor names understood by both modes (Kafka's ``partition.assignment.strategy`` names).
ASSIGNOR_NAMES = ("range", "roundrobin", "sticky")

#: Session timeouts each design uses by default when the config leaves it unset:
#: Kafka 0.8's ``zookeeper.session.timeout.ms`` and the modern consumer's ``session.timeout.ms``.
DEFAULT_SESSION_TIMEOUT_MS = {"zk": 6_000, "coordinator": 45_000}

_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class ConfigError(ValueError):
    """A member or scenario setting is invalid; the message names the field and what was expected."""


@dataclass(frozen=True)
class MemberConfig:
    """What one group member needs to know.

    Attributes:
        group: consumer group id (letters, digits, ``._-``).
        topics: the topics this member subscribes to.
        mode: ``zk`` or ``coordinator`` (see :mod:`group_api.registry`).
        variant: the mode's variant (``zk``: chain, herd, selfbalance, setpartitioner;
            ``coordinator``: classic). ``None`` picks the mode's default.
        assignor: ``range`` | ``roundrobin`` | ``sticky``, as Kafka names them.
        member_name: a readable prefix for the member id (client.id); defaults to the host's pid.
        session_timeout_ms: ZooKeeper session timeout (zk) or group session timeout (coordinator);
            ``None`` takes :data:`DEFAULT_SESSION_TIMEOUT_MS` for the mode.
        heartbeat_interval_ms: coordinator mode: heartbeat period (Kafka default 3 s).
        rebalance_timeout_ms: coordinator mode: ``max.poll.interval.ms`` sent as the rebalance timeout.
        zk_hosts: zk mode: ZooKeeper connect string ``host:port,...``.
        zk_root: zk mode: root znode holding the topic catalog and the groups; its top-level
            component is the namespace ZooKeeper's per-namespace counters report.
        bootstrap: coordinator mode: ``host:port,...`` of brokers.
        group_instance_id: coordinator mode: static membership id (KIP-345).
        options: variant-specific knobs (e.g. ``time_boundary_s`` for setpartitioner).
    """

    group: str
    topics: tuple[str, ...]
    mode: str = "zk"
    variant: str | None = None
    assignor: str = "range"
    member_name: str | None = None
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 300_000
    zk_hosts: str | None = None
    zk_root: str = "/zkmode"
    bootstrap: str | None = None
    group_instance_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.topics, str | list):
            object.__setattr__(
                self, "topics", tuple([self.topics] if isinstance(self.topics, str) else self.topics)
            )
        if not _GROUP_RE.match(self.group or ""):
            raise ConfigError(f"group: expected 1-200 of [A-Za-z0-9._-], got {self.group!r}")
        if not self.topics:
            raise ConfigError("topics: expected at least one topic")
        for topic in self.topics:
            if not _GROUP_RE.match(topic):
                raise ConfigError(f"topics: expected names of [A-Za-z0-9._-], got {topic!r}")
        if self.assignor not in ASSIGNOR_NAMES:
            raise ConfigError(f"assignor: expected one of {', '.join(ASSIGNOR_NAMES)}, got {self.assignor!r}")
        if self.session_timeout_ms is not None and self.session_timeout_ms <= 0:
            raise ConfigError(
                f"session_timeout_ms: expected a positive number, got {self.session_timeout_ms}"
            )
        if not self.zk_root.startswith("/") or self.zk_root.endswith("/") and self.zk_root != "/":
            raise ConfigError(f"zk_root: expected an absolute znode path, got {self.zk_root!r}")

    @property
    def session_timeout(self) -> int:
        """The session timeout in ms, with the mode's default filled in."""
        if self.session_timeout_ms is not None:
            return self.session_timeout_ms
        return DEFAULT_SESSION_TIMEOUT_MS.get(self.mode, 10_000)

    def with_(self, **changes: Any) -> MemberConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

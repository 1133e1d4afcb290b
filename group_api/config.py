"""Member configuration: every default is declared here, once.

Both modes read the same :class:`MemberConfig`. A field that only one mode uses says so; a mode
ignores what it does not need rather than failing on it, so one scenario can drive both modes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

#: Assignor names understood by both modes (Kafka's ``partition.assignment.strategy`` names).
ASSIGNOR_NAMES = ("range", "roundrobin", "sticky")

#: Session timeouts each design uses by default when the config leaves it unset:
#: Kafka 0.8's ``zookeeper.session.timeout.ms`` and the modern consumer's ``session.timeout.ms``.
DEFAULT_SESSION_TIMEOUT_MS = {"zk": 6_000, "coordinator": 45_000}

#: ``auto.commit.interval.ms``: the Java consumer's default (Kafka 0.8's ZooKeeper consumer had
#: 60 s; both modes use this one value so their commit payloads compare).
DEFAULT_AUTO_COMMIT_INTERVAL_MS = 5_000

_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class ConfigError(ValueError):
    """A member or scenario setting is invalid; the message names the field and what was expected."""


@dataclass(frozen=True)
class MemberConfig:
    """What one group member needs to know.

    Every field's ``metadata["help"]`` says what it is (``rebalance-lab member`` builds its options
    from these fields: name, type, default and help); ``metadata["min"]`` is a number's lower bound.
    """

    group: str = field(metadata={"help": "Consumer group id (letters, digits, ._-)."})
    topics: tuple[str, ...] = field(metadata={"help": "Subscribed topic (repeatable, or comma-separated)."})
    mode: str = field(default="zk", metadata={"help": "zk or coordinator (see group_api.registry)."})
    variant: str | None = field(
        default=None,
        metadata={
            "help": "The mode's variant: zk: chain (default), herd, selfbalance, setpartitioner, curator (Java); "
            "coordinator: classic (default), cooperative (KIP-429, cooperative-sticky), java (Kafka's Java consumer)."
        },
    )
    assignor: str = field(
        default="range", metadata={"help": "range, roundrobin or sticky, as Kafka names them."}
    )
    member_name: str | None = field(
        default=None, metadata={"help": "Prefix of the member id (client.id); default: the host's pid."}
    )
    session_timeout_ms: int | None = field(
        default=None,
        metadata={
            "help": "ZooKeeper session timeout (zk) or group session timeout (coordinator). "
            "Default: the mode's (DEFAULT_SESSION_TIMEOUT_MS).",
            "min": 1,
        },
    )
    heartbeat_interval_ms: int = field(
        default=3_000, metadata={"help": "coordinator mode: heartbeat period (Kafka's default).", "min": 1}
    )
    rebalance_timeout_ms: int = field(
        default=300_000,
        metadata={"help": "coordinator mode: max.poll.interval.ms, sent as the rebalance timeout.", "min": 1},
    )
    zk_hosts: str | None = field(default=None, metadata={"help": "zk mode: ZooKeeper connect string."})
    zk_root: str = field(
        default="/zkmode",
        metadata={
            "help": "zk mode: root znode holding the topic catalog and the groups; its top-level "
            "component is the namespace ZooKeeper's per-namespace counters report."
        },
    )
    bootstrap: str | None = field(default=None, metadata={"help": "coordinator mode: brokers host:port,..."})
    group_instance_id: str | None = field(
        default=None, metadata={"help": "coordinator mode: static membership id (KIP-345)."}
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        hash=False,
        compare=False,
        metadata={"help": "Variant knob KEY=VALUE, e.g. time_boundary_s=2 (the variable: space-separated)."},
    )

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


_TRUE = {True, "true", "yes", "on"}  # 1 == True, 0 == False: the CLI passes 0/1 as ints
_FALSE = {False, "false", "no", "off"}


@dataclass(frozen=True)
class CommitSettings:
    """Auto-commit, as both modes read it from ``MemberConfig.options``.

    ``enable_auto_commit`` (default true, the Java consumer's ``enable.auto.commit`` and Kafka 0.8's
    ``auto.commit.enable``) and ``auto_commit_interval_ms`` (:data:`DEFAULT_AUTO_COMMIT_INTERVAL_MS`).
    A scenario's ``offsets: none`` sets ``enable_auto_commit=false`` for both modes.
    """

    enabled: bool = True
    interval_ms: int = DEFAULT_AUTO_COMMIT_INTERVAL_MS

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CommitSettings:
        raw_enabled = options.get("enable_auto_commit", True)
        key = raw_enabled.lower() if isinstance(raw_enabled, str) else raw_enabled
        if key in _TRUE:
            enabled = True
        elif key in _FALSE:
            enabled = False
        else:
            raise ConfigError(f"options.enable_auto_commit: expected true or false, got {raw_enabled!r}")
        interval = options.get("auto_commit_interval_ms", DEFAULT_AUTO_COMMIT_INTERVAL_MS)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
            raise ConfigError(
                f"options.auto_commit_interval_ms: expected a positive integer, got {interval!r}"
            )
        return cls(enabled, interval)

"""The member's settings (:class:`CoordinatorSettings`), its retry backoff and how it reads member ids."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from group_api import CommitSettings, ConfigError, MemberConfig

from .connection import parse_bootstrap

#: Kafka names a member ``client.id + "-" + UUID`` (``group.instance.id`` for static members).
_KAFKA_MEMBER_ID = re.compile(
    r"^(?P<client>.*)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def client_id_of(kafka_member_id: str) -> str:
    """The client id inside a coordinator-made member id: our members use their event ``member``
    id as client id, so followers can name the leader the way the leader's own events do."""
    match = _KAFKA_MEMBER_ID.match(kafka_member_id)
    return match.group("client") if match else kafka_member_id


@dataclass(frozen=True)
class CoordinatorSettings:
    """What the client needs, from :class:`MemberConfig` plus client knobs from ``config.options``.

    The knobs default to the Java consumer's values; set them with ``--option KEY=VALUE``.
    """

    bootstrap: str
    session_timeout_ms: int
    heartbeat_interval_ms: int
    rebalance_timeout_ms: int
    retry_backoff_ms: int = 100  # retry.backoff.ms
    retry_backoff_max_ms: int = 1_000  # retry.backoff.max.ms
    request_timeout_ms: int = 30_000  # request.timeout.ms
    auto_commit_interval_ms: int = CommitSettings.interval_ms  # auto.commit.interval.ms
    enable_auto_commit: bool = CommitSettings.enabled  # enable.auto.commit (false: offsets: none)
    #: Not a Java knob: how long the brokers may stay unreachable before the member says so on
    #: stderr (it keeps retrying, as the Java client does, unless ``bootstrap_give_up_ms`` is set).
    bootstrap_warn_ms: int = 10_000
    bootstrap_give_up_ms: int | None = None  # None: retry forever

    @classmethod
    def from_config(cls, config: MemberConfig) -> CoordinatorSettings:
        if not config.bootstrap:
            raise ConfigError("bootstrap: coordinator mode needs brokers as host:port,...")
        try:
            parse_bootstrap(config.bootstrap)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        knobs = {}
        for name in (
            "retry_backoff_ms",
            "retry_backoff_max_ms",
            "request_timeout_ms",
            "bootstrap_warn_ms",
            "bootstrap_give_up_ms",
        ):
            if name in config.options:
                value = config.options[name]
                if not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"options.{name}: expected a positive integer, got {value!r}")
                knobs[name] = value
        commits = CommitSettings.from_options(config.options)  # shared with zk mode
        return cls(
            bootstrap=config.bootstrap,
            auto_commit_interval_ms=commits.interval_ms,
            enable_auto_commit=commits.enabled,
            session_timeout_ms=config.session_timeout,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            rebalance_timeout_ms=config.rebalance_timeout_ms,
            **knobs,
        )


class Backoff:
    """Exponential backoff with +-20% jitter, as the Java client's ExponentialBackoff."""

    def __init__(self, initial_ms: int, max_ms: int) -> None:
        self.initial = initial_ms / 1000
        self.max = max_ms / 1000
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.max, self.initial * 2**self.attempts)
        self.attempts += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.attempts = 0

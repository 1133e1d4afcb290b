"""Heartbeat timing for a coordinator-mode member: pure bookkeeping on an injectable clock.

Modelled on kafka-python's ``kafka/coordinator/heartbeat.py``, with one deliberate difference: the
session is measured from the *send* time of the last request the coordinator answered, not from the
time the answer arrived. The coordinator resets its session timer when it receives a request, which
is never earlier than we sent it, so ``send time + session timeout`` is a safe lower bound of when
the coordinator may expire us. A member that was paused (SIGSTOP) and finds an old answer in its
socket on resume therefore still sees its session as expired and drops its partitions at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from group_api import ConfigError

log = logging.getLogger(__name__)


class Heartbeat:
    """When to send the next heartbeat, and whether the session may have expired.

    All times are seconds on ``clock`` (``time.monotonic`` unless a test injects a fake one); the
    settings are milliseconds, as Kafka names them.
    """

    def __init__(
        self,
        *,
        interval_ms: int,
        session_timeout_ms: int,
        retry_backoff_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_ms <= 0 or session_timeout_ms <= 0 or retry_backoff_ms < 0:
            raise ConfigError("heartbeat_interval_ms and session_timeout_ms must be positive")
        if interval_ms >= session_timeout_ms:
            raise ConfigError(
                f"heartbeat_interval_ms ({interval_ms}) must be lower than the session timeout "
                f"({session_timeout_ms})"
            )
        if interval_ms > session_timeout_ms / 3:
            # Kafka's documented rule of thumb (CommonClientConfigs): a third of the session.
            log.warning(
                "heartbeat interval %d ms is over a third of the session timeout %d ms",
                interval_ms,
                session_timeout_ms,
            )
        self.interval = interval_ms / 1000
        self.session_timeout = session_timeout_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self._clock = clock
        self.last_send = -math.inf
        # Send time of the newest request the coordinator answered for our current membership.
        self.last_acked_send = -math.inf
        self.failed = False

    def sent(self) -> float:
        """Record that a heartbeat goes out now; returns its send time for :meth:`acknowledged`."""
        self.last_send = self._clock()
        self.failed = False
        return self.last_send

    def acknowledged(self, sent_at: float) -> None:
        """The coordinator answered a request (heartbeat, SyncGroup) we sent at ``sent_at``."""
        self.last_acked_send = max(self.last_acked_send, sent_at)

    def fail(self) -> None:
        """The last heartbeat got no usable answer: retry after the backoff, not the interval."""
        self.failed = True

    def start_session(self, sent_at: float) -> None:
        """A new generation began with a request sent at ``sent_at``: restart both timers."""
        self.last_acked_send = sent_at
        self.last_send = sent_at
        self.failed = False

    def time_to_next_heartbeat(self) -> float:
        """Seconds until the next heartbeat is due (0 when due now)."""
        delay = self.retry_backoff if self.failed else self.interval
        return max(0.0, self.last_send + delay - self._clock())

    def should_heartbeat(self) -> bool:
        return self.time_to_next_heartbeat() == 0.0

    def session_deadline(self) -> float:
        """Clock time after which the coordinator may have expired our session."""
        return self.last_acked_send + self.session_timeout

    def time_to_session_expiry(self) -> float:
        return max(0.0, self.session_deadline() - self._clock())

    def session_expired(self) -> bool:
        return self._clock() > self.session_deadline()

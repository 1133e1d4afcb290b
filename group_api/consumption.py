"""Consuming records, as both modes read it: the settings from ``MemberConfig.options`` and the
payload the harness's producer writes.

``consume`` (default false: the member owns partitions but fetches nothing, as before records
flowed), ``processing_ms`` (per record, the scenario's ``processing_ms``) and ``auto_offset_reset``
(``earliest``, the default here so that a new group misses no record, or ``latest``; Kafka's
consumer defaults to latest). A member that consumes commits the position it reached.

Every record the harness produces carries ``<sequence> <produce time in epoch ms> `` then padding to
the scenario's ``record_bytes``; :func:`produce_time_ms` reads the time back (None for a record
another producer wrote).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ConfigError

_TRUE = (True, "true", "1", "yes")
_FALSE = (False, "false", "0", "no")
RESET_POLICIES = ("earliest", "latest")


@dataclass(frozen=True)
class ConsumeSettings:
    enabled: bool = False
    processing_ms: float = 0.0
    auto_offset_reset: str = "earliest"

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ConsumeSettings:
        raw = options.get("consume", False)
        key = raw.lower() if isinstance(raw, str) else raw
        if key not in _TRUE + _FALSE:
            raise ConfigError(f"options.consume: expected true or false, got {raw!r}")
        processing = options.get("processing_ms", 0)
        if isinstance(processing, bool) or not isinstance(processing, int | float) or processing < 0:
            raise ConfigError(f"options.processing_ms: expected a number >= 0, got {processing!r}")
        reset = options.get("auto_offset_reset", "earliest")
        if reset not in RESET_POLICIES:
            raise ConfigError(f"options.auto_offset_reset: expected earliest or latest, got {reset!r}")
        return cls(key in _TRUE, float(processing), reset)


def payload(sequence: int, produce_ms: int, size: int) -> bytes:
    """A harness record's value: sequence and produce time, padded to ``size`` bytes."""
    head = b"%d %d " % (sequence, produce_ms)
    return head + b"." * max(0, size - len(head))


def produce_time_ms(value: bytes | None) -> int | None:
    """The produce time a harness record carries, or None."""
    if not value:
        return None
    parts = value.split(b" ", 2)
    if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[1])

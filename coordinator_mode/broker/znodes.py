"""What the brokers' znode readers share: one way to decode, validate and log a znode's data.

Anything in ZooKeeper may have been written by someone else: not JSON, JSON of the wrong shape or
types, values past what the Kafka wire can carry (an id or epoch beyond int32, a port beyond 65535,
a billion partitions), or a layout version we do not know. Each reader in :mod:`.controller` (one
per znode kind) builds its value with :func:`read` and the validators here: it returns the parsed
value or, for anything else, logs the path and what it held and returns what "absent" means for that
znode (``None``, an empty mapping, ``NO_LEADER``). The callers never see an exception from data, so a
watch keeps firing and the controller keeps its duty; a broker stays up with whatever is readable.

Bounds are those of the wire fields the values end up in (Kafka's Metadata and LeaderAndIsr carry
broker ids, epochs and partition indexes as int32, ports as int32 but a TCP port is 16 bits), and
:data:`MAX_PARTITIONS` per topic, which keeps a hostile catalog entry from making a broker plan a
billion partitions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
#: More partitions per topic than any run here uses by far; a larger count is not taken as data.
MAX_PARTITIONS = 100_000
#: Kafka's replication factor is an int16 (CreateTopics' ``replication_factor``).
MAX_REPLICATION_FACTOR = 2**15 - 1
#: What a reader shows of a bad znode in its log line.
SHOWN_BYTES = 120

T = TypeVar("T")


class Unreadable(ValueError):
    """A znode's data is not what its kind holds; the message says which field and why."""


def read(kind: str, path: str, raw: bytes | None, build: Callable[[Any], T], absent: T) -> T:
    """``build(json)`` of ``raw``, or ``absent`` (logged with ``path``) when it is unreadable."""
    if raw is None:
        return absent  # no znode: nothing to log
    try:
        return build(json.loads(raw))
    except (ValueError, RecursionError) as exc:  # Unreadable, JSON, UTF-8, int digits, nesting
        log.warning(
            "unreadable %s znode %s (%s): %r; treating it as absent",
            kind,
            path,
            str(exc)[:200],
            (raw or b"")[:SHOWN_BYTES],
        )
        return absent


def obj(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable(f"not a JSON object but {type(value).__name__}")
    return value


def integer(value: Any, field: str, low: int, high: int) -> int:
    """A JSON integer (not a bool, float or string) within ``[low, high]``."""
    if type(value) is not int:
        raise Unreadable(f"{field} is not an integer: {value!r:.40}")
    if not low <= value <= high:
        raise Unreadable(f"{field} {value} is outside [{low}, {high}]")
    return value


def partition_index(key: str, partitions: int = MAX_PARTITIONS) -> int:
    """A partition number written as a JSON object key (``"0"``, ``"17"``)."""
    if not (isinstance(key, str) and key.isdigit() and key.isascii() and len(key) <= 10):
        raise Unreadable(f"partition key {key!r:.40} is not a partition number")
    return integer(int(key), "partition", 0, partitions - 1)


def broker_ids(value: Any, field: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise Unreadable(f"{field} is not a list")
    return tuple(integer(r, field, 0, INT32_MAX) for r in value)


def version(d: dict[str, Any], known: tuple[int, ...]) -> None:
    if "version" in d and d["version"] not in known:
        raise Unreadable(f"layout version {d['version']!r:.20} is not one of {known}")

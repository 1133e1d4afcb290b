"""Which offsets partition, and so which broker, coordinates a group.

Kafka maps a group to ``__consumer_offsets`` partition ``Utils.abs(groupId.hashCode()) % partitions``
(``GroupCoordinatorService.partitionFor``); the partition's leader is the group's coordinator. Java's
``String.hashCode`` runs over UTF-16 code units with signed 32-bit wrap-around, and ``Utils.abs`` maps
``Integer.MIN_VALUE`` to 0 (``Math.abs`` would leave it negative).
"""

from __future__ import annotations

#: ``offsets.topic.num.partitions`` default.
DEFAULT_OFFSETS_PARTITIONS = 50

_INT_MIN = -(2**31)


def java_string_hash(s: str) -> int:
    """``java.lang.String.hashCode()``: ``s[0]*31^(n-1) + ... + s[n-1]`` over UTF-16 units, as an int32."""
    h = 0
    data = s.encode("utf-16-be", errors="surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - 2**32 if h >= 2**31 else h


def java_abs(n: int) -> int:
    """``org.apache.kafka.common.utils.Utils.abs``: 0 for ``Integer.MIN_VALUE``, else ``abs(n)``."""
    return 0 if n == _INT_MIN else abs(n)


def partition_for(group: str, n: int = DEFAULT_OFFSETS_PARTITIONS) -> int:
    """The offsets partition that holds ``group`` (its leader is the group's coordinator)."""
    if n < 1:
        raise ValueError(f"partition count must be >= 1, got {n}")
    return java_abs(java_string_hash(group)) % n

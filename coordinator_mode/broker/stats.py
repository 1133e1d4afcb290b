"""The broker's counters, written to ``broker_stats.json``: per API (requests, bytes in and out) and
per offsets partition (records and bytes appended, fsyncs, replication fetches and bytes).

The per-partition row has the shape of what a real Kafka broker's JMX gives for a partition of
``__consumer_offsets`` (``kafka.log:type=Log`` end offsets, ``LogFlushStats``, the replica
fetcher's ``BytesPerSec``, ``RequestMetrics`` of ``FetchFollower``), so rows from either fit one table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..group.errors import ErrorCode
from ..group.records import OffsetCommitRecord, Record


@dataclass
class BrokerApiCounter:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # top-level error name -> responses


@dataclass
class PartitionCounter:
    """What this broker's replica of one offsets partition did.

    ``*_records`` and ``bytes_appended`` count every append to this replica, as leader (the
    coordinator's writes) or as follower (what it replicated); ``leader_*`` the leader's appends only,
    so that summing those over brokers counts each durable write once.
    """

    group_metadata_records: int = 0
    offset_commit_records: int = 0
    other_records: int = 0  # none here; on a real broker e.g. transaction markers
    bytes_appended: int = 0
    leader_records: int = 0
    leader_bytes: int = 0
    fsyncs: int = 0
    # Replication: a follower's Fetch answered with records for this partition, as leader
    # (``fetches_served``, ``fetch_bytes_out``) or received as follower (``fetches_received``,
    # ``fetch_bytes_in``). Fetches that found nothing new are only counted per API (FetchFollower).
    fetches_served: int = 0
    fetch_bytes_out: int = 0
    fetches_received: int = 0
    fetch_bytes_in: int = 0

    def appended(self, record: Record, size: int, as_leader: bool) -> None:
        if isinstance(record, OffsetCommitRecord):
            self.offset_commit_records += 1
        else:  # the classic group's record, or a consumer group's (KIP-848: member, target, current)
            self.group_metadata_records += 1
        self.bytes_appended += size
        if as_leader:
            self.leader_records += 1
            self.leader_bytes += size


@dataclass
class BrokerStats:
    """Per-API and per-partition counters, and what went wrong on the wire."""

    apis: dict[str, BrokerApiCounter] = field(default_factory=dict)
    partitions: dict[int, PartitionCounter] = field(default_factory=dict)  # offsets partition -> counters
    connections_total: int = 0
    connections_open: int = 0
    malformed_frames: int = 0
    unsupported_requests: int = 0

    def count(self, api: str, bytes_in: int, bytes_out: int, error_code: int = 0) -> None:
        c = self.apis.setdefault(api, BrokerApiCounter())
        c.requests += 1
        c.bytes_in += bytes_in
        c.bytes_out += bytes_out
        if error_code:
            name = (
                ErrorCode(error_code).name if error_code in ErrorCode._value2member_map_ else str(error_code)
            )
            c.errors[name] = c.errors.get(name, 0) + 1

    def partition(self, partition: int) -> PartitionCounter:
        return self.partitions.setdefault(partition, PartitionCounter())

    def to_dict(self) -> dict[str, Any]:
        return {
            "apis": {name: asdict(c) for name, c in sorted(self.apis.items())},
            "partitions": {f"__consumer_offsets-{p}": asdict(c) for p, c in sorted(self.partitions.items())},
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "malformed_frames": self.malformed_frames,
            "unsupported_requests": self.unsupported_requests,
        }

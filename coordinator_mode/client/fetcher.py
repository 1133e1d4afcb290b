"""The consumer's Fetch: records of the owned partitions from their leaders, as Kafka's consumer
``Fetcher`` gets them (Java ``AbstractFetch.prepareFetchRequests`` / kafka-python ``Fetcher``).

* Leaders come from Metadata (cached; dropped after ``NOT_LEADER_OR_FOLLOWER``, an unknown
  partition or a lost connection, so the next fetch asks again).
* One Fetch per leader, all in flight together, each ``fetch.max.wait.ms`` (500 ms) /
  ``fetch.min.bytes`` (1) / ``max.partition.fetch.bytes`` (1 MiB) / ``fetch.max.bytes`` (50 MiB),
  Java's defaults; no fetch sessions (full fetches).
* A position that is unknown (no committed offset) or out of range is reset by ListOffsets to the
  log start or end (``auto.offset.reset``), as ``SubscriptionState.resetInitializingPositions``
  / ``OffsetFetcher.resetPositionsIfNeeded`` do.
* A batch may start before the position (a fetch from inside a batch returns all of it): records
  before the position are skipped, as ``CompletedFetch.nextFetchedRecord`` does.

Used by the coordinator-mode member (:mod:`.member`) and, with its own connections, by zk-mode
members; it holds no ownership: callers pass the positions of what they own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kafka.errors as Errors
from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest
from kafka.record import MemoryRecords

from group_api import TopicPartition
from group_api.consumption import produce_time_ms

from .connection import BrokerAddress, KafkaClient

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 500  # fetch.max.wait.ms
FETCH_MIN_BYTES = 1  # fetch.min.bytes
MAX_PARTITION_FETCH_BYTES = 1024 * 1024  # max.partition.fetch.bytes
FETCH_MAX_BYTES = 50 * 1024 * 1024  # fetch.max.bytes
_OUT_OF_RANGE = Errors.OffsetOutOfRangeError.errno
_STALE_LEADER = {
    Errors.NotLeaderForPartitionError.errno,
    Errors.UnknownTopicOrPartitionError.errno,
    Errors.FencedLeaderEpochError.errno,
    Errors.UnknownLeaderEpochError.errno,
    Errors.LeaderNotAvailableError.errno,
}


@dataclass(frozen=True)
class FetchedRecords:
    """The records of one partition a fetch returned, from the position asked for."""

    tp: TopicPartition
    offsets: tuple[int, ...]
    produce_ms: tuple[int, ...]  # of the records the harness wrote

    @property
    def next_offset(self) -> int:
        return self.offsets[-1] + 1


def decode(tp: TopicPartition, data: bytes, position: int) -> FetchedRecords | None:
    """The records at ``position`` and after in a Fetch's record bytes (None if there are none)."""
    offsets: list[int] = []
    times: list[int] = []
    records = MemoryRecords(data)
    while records.has_next():
        batch = records.next_batch()
        if batch is None:
            break  # a partial batch at the end of the response (max bytes)
        if batch.is_control_batch:
            continue
        for record in batch:
            if record.offset < position:
                continue
            offsets.append(record.offset)
            ms = produce_time_ms(record.value)
            if ms is not None:
                times.append(ms)
    return FetchedRecords(tp, tuple(offsets), tuple(times)) if offsets else None


class Fetcher:
    """Fetches for one member over its :class:`~.connection.KafkaClient` (see the module)."""

    def __init__(self, client: KafkaClient, auto_offset_reset: str = "earliest") -> None:
        self.client = client
        self.reset_to = -2 if auto_offset_reset == "earliest" else -1  # ListOffsets timestamps
        self._leaders: dict[TopicPartition, BrokerAddress] = {}

    async def _leader(self, tp: TopicPartition) -> BrokerAddress | None:
        if tp not in self._leaders:
            response = await self.client.metadata(sorted({tp[0]}))
            for t in response.topics:
                for p in t.partitions:
                    broker = self.client.brokers.get(p.leader_id)
                    if p.error_code == 0 and broker is not None:
                        self._leaders[(t.name, p.partition_index)] = broker
        return self._leaders.get(tp)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._leaders.pop(tp, None)

    async def _by_leader(self, tps: Iterable[TopicPartition]) -> dict[BrokerAddress, list[TopicPartition]]:
        groups: dict[BrokerAddress, list[TopicPartition]] = {}
        for tp in sorted(tps):
            leader = await self._leader(tp)
            if leader is not None:
                groups.setdefault(leader, []).append(tp)
        return groups

    async def reset_positions(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """``auto.offset.reset`` for ``tps``: ListOffsets (earliest or latest) from their leaders."""
        found: dict[TopicPartition, int] = {}
        for leader, group in (await self._by_leader(tps)).items():
            by_topic: dict[str, list[int]] = {}
            for t, p in group:
                by_topic.setdefault(t, []).append(p)
            tcls = ListOffsetsRequest.ListOffsetsTopic
            request = ListOffsetsRequest(
                replica_id=-1,
                isolation_level=0,
                topics=[
                    tcls(
                        name=t,
                        partitions=[
                            tcls.ListOffsetsPartition(
                                partition_index=p, current_leader_epoch=-1, timestamp=self.reset_to
                            )
                            for p in ps
                        ],
                    )
                    for t, ps in by_topic.items()
                ],
            )
            response = await self._send(leader, request, group)
            for t in response.topics if response is not None else []:
                for p in t.partitions:
                    if p.error_code == 0:
                        found[(t.name, p.partition_index)] = p.offset
                    else:
                        self.forget([(t.name, p.partition_index)])
        return found

    async def _send(self, leader: BrokerAddress, request: Any, tps: list[TopicPartition]) -> Any:
        try:
            conn = await self.client.connection(leader)
            return await conn.send(request)
        except Errors.KafkaError as exc:
            log.info("%s from %s failed: %s", type(request).__name__, leader, exc)
            self.client.drop(leader)
            self.forget(tps)
            return None

    async def fetch(
        self, positions: dict[TopicPartition, int]
    ) -> tuple[list[FetchedRecords], set[TopicPartition]]:
        """One round of fetches: the records per partition, and the partitions whose position is
        out of range (the caller resets them)."""
        groups = await self._by_leader(positions)
        answers = await asyncio.gather(
            *(self._fetch_from(leader, {tp: positions[tp] for tp in tps}) for leader, tps in groups.items())
        )
        if not groups:
            await asyncio.sleep(FETCH_MAX_WAIT_MS / 1000)  # no leader known: do not spin
        fetched = [r for records, _ in answers for r in records]
        out_of_range = {tp for _, bad in answers for tp in bad}
        return fetched, out_of_range

    async def _fetch_from(
        self, leader: BrokerAddress, positions: dict[TopicPartition, int]
    ) -> tuple[list[FetchedRecords], set[TopicPartition]]:
        fcls = FetchRequest.FetchTopic
        by_topic: dict[str, list[Any]] = {}
        for (t, p), offset in positions.items():
            by_topic.setdefault(t, []).append(
                fcls.FetchPartition(
                    partition=p,
                    current_leader_epoch=-1,
                    fetch_offset=offset,
                    last_fetched_epoch=-1,
                    log_start_offset=-1,
                    partition_max_bytes=MAX_PARTITION_FETCH_BYTES,
                )
            )
        request = FetchRequest(
            cluster_id=None,
            replica_id=-1,
            max_wait_ms=FETCH_MAX_WAIT_MS,
            min_bytes=FETCH_MIN_BYTES,
            max_bytes=FETCH_MAX_BYTES,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[fcls(topic=t, partitions=ps) for t, ps in by_topic.items()],
            forgotten_topics_data=[],
            rack_id="",
            max_version=12,
        )
        response = await self._send(leader, request, list(positions))
        fetched: list[FetchedRecords] = []
        out_of_range: set[TopicPartition] = set()
        for t in response.responses if response is not None else []:
            for p in t.partitions:
                tp = (t.topic, p.partition_index)
                if p.error_code == _OUT_OF_RANGE:
                    out_of_range.add(tp)
                elif p.error_code in _STALE_LEADER:
                    self.forget([tp])
                elif p.error_code == 0 and p.records and tp in positions:
                    records = decode(tp, bytes(p.records), positions[tp])
                    if records is not None:
                        fetched.append(records)
        return fetched, out_of_range

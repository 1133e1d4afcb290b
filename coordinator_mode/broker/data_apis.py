"""The data-plane API handlers: Produce, a consumer's Fetch, ListOffsets and InitProducerId.

They follow Kafka 3.9's ``KafkaApis.handleProduceRequest`` / ``handleFetchRequest`` /
``handleListOffsetRequest`` / ``handleInitProducerIdRequest`` and ``ReplicaManager.appendRecords``
/ ``fetchMessages``, for data topics whose partitions have one replica, their leader (the
replication factor of data topics is 1 here: the offsets topic carries the replication under study):

* **Produce**: per partition, ``UNKNOWN_TOPIC_OR_PARTITION`` for one the cluster does not have,
  ``NOT_LEADER_OR_FOLLOWER`` unless we lead it, else the batches are validated (:mod:`.records`)
  and appended (:mod:`.data_log`), or get the validation's error; the others in the request are
  unaffected. ``acks`` must be 0, 1 or -1 (``INVALID_REQUIRED_ACKS``); with one replica, acks=all is
  done once the leader has appended. With acks=0 there is no response, and a request with an error
  closes the connection, Kafka's way of telling such a producer.
* **Fetch** (``replica_id`` -1): per partition the records from ``fetch_offset`` on, within
  ``partition_max_bytes`` and the request's ``max_bytes`` (at least one batch, KIP-74), the high
  watermark (the log end, with one replica), the log start offset; ``OFFSET_OUT_OF_RANGE`` outside
  [log start, log end]; ``FENCED_LEADER_EPOCH`` / ``UNKNOWN_LEADER_EPOCH`` for a stale or newer
  ``current_leader_epoch`` (v9+). Fewer than ``min_bytes`` and no error: the fetch waits, up to
  ``max_wait_ms``, for an append to one of its partitions (``DelayedFetch``). No fetch sessions are
  created (session id 0), so clients send full fetches. A follower's Fetch of the offsets topic
  is the replica manager's (:meth:`.cluster_apis.ClusterApis.replica_fetch`).
* **ListOffsets**: ``-2`` the log start, ``-1`` the high watermark, ``-3`` (v7) the record with the
  largest timestamp, else the first offset whose timestamp is at or after the one asked for.
* **InitProducerId** (idempotent producers; transactions are not implemented): a producer id unique
  across brokers and restarts, epoch 0. Kafka allocates ids in blocks from ZooKeeper
  (``ZkProducerIdManager``); here the id is the broker's clock in ms (kept increasing) times 1024
  plus the broker id, which needs no ZooKeeper write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import FetchResponse, ListOffsetsResponse
from kafka.protocol.producer import InitProducerIdResponse, ProduceResponse

from ..group.errors import ErrorCode
from .data_log import DataLogs, PartitionLog
from .protocol import BrokerContext, RequestContext
from .records import InvalidRecords, parse_produce

log = logging.getLogger(__name__)

#: Longest a consumer's Fetch waits (clients ask for ``fetch.max.wait.ms``, 500 ms by default).
MAX_FETCH_WAIT_MS = 10_000
#: ``message.max.bytes`` (Kafka's default, 1 MiB plus the batch overhead).
MAX_MESSAGE_BYTES = 1_048_588
_EARLIEST, _LATEST, _MAX_TIMESTAMP = -2, -1, -3


class DataApis:
    """Produce, Fetch, ListOffsets and InitProducerId for one broker's data partitions."""

    def __init__(
        self,
        broker: BrokerContext,
        logs: DataLogs,
        replica_fetch: Callable[[Any, RequestContext], Awaitable[Any]],
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.broker = broker
        self.logs = logs
        self.replica_fetch = replica_fetch
        self.max_message_bytes = max_message_bytes
        self._last_pid_ms = 0

    def handlers(self) -> dict[int, Callable[[Any, RequestContext], Awaitable[Any]]]:
        return {
            ApiKey.Produce: self._produce,
            ApiKey.Fetch: self._fetch,
            ApiKey.ListOffsets: self._list_offsets,
            ApiKey.InitProducerId: self._init_producer_id,
        }

    # -- leadership ----------------------------------------------------------------------------------

    def _led(self, topic: str, partition: int, leader_epoch: int = -1) -> tuple[ErrorCode, int]:
        """(error, leader epoch) for a request on ``topic``-``partition`` here."""
        view = self.broker.view
        if topic not in view.topics or not 0 <= partition < view.topics[topic]:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1
        state = view.leader(topic, partition)
        if state is None or state.leader != self.broker.config.broker_id:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER, -1
        if leader_epoch >= 0 and leader_epoch != state.epoch:
            stale = leader_epoch < state.epoch
            return (ErrorCode.FENCED_LEADER_EPOCH if stale else ErrorCode.UNKNOWN_LEADER_EPOCH), state.epoch
        return ErrorCode.NONE, state.epoch

    # -- Produce -------------------------------------------------------------------------------------

    async def _produce(self, req: Any, ctx: RequestContext) -> Any:
        tcls = ProduceResponse.TopicProduceResponse
        pcls = tcls.PartitionProduceResponse
        topics = []
        for t in req.topic_data or []:
            parts = []
            for p in t.partition_data or []:
                error, epoch = self._led(t.name, p.index)
                base, start, message = -1, -1, None
                if error is ErrorCode.NONE and req.acks not in (0, 1, -1):
                    error = ErrorCode.INVALID_REQUIRED_ACKS
                if error is ErrorCode.NONE and req.transactional_id is not None:
                    error, message = ErrorCode.INVALID_REQUEST, "transactions are not implemented"
                if error is ErrorCode.NONE:
                    plog = self.logs.get(t.name, p.index)
                    try:
                        appended = plog.append(parse_produce(p.records, self.max_message_bytes), epoch)
                    except InvalidRecords as exc:
                        error, message = exc.code, str(exc)
                        log.info("produce to %s-%d from %s rejected: %s", t.name, p.index, ctx.client_id, exc)
                    else:
                        base, start = appended.base_offset, appended.log_start_offset
                        if not appended.duplicate:
                            self.logs.appended(t.name, p.index)
                parts.append(
                    pcls(
                        index=p.index,
                        error_code=error,
                        base_offset=base,
                        log_append_time_ms=-1,
                        log_start_offset=start,
                        record_errors=[],
                        error_message=message,
                    )
                )
            topics.append(tcls(name=t.name, partition_responses=parts))
        return ProduceResponse(version=ctx.version, responses=topics, throttle_time_ms=0)

    # -- Fetch ---------------------------------------------------------------------------------------

    def _read(self, req: Any, ctx: RequestContext) -> tuple[list[Any], int, bool]:
        """One pass over the fetch's partitions: (topic responses, bytes, whether any has an error)."""
        tcls = FetchResponse.FetchableTopicResponse
        pcls = tcls.PartitionData
        budget = max(req.max_bytes, 1)
        total, any_error = 0, False
        topics = []
        for t in req.topics or []:
            parts = []
            for p in t.partitions or []:
                epoch_asked = p.current_leader_epoch if ctx.version >= 9 else -1
                error, _ = self._led(t.topic, p.partition, epoch_asked)
                hw = start = -1
                records = b""
                if error is ErrorCode.NONE:
                    plog = self.logs.get(t.topic, p.partition)
                    hw, start = plog.end_offset, plog.log_start_offset
                    if not start <= p.fetch_offset <= hw:
                        error = ErrorCode.OFFSET_OUT_OF_RANGE
                    elif p.fetch_offset < hw:
                        # KIP-74: the first partition with data returns at least one batch.
                        limit = min(p.partition_max_bytes, budget - total) if total else p.partition_max_bytes
                        if limit > 0 or not total:
                            records = plog.read(p.fetch_offset, max(limit, 0))
                        total += len(records)
                any_error |= error is not ErrorCode.NONE
                parts.append(
                    pcls(
                        partition_index=p.partition,
                        error_code=error,
                        high_watermark=hw,
                        last_stable_offset=hw,
                        log_start_offset=start,
                        aborted_transactions=None,
                        preferred_read_replica=-1,
                        records=records,
                    )
                )
            topics.append(tcls(topic=t.topic, partitions=parts))
        return topics, total, any_error

    async def _fetch(self, req: Any, ctx: RequestContext) -> Any:
        if req.replica_id >= 0:
            return await self.replica_fetch(req, ctx)
        deadline = time.monotonic() + min(max(req.max_wait_ms, 0), MAX_FETCH_WAIT_MS) / 1000.0
        wanted = [(t.topic, p.partition) for t in req.topics or [] for p in t.partitions or []]
        while True:
            topics, size, any_error = self._read(req, ctx)
            left = deadline - time.monotonic()
            if any_error or size >= max(req.min_bytes, 1) or left <= 0 or self.broker.stopping.is_set():
                break
            await self.logs.wait_for_append(wanted, left)
        return FetchResponse(
            version=ctx.version, throttle_time_ms=0, error_code=0, session_id=0, responses=topics
        )

    # -- ListOffsets ---------------------------------------------------------------------------------

    @staticmethod
    def _offset_at(plog: PartitionLog, timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) answered for ``timestamp`` (-1/-1 when no record is that late)."""
        if timestamp == _EARLIEST:
            return -1, plog.log_start_offset
        if timestamp == _LATEST:
            return -1, plog.end_offset
        found = plog.max_timestamp() if timestamp == _MAX_TIMESTAMP else plog.offset_for_timestamp(timestamp)
        return (-1, -1) if found is None else (found[1], found[0])

    async def _list_offsets(self, req: Any, ctx: RequestContext) -> Any:
        tcls = ListOffsetsResponse.ListOffsetsTopicResponse
        pcls = tcls.ListOffsetsPartitionResponse
        topics = []
        for t in req.topics or []:
            parts = []
            for p in t.partitions or []:
                epoch_asked = p.current_leader_epoch if ctx.version >= 4 else -1
                error, epoch = self._led(t.name, p.partition_index, epoch_asked)
                timestamp, offset = -1, -1
                if error is ErrorCode.NONE:
                    if p.timestamp == _MAX_TIMESTAMP and ctx.version < 7:
                        error = ErrorCode.UNSUPPORTED_VERSION
                    else:
                        timestamp, offset = self._offset_at(
                            self.logs.get(t.name, p.partition_index), p.timestamp
                        )
                parts.append(
                    pcls(
                        partition_index=p.partition_index,
                        error_code=error,
                        timestamp=timestamp,
                        offset=offset,
                        leader_epoch=epoch,
                    )
                )
            topics.append(tcls(name=t.name, partitions=parts))
        return ListOffsetsResponse(version=ctx.version, throttle_time_ms=0, topics=topics)

    # -- InitProducerId ------------------------------------------------------------------------------

    async def _init_producer_id(self, req: Any, ctx: RequestContext) -> Any:
        if req.transactional_id is not None:
            return InitProducerIdResponse(
                version=ctx.version,
                throttle_time_ms=0,
                error_code=ErrorCode.INVALID_REQUEST,
                producer_id=-1,
                producer_epoch=-1,
            )
        self._last_pid_ms = max(self._last_pid_ms + 1, int(time.time() * 1000))
        producer_id = self._last_pid_ms * 1024 + self.broker.config.broker_id % 1024
        return InitProducerIdResponse(
            version=ctx.version, throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0
        )

"""Record batches and Produce/Fetch requests built by hand with kafka-python's codecs, for tests that
send exactly the bytes they mean (idempotent retries, a corrupt CRC, an oversized batch)."""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from bench.services.brokers import send_request


def batch(
    values: list[bytes],
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamp_ms: int | None = None,
) -> bytes:
    """One uncompressed v2 batch of ``values`` (keys none)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 30,
    )
    for i, value in enumerate(values):
        builder.append(i, timestamp=timestamp_ms, key=None, value=value, headers=[])
    return bytes(builder.build())


def produce(
    address: str, topic: str, partition: int, records: bytes, acks: int = -1, version: int = 9
) -> Any:
    """One partition's Produce; its PartitionProduceResponse."""
    request = ProduceRequest(
        version=version,
        transactional_id=None,
        acks=acks,
        timeout_ms=5_000,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name=topic,
                partition_data=[
                    ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)
                ],
            )
        ],
    )
    return send_request(address, request).responses[0].partition_responses[0]


def fetch(
    address: str,
    topic: str,
    partition: int,
    offset: int,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    version: int = 12,
) -> Any:
    """One partition's consumer Fetch; its PartitionData."""
    fcls = FetchRequest.FetchTopic
    request = FetchRequest(
        version=version,
        cluster_id=None,
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=50 * 1024 * 1024,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            fcls(
                topic=topic,
                partitions=[
                    fcls.FetchPartition(
                        partition=partition,
                        current_leader_epoch=-1,
                        fetch_offset=offset,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=1024 * 1024,
                    )
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    return send_request(address, request, timeout=max_wait_ms / 1000 + 10).responses[0].partitions[0]


def values(records: bytes) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in a Fetch's records."""
    out = []
    pos = 0
    while pos + 12 <= len(records):
        size = int.from_bytes(records[pos + 8 : pos + 12], "big") + 12
        for record in DefaultRecordBatch(records[pos : pos + size]):
            out.append((record.offset, bytes(record.value)))
        pos += size
    return out

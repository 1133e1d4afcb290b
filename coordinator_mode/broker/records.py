"""Record batches (magic v2) as a data partition's leader receives and stores them: parse, validate,
assign offsets. Pure functions over bytes, no IO.

The batch format and its CRC32C are kafka-python's ``kafka.record`` codecs
(:class:`~kafka.record.default_records.DefaultRecordBatch`). Validation follows Kafka 3.9's
``UnifiedLog.analyzeAndValidateRecords`` and ``LogValidator.validateMessagesAndAssignOffsets``:

* the Records field of one partition must be whole batches (``InvalidRecordException`` otherwise:
  ``CORRUPT_MESSAGE``), each of magic 2 (older formats: ``UNSUPPORTED_FOR_MESSAGE_FORMAT``; Produce v3+
  requires v2), its CRC right (``CORRUPT_MESSAGE``), its size within ``max.message.bytes``
  (``MESSAGE_TOO_LARGE``, Kafka's ``RecordTooLargeException`` for a batch);
* offsets are assigned by the leader: the batch's base offset becomes the log end and its partition
  leader epoch the leader's (both outside the CRC, which covers the attributes onward, so the
  producer's CRC stays valid, as ``LogValidator`` does for uncompressed v2 batches in place).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kafka.record.default_records import DefaultRecordBatch

from ..group.errors import ErrorCode

#: The v2 batch header up to and including the records count (61 bytes).
HEADER_BYTES = DefaultRecordBatch.HEADER_STRUCT.size
_LENGTH_OFFSET = 8  # after BaseOffset
_EPOCH_OFFSET = 12  # PartitionLeaderEpoch
_MAGIC_OFFSET = 16


class InvalidRecords(Exception):
    """A Produce's records are rejected; ``code`` is the partition's error in the response."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Batch:
    """One v2 batch's header fields (what the log indexes and the producer-state checks read)."""

    data: bytes
    base_offset: int
    last_offset_delta: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    count: int

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def last_sequence(self) -> int:
        return self.base_sequence + self.last_offset_delta

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0


def _batch(data: bytes) -> Batch:
    h = DefaultRecordBatch.HEADER_STRUCT.unpack_from(data)
    # (base offset, length, leader epoch, magic, crc, attributes, last offset delta, first ts, max ts,
    #  producer id, producer epoch, base sequence, count)
    return Batch(bytes(data), h[0], h[6], h[8], h[9], h[10], h[11], h[12])


def split_batches(data: bytes) -> list[tuple[int, int]]:
    """(start, size) of each whole batch in ``data``; a torn tail (a crash mid-write) is left out."""
    spans = []
    pos = 0
    while len(data) - pos >= HEADER_BYTES:
        (length,) = struct.unpack_from(">i", data, pos + _LENGTH_OFFSET)
        size = length + _LENGTH_OFFSET + 4
        if length < HEADER_BYTES - _LENGTH_OFFSET - 4 or pos + size > len(data):
            break
        spans.append((pos, size))
        pos += size
    return spans


def parse_produce(data: bytes | None, max_batch_bytes: int) -> list[Batch]:
    """The batches of one partition of a Produce, validated (see the module); raises :class:`InvalidRecords`."""
    if not data:
        raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "no records")
    spans = split_batches(data)
    used = sum(size for _, size in spans)
    if used != len(data):
        raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"{len(data) - used} bytes are not a whole batch")
    batches = []
    for start, size in spans:
        raw = data[start : start + size]
        if raw[_MAGIC_OFFSET] != 2:
            raise InvalidRecords(
                ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, f"magic {raw[_MAGIC_OFFSET]}: only v2 batches"
            )
        if size > max_batch_bytes:
            raise InvalidRecords(ErrorCode.MESSAGE_TOO_LARGE, f"batch of {size} bytes > {max_batch_bytes}")
        if not DefaultRecordBatch(raw).validate_crc():
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "batch CRC32C mismatch")
        batch = _batch(raw)
        if batch.count <= 0 or batch.last_offset_delta != batch.count - 1:
            raise InvalidRecords(ErrorCode.INVALID_RECORD, "records count does not match the offset delta")
        batches.append(batch)
    return batches


def with_offsets(batch: Batch, base_offset: int, leader_epoch: int) -> Batch:
    """The batch as the log stores it: at ``base_offset``, stamped with the leader's epoch."""
    raw = bytearray(batch.data)
    struct.pack_into(">q", raw, 0, base_offset)
    struct.pack_into(">i", raw, _EPOCH_OFFSET, leader_epoch)
    return _batch(bytes(raw))


def read_batch(data: bytes) -> Batch:
    """A stored batch's header (the log's recovery and index); the CRC is checked by the caller."""
    return _batch(data)


def crc_ok(data: bytes) -> bool:
    return bool(DefaultRecordBatch(data).validate_crc())

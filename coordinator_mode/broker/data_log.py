"""The logs of data partitions on one broker: record batches in segment files under its own log
directory, with the leader's producer-id/sequence checks, segment rolling and retention by size.

It follows Kafka 3.9's ``UnifiedLog`` / ``LogSegment`` / ``ProducerStateManager``, reduced to what a
partition led by one broker needs:

* **Layout.** ``<log_dir>/<topic>-<partition>/<base offset, 20 digits>.log``: each segment holds
  whole v2 batches back to back, as stored (offsets assigned). The offset index is kept in memory
  (one entry per batch) and rebuilt when the log is opened.
* **Recovery** (``UnifiedLog.recoverLog`` / ``LogSegment.recover``): a batch that is torn or fails its
  CRC, and everything after it, is cut off; that can only be the tail a crash left.
* **Append** (``UnifiedLog.appendAsLeader``): the batches get offsets from the log end; before that
  each batch with a producer id passes ``ProducerAppendInfo.checkProducerEpoch`` /
  ``checkSequence``: an older epoch is ``INVALID_PRODUCER_EPOCH``, a sequence that does not follow
  the producer's last one is ``OUT_OF_ORDER_SEQUENCE_NUMBER``, and a batch equal to one of the
  producer's last five (``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``) is a retry: it is not
  appended again and its first offset is answered (``ProducerStateEntry.findDuplicateBatch``).
* **Rolling** (``UnifiedLog.maybeRoll`` / ``LogSegment.shouldRoll``): a batch that would take the
  active segment past ``segment.bytes`` starts a new segment at its base offset.
* **Retention by size** (``UnifiedLog.deleteRetentionSizeBreachedSegments``): after a roll, the
  oldest segments go while the log stays at or above ``retention.bytes`` without them; the active
  segment stays. The log start offset is the base of the oldest segment left.
* **Reads** (``UnifiedLog.read``): whole batches from the one holding the fetch offset, at least
  one and then up to ``max_bytes``, as Kafka's ``FileRecords.slice`` returns them.

No fsync per append (``log.flush.interval.messages`` defaults to never, as for the offsets log);
:meth:`DataLogs.close` flushes.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatch

from ..group.errors import ErrorCode
from .records import Batch, InvalidRecords, crc_ok, read_batch, split_batches, with_offsets

log = logging.getLogger(__name__)

#: ``segment.bytes`` and ``retention.bytes`` for data topics here (Kafka: 1 GiB and unlimited); small
#: enough that a long run rolls and trims instead of filling the disk.
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
DEFAULT_RETENTION_BYTES = 64 * 1024 * 1024
#: ``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``: the batches per producer a retry is matched against.
BATCHES_TO_RETAIN = 5


@dataclass
class _Segment:
    base_offset: int
    path: Path
    fd: int
    size: int = 0


@dataclass(frozen=True)
class _Entry:
    """One stored batch: where it is and what it holds."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    segment: int  # base offset of its segment
    position: int
    size: int


@dataclass
class _Producer:
    epoch: int
    batches: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=BATCHES_TO_RETAIN))
    # (first sequence, last sequence, first offset) of the producer's last batches

    @property
    def last_sequence(self) -> int:
        return self.batches[-1][1] if self.batches else -1


@dataclass(frozen=True)
class AppendResult:
    base_offset: int
    log_start_offset: int
    duplicate: bool = False


class PartitionLog:
    """One data partition's log on this broker (see the module)."""

    def __init__(self, directory: Path, segment_bytes: int, retention_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.retention_bytes = retention_bytes
        self.segments: list[_Segment] = []
        self.entries: list[_Entry] = []
        self._last_offsets: list[int] = []  # entries' last offsets, for bisect
        self.producers: dict[int, _Producer] = {}
        self.end_offset = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    # -- opening -------------------------------------------------------------------------------------

    def _recover(self) -> None:
        paths = sorted(self.directory.glob("*.log"), key=lambda p: int(p.stem))
        for path in paths:
            base = int(path.stem)
            data = path.read_bytes()
            valid = 0
            for start, size in split_batches(data):
                raw = data[start : start + size]
                if not crc_ok(raw):
                    break
                batch = read_batch(raw)
                if batch.base_offset < self.end_offset:
                    break
                self._index(batch, base, start)
                self._track_producer(batch)
                valid = start + size
            if valid < len(data):
                log.warning("%s: cutting %d invalid bytes off the log", path, len(data) - valid)
                os.truncate(path, valid)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self.segments.append(_Segment(base, path, fd, valid))
        if not self.segments:
            self._roll(0)

    def _index(self, batch: Batch, segment: int, position: int) -> None:
        self.entries.append(
            _Entry(batch.base_offset, batch.last_offset, batch.max_timestamp, segment, position, batch.size)
        )
        self._last_offsets.append(batch.last_offset)
        self.end_offset = batch.last_offset + 1

    def _track_producer(self, batch: Batch) -> None:
        if not batch.has_producer_id:
            return
        entry = self.producers.get(batch.producer_id)
        if entry is None or batch.producer_epoch > entry.epoch:
            entry = self.producers[batch.producer_id] = _Producer(batch.producer_epoch)
        entry.batches.append((batch.base_sequence, batch.last_sequence, batch.base_offset))

    def _roll(self, base_offset: int) -> None:
        path = self.directory / f"{base_offset:020d}.log"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.segments.append(_Segment(base_offset, path, fd, 0))

    @property
    def log_start_offset(self) -> int:
        return self.entries[0].base_offset if self.entries else self.end_offset

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    # -- the leader's append -----------------------------------------------------------------------

    def _check_producer(self, batch: Batch) -> int | None:
        """The first offset of the batch this one repeats, or None for a new batch; raises on a bad one."""
        entry = self.producers.get(batch.producer_id)
        if entry is not None:
            if batch.producer_epoch < entry.epoch:
                raise InvalidRecords(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"producer {batch.producer_id} epoch {batch.producer_epoch} < {entry.epoch}",
                )
            if batch.producer_epoch == entry.epoch:
                for first_seq, last_seq, first_offset in entry.batches:
                    if (first_seq, last_seq) == (batch.base_sequence, batch.last_sequence):
                        return first_offset
                expected = (entry.last_sequence + 1) & 0x7FFFFFFF
                if batch.base_sequence != expected:
                    raise InvalidRecords(
                        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                        f"producer {batch.producer_id}: sequence {batch.base_sequence}, expected {expected}",
                    )
                return None
        if batch.base_sequence != 0:
            raise InvalidRecords(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {batch.producer_id} (epoch {batch.producer_epoch}) must start at sequence 0",
            )
        return None

    def append(self, batches: list[Batch], leader_epoch: int) -> AppendResult:
        """Append one Produce's batches of this partition; raises :class:`InvalidRecords` (nothing written)."""
        duplicate_of = None
        if len(batches) == 1 and batches[0].has_producer_id:
            duplicate_of = self._check_producer(batches[0])
        else:
            for batch in batches:
                if batch.has_producer_id:
                    self._check_producer(batch)
        if duplicate_of is not None:
            return AppendResult(duplicate_of, self.log_start_offset, duplicate=True)
        first = self.end_offset
        for batch in batches:
            stored = with_offsets(batch, self.end_offset, leader_epoch)
            active = self.segments[-1]
            if active.size > 0 and active.size + stored.size > self.segment_bytes:
                self._roll(self.end_offset)
                self._apply_retention()
                active = self.segments[-1]
            self._write(active, stored.data)
            self._index(stored, active.base_offset, active.size)
            active.size += stored.size
            self._track_producer(stored)
        return AppendResult(first, self.log_start_offset)

    @staticmethod
    def _write(segment: _Segment, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(segment.fd, view) :]
        except OSError as exc:
            raise InvalidRecords(ErrorCode.KAFKA_STORAGE_ERROR, f"append failed: {exc}") from exc

    def _apply_retention(self) -> None:
        total = self.size
        while len(self.segments) > 1 and total - self.segments[0].size >= self.retention_bytes:
            oldest = self.segments.pop(0)
            total -= oldest.size
            os.close(oldest.fd)
            oldest.path.unlink(missing_ok=True)
            cut = bisect.bisect_left([e.segment for e in self.entries], self.segments[0].base_offset)
            del self.entries[:cut], self._last_offsets[:cut]
            log.info("%s: deleted segment %d (retention.bytes)", self.directory.name, oldest.base_offset)

    # -- reads ---------------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding ``offset``: at least one, then up to ``max_bytes``."""
        i = bisect.bisect_left(self._last_offsets, offset)
        out: list[bytes] = []
        size = 0
        fds = {s.base_offset: s.fd for s in self.segments}
        for entry in self.entries[i:]:
            if out and size + entry.size > max_bytes:
                break
            out.append(os.pread(fds[entry.segment], entry.size, entry.position))
            size += entry.size
        return b"".join(out)

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``timestamp`` (ListOffsets by time)."""
        for entry in self.entries:
            if entry.max_timestamp >= timestamp:
                batch = DefaultRecordBatch(self.read(entry.base_offset, 0))
                for record in batch:
                    if record.timestamp >= timestamp:
                        return record.offset, record.timestamp
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the record with the largest timestamp (ListOffsets ``MAX_TIMESTAMP``)."""
        best = max(self.entries, key=lambda e: e.max_timestamp, default=None)
        if best is None:
            return None
        for record in DefaultRecordBatch(self.read(best.base_offset, 0)):
            if record.timestamp == best.max_timestamp:
                return record.offset, record.timestamp
        return None

    def close(self) -> None:
        for segment in self.segments:
            os.fsync(segment.fd)
            os.close(segment.fd)
        self.segments.clear()


class DataLogs:
    """This broker's data-partition logs, opened on first use, and one wake-up per partition for the
    Fetches that wait for data (Kafka's ``DelayedFetch`` purgatory)."""

    def __init__(
        self,
        log_dir: Path,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        retention_bytes: int = DEFAULT_RETENTION_BYTES,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.segment_bytes = segment_bytes
        self.retention_bytes = retention_bytes
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._appended: dict[tuple[str, int], asyncio.Event] = {}

    def get(self, topic: str, partition: int) -> PartitionLog:
        key = (topic, partition)
        plog = self._logs.get(key)
        if plog is None:
            plog = self._logs[key] = PartitionLog(
                self.log_dir / f"{topic}-{partition}", self.segment_bytes, self.retention_bytes
            )
        return plog

    def appended(self, topic: str, partition: int) -> None:
        event = self._appended.pop((topic, partition), None)
        if event is not None:
            event.set()

    async def wait_for_append(self, partitions: list[tuple[str, int]], seconds: float) -> None:
        """Return once any of ``partitions`` gets an append, or after ``seconds``."""
        if not partitions or seconds <= 0:
            return
        waits = [
            asyncio.ensure_future(self._appended.setdefault(tp, asyncio.Event()).wait()) for tp in partitions
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def close(self) -> None:
        for plog in self._logs.values():
            plog.close()
        self._logs.clear()

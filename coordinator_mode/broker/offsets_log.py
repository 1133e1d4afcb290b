"""One broker's replicas of the offsets partitions: an append-only log per partition, in the broker's
own log directory.

In Kafka the coordinator's state lives in the compacted, replicated topic ``__consumer_offsets``;
each broker keeps its replicas in its own ``log.dirs`` and a partition's new leader replays its own
replica (``GroupMetadataManager.doLoadGroupsAndOffsets``, up to the log end offset). Here the
replica of partition ``p`` is the file ``<log_dir>/__consumer_offsets-<p>/log``:

* each line is one record at one *offset*: ``<crc32 hex> <json>``, the JSON carrying the offset
  (``"lo"``) and the leader epoch that appended it (``"e"``), as a Kafka record batch carries its
  base offset and partition leader epoch. A line torn by a crash mid-write fails its checksum; it
  and everything after it are cut off when the replica is opened (Kafka's log recovery,
  ``LogLoader.recoverSegment``, truncates at the first invalid batch);
* the leader appends records it is given (:meth:`OffsetsLog.append`, ``Partition.appendRecordsToLeader``),
  a follower the exact lines the leader sent it (:meth:`OffsetsLog.append_lines`,
  ``Partition.appendRecordsToFollowerOrFutureReplica``), so every replica holds the same bytes at the
  same offsets; a follower cuts its log back before it fetches from a new leader
  (:meth:`OffsetsLog.truncate_to`);
* **flush policy as Kafka's**: no fsync per append (``log.flush.interval.messages`` and
  ``log.flush.interval.ms`` default to ``Long.MAX_VALUE``: durability comes from replication to the
  ISR, ``LocalLog.flush`` runs on segment roll and clean shutdown). With ``flush_interval_messages``
  set, a replica fsyncs once that many records are unflushed (``UnifiedLog.appendAsLeader`` →
  ``flush`` when ``unflushedMessages >= config.flushInterval``); :meth:`OffsetsLog.close` flushes;
* the log is *compacted* when opened once it grows past ``compact_bytes`` (the latest record per key,
  tombstones drop the key, the last record is always kept so the log end offset stays; offsets are
  kept, with gaps, as Kafka's log cleaner keeps them).

Every append, flush and byte is counted in a :class:`~.stats.PartitionCounter` per partition.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..group.errors import ErrorCode, PersistError
from ..group.records import (
    CONSUMER_RECORD_KINDS,
    GroupMetadataRecord,
    MemberRecord,
    OffsetCommitRecord,
    Record,
)
from .stats import PartitionCounter

log = logging.getLogger(__name__)

#: Compact a partition's log when it is opened once it is larger than this.
DEFAULT_COMPACT_BYTES = 8 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_CONSUMER_KIND_OF = {cls: kind for kind, cls in CONSUMER_RECORD_KINDS.items()}


def _consumer_value(record: Any) -> dict[str, Any]:
    """A consumer-protocol record's fields (tuples become JSON lists)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _consumer_record(cls: type, value: dict[str, Any]) -> Record:
    """The inverse of :func:`_consumer_value`: JSON lists back to the records' tuples."""
    fields = {}
    for name, v in value.items():
        if name in ("partitions", "assigned", "pending_revocation"):
            v = tuple((str(t), tuple(int(p) for p in ps)) for t, ps in v)
        elif name == "subscribed_topics":
            v = tuple(str(t) for t in v)
        fields[name] = v
    return cls(**fields)


def encode_record(record: Record, epoch: int) -> dict[str, Any]:
    """The JSON shape of one record, written by the leader of ``epoch``."""
    kind = _CONSUMER_KIND_OF.get(type(record))
    if kind is not None:
        return {"e": epoch, "k": kind, "v": _consumer_value(record)}
    if isinstance(record, OffsetCommitRecord):
        return {
            "e": epoch,
            "k": "offset",
            "g": record.group_id,
            "t": record.topic,
            "p": record.partition,
            "o": record.offset,
            "le": record.leader_epoch,
            "m": record.metadata,
            "ts": record.commit_timestamp_ms,
        }
    return {
        "e": epoch,
        "k": "group",
        "g": record.group_id,
        "deleted": record.deleted,
        "gen": record.generation_id,
        "pt": record.protocol_type,
        "pn": record.protocol_name,
        "leader": record.leader_id,
        "members": [
            {
                "id": m.member_id,
                "iid": m.group_instance_id,
                "cid": m.client_id,
                "host": m.client_host,
                "rto": m.rebalance_timeout_ms,
                "sto": m.session_timeout_ms,
                "protocols": [[name, _b64(meta)] for name, meta in m.protocols],
                "asg": _b64(m.assignment),
            }
            for m in record.members
        ],
    }


def decode_record(d: dict[str, Any]) -> Record:
    """The inverse of :func:`encode_record`. Raises on bad shapes."""
    kind = d["k"]
    if kind in CONSUMER_RECORD_KINDS:
        return _consumer_record(CONSUMER_RECORD_KINDS[kind], d["v"])
    if kind == "offset":
        return OffsetCommitRecord(
            group_id=str(d["g"]),
            topic=str(d["t"]),
            partition=int(d["p"]),
            offset=None if d["o"] is None else int(d["o"]),
            leader_epoch=int(d.get("le", -1)),
            metadata=str(d.get("m") or ""),
            commit_timestamp_ms=int(d.get("ts", -1)),
        )
    if kind == "group":
        members = tuple(
            MemberRecord(
                member_id=str(m["id"]),
                group_instance_id=m.get("iid"),
                client_id=str(m.get("cid", "")),
                client_host=str(m.get("host", "")),
                rebalance_timeout_ms=int(m["rto"]),
                session_timeout_ms=int(m["sto"]),
                protocols=tuple((str(name), base64.b64decode(meta)) for name, meta in m["protocols"]),
                assignment=base64.b64decode(m.get("asg", "")),
            )
            for m in d.get("members", [])
        )
        return GroupMetadataRecord(
            group_id=str(d["g"]),
            generation_id=int(d["gen"]),
            protocol_type=d.get("pt"),
            protocol_name=d.get("pn"),
            leader_id=d.get("leader"),
            members=members,
            deleted=bool(d.get("deleted", False)),
        )
    raise ValueError(f"unknown record kind {kind!r}")


def encode_line(record: Record, epoch: int, offset: int) -> bytes:
    """One log line: ``<crc32 hex> <json>\\n``, the record at ``offset`` written in leader ``epoch``."""
    body = json.dumps({"lo": offset, **encode_record(record, epoch)}, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


@dataclass(frozen=True)
class LogEntry:
    offset: int
    epoch: int
    record: Record


def parse_line(line: bytes) -> LogEntry | None:
    """The entry of one line, or None for a line that fails its checksum or does not parse."""
    try:
        crc, _, body = line.rstrip(b"\n").partition(b" ")
        if not line.endswith(b"\n") or int(crc, 16) != zlib.crc32(body):
            return None
        d = json.loads(body)
        return LogEntry(int(d["lo"]), int(d["e"]), decode_record(d))
    except (ValueError, KeyError, TypeError):
        return None


def record_key(record: Record) -> tuple[str, ...]:
    """The compaction key (Kafka's ``GroupMetadataKey`` / ``OffsetCommitKey``)."""
    if isinstance(record, GroupMetadataRecord):
        return ("group", record.group_id)
    kind = _CONSUMER_KIND_OF.get(type(record))
    if kind is not None:
        return (kind, record.group_id, getattr(record, "member_id", ""))
    return ("offset", record.group_id, record.topic, str(record.partition))


def _is_tombstone(record: Record) -> bool:
    return record.offset is None if isinstance(record, OffsetCommitRecord) else record.deleted


@dataclass
class _Replica:
    fd: int
    lines: list[bytes]
    offsets: list[int]  # the offset of each line, ascending (gaps after compaction)
    end_offset: int  # the log end offset: the offset the next record gets
    unflushed: int = 0


@dataclass
class LoadResult:
    records: list[Record]
    end_offset: int = 0


@dataclass
class OffsetsLog:
    """This broker's replicas of the offsets partitions, under its own ``log_dir``.

    Thread-safe: the broker's event loop appends, a loading thread reads, one lock per partition.
    """

    log_dir: Path
    compact_bytes: int = DEFAULT_COMPACT_BYTES
    flush_interval_messages: int | None = None  # log.flush.interval.messages; None: Kafka's default, never
    counters: dict[int, PartitionCounter] = field(default_factory=dict)  # the broker's, shared
    _replicas: dict[int, _Replica] = field(default_factory=dict)
    _locks: dict[int, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def _lock(self, partition: int) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(partition, threading.Lock())

    def partition_dir(self, partition: int) -> Path:
        return self.log_dir / f"__consumer_offsets-{partition}"

    def log_path(self, partition: int) -> Path:
        return self.partition_dir(partition) / "log"

    def _counters(self, partition: int) -> PartitionCounter:
        return self.counters.setdefault(partition, PartitionCounter())

    # -- opening -----------------------------------------------------------------------------------

    def _replica(self, partition: int) -> _Replica:
        """The open replica of ``partition``, opened (recovered, maybe compacted) on first use."""
        replica = self._replicas.get(partition)
        if replica is None:
            replica = self._replicas[partition] = self._open(partition)
        return replica

    def _open(self, partition: int) -> _Replica:
        path = self.log_path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        lines: list[bytes] = []
        entries: list[LogEntry] = []
        valid_bytes = 0
        for line in data.splitlines(keepends=True):
            entry = parse_line(line)
            if entry is None or (entries and entry.offset <= entries[-1].offset):
                break  # recovery: the log ends before its first invalid line
            lines.append(line)
            entries.append(entry)
            valid_bytes += len(line)
        if valid_bytes < len(data):
            log.warning(
                "offsets partition %d: truncating %d invalid bytes at the end of the log",
                partition,
                len(data) - valid_bytes,
            )
            os.truncate(path, valid_bytes)
        if valid_bytes > self.compact_bytes:
            lines, entries = self._compact(partition, entries)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        end = entries[-1].offset + 1 if entries else 0
        return _Replica(fd, lines, [e.offset for e in entries], end)

    def _compact(self, partition: int, entries: list[LogEntry]) -> tuple[list[bytes], list[LogEntry]]:
        """Keep the latest entry per key (the last entry always), offsets unchanged; rename over the log."""
        latest: dict[tuple[str, ...], int] = {}
        for i, e in enumerate(entries):
            latest[record_key(e.record)] = i
            if isinstance(e.record, GroupMetadataRecord) and e.record.deleted:
                for key in [k for k in latest if k[0] == "offset" and k[1] == e.record.group_id]:
                    del latest[key]
        keep = sorted(
            {i for i in latest.values() if not _is_tombstone(entries[i].record)} | {len(entries) - 1}
        )
        kept = [entries[i] for i in keep]
        lines = [encode_line(e.record, e.epoch, e.offset) for e in kept]
        path = self.log_path(partition)
        tmp = path.with_suffix(".compact")
        with open(tmp, "wb") as f:
            f.write(b"".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._counters(partition).fsyncs += 2
        log.info("offsets partition %d: compacted %d records to %d", partition, len(entries), len(kept))
        return lines, kept

    def load(self, partition: int) -> LoadResult:
        """Every record of this broker's replica, up to its log end offset (blocking; run in a thread)."""
        with self._lock(partition):
            replica = self._replica(partition)
            records = []
            for line in replica.lines:
                entry = parse_line(line)
                assert entry is not None  # only valid lines are kept
                records.append(entry.record)
            return LoadResult(records, replica.end_offset)

    # -- reading -----------------------------------------------------------------------------------

    def end_offset(self, partition: int) -> int:
        with self._lock(partition):
            return self._replica(partition).end_offset

    def read_from(self, partition: int, offset: int, max_bytes: int) -> bytes:
        """The lines at ``offset`` and after, at least one line and then up to ``max_bytes`` (Fetch)."""
        with self._lock(partition):
            replica = self._replica(partition)
            i = bisect.bisect_left(replica.offsets, offset)
            out: list[bytes] = []
            size = 0
            for line in replica.lines[i:]:
                if out and size + len(line) > max_bytes:
                    break
                out.append(line)
                size += len(line)
            return b"".join(out)

    def read(self, partition: int) -> list[Record]:
        """Every valid record of ``partition`` (for tests and inspection)."""
        return self.load(partition).records

    # -- writing -----------------------------------------------------------------------------------

    def append(self, partition: int, records: list[Record], epoch: int) -> int:
        """Append as the leader of ``epoch``; the new log end offset. Raises :class:`PersistError`."""
        with self._lock(partition):
            replica = self._replica(partition)
            lines = []
            counters = self._counters(partition)
            for i, record in enumerate(records):
                line = encode_line(record, epoch, replica.end_offset + i)
                lines.append(line)
                counters.appended(record, len(line), as_leader=True)
            self._write(partition, replica, lines, [replica.end_offset + i for i in range(len(lines))])
            return replica.end_offset

    def append_lines(self, partition: int, data: bytes) -> int:
        """Append a leader's lines as a follower (those past our end only); the new log end offset.

        Raises :class:`ValueError` when ``data`` does not parse: the leader sent garbage."""
        with self._lock(partition):
            replica = self._replica(partition)
            lines, offsets = [], []
            counters = self._counters(partition)
            for line in data.splitlines(keepends=True):
                entry = parse_line(line)
                if entry is None:
                    raise ValueError(f"offsets partition {partition}: invalid line from the leader")
                if entry.offset < replica.end_offset:
                    continue
                lines.append(line)
                offsets.append(entry.offset)
                counters.appended(entry.record, len(line), as_leader=False)
            if lines:
                self._write(partition, replica, lines, offsets)
            return replica.end_offset

    def _write(self, partition: int, replica: _Replica, lines: list[bytes], offsets: list[int]) -> None:
        data = memoryview(b"".join(lines))
        try:
            while data:
                written = os.write(replica.fd, data)
                data = data[written:]
        except OSError as exc:
            raise PersistError(ErrorCode.KAFKA_STORAGE_ERROR, f"append failed: {exc}") from exc
        replica.lines.extend(lines)
        replica.offsets.extend(offsets)
        replica.end_offset = offsets[-1] + 1
        replica.unflushed += len(lines)
        if self.flush_interval_messages is not None and replica.unflushed >= self.flush_interval_messages:
            self._flush(partition, replica)

    def _flush(self, partition: int, replica: _Replica) -> None:
        if replica.unflushed:
            os.fsync(replica.fd)
            replica.unflushed = 0
            self._counters(partition).fsyncs += 1

    def truncate_to(self, partition: int, offset: int) -> None:
        """Cut the replica back to ``offset`` (a follower before fetching from a new leader)."""
        with self._lock(partition):
            replica = self._replica(partition)
            i = bisect.bisect_left(replica.offsets, offset)
            if i == len(replica.lines):
                return
            keep = sum(len(line) for line in replica.lines[:i])
            os.ftruncate(replica.fd, keep)
            log.info("offsets partition %d: truncated from %d to %d", partition, replica.end_offset, offset)
            del replica.lines[i:], replica.offsets[i:]
            replica.end_offset = offset

    def close(self) -> None:
        """Flush every replica (Kafka flushes on clean shutdown) and close it."""
        for partition in list(self._replicas):
            with self._lock(partition):
                replica = self._replicas.pop(partition)
                self._flush(partition, replica)
                os.close(replica.fd)

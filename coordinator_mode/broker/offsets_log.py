"""Durable group metadata and committed offsets: one append-only log per offsets partition.

In Kafka the coordinator's state lives in the compacted topic ``__consumer_offsets``; a partition's
new leader replays it (``CoordinatorLoaderImpl``), answering ``COORDINATOR_LOAD_IN_PROGRESS`` until
it is done. Here the log of partition ``p`` is the file ``<log_dir>/__consumer_offsets-<p>/log`` in a
log directory **shared by all brokers** (as a docker volume mounted on every broker would be), instead
of being replicated between brokers:

* the leader appends each batch of records (group snapshots and offset commits) with ``write`` +
  ``fsync`` before it answers the request that caused them, so an acknowledged commit survives a
  SIGKILL of the broker;
* when the controller moves partition ``p`` to another broker (ZooKeeper), that broker becomes its
  leader with a higher *leader epoch*; it first appends an epoch marker, then reads the whole file and
  replays it (:meth:`OffsetsLog.load`, run off the event loop) while requests for the partition's
  groups get ``COORDINATOR_LOAD_IN_PROGRESS``;
* fencing: the newest leader also writes its epoch to ``<dir>/leader-epoch``; an append from an
  older epoch is refused (``NOT_COORDINATOR``), and records that a deposed leader still slips in after
  a newer epoch's marker are skipped on load, so a zombie cannot resurrect stale state;
* each line is ``<crc32 hex> <json>``: a line torn by a crash mid-write fails its checksum and is
  skipped, and the log is *compacted* on load once it grows past ``compact_bytes`` (latest value per
  key, written to a temporary file and renamed over the log).

Record encoding (JSON, bytes in base64): ``{"e": epoch, "k": "group"|"offset"|"epoch", ...}``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..group.errors import ErrorCode, PersistError
from ..group.records import GroupMetadataRecord, MemberRecord, OffsetCommitRecord, Record

log = logging.getLogger(__name__)

#: Compact a partition's log on load once it is larger than this.
DEFAULT_COMPACT_BYTES = 8 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_record(record: Record | None, epoch: int) -> dict[str, Any]:
    """The JSON shape of one record (``None``: an epoch marker)."""
    if record is None:
        return {"e": epoch, "k": "epoch"}
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


def decode_record(d: dict[str, Any]) -> Record | None:
    """The inverse of :func:`encode_record`; ``None`` for an epoch marker. Raises on bad shapes."""
    kind = d["k"]
    if kind == "epoch":
        return None
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


def encode_line(record: Record | None, epoch: int) -> bytes:
    """One log line: ``<crc32 hex> <json>\\n``."""
    body = json.dumps(encode_record(record, epoch), separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _parse_line(line: bytes) -> tuple[int, Record | None] | None:
    """(epoch, record) or None for a line that fails its checksum or does not parse."""
    try:
        crc, _, body = line.rstrip(b"\n").partition(b" ")
        if int(crc, 16) != zlib.crc32(body):
            return None
        d = json.loads(body)
        return int(d["e"]), decode_record(d)
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class LoadResult:
    records: list[Record]
    lines: int = 0
    skipped_corrupt: int = 0
    skipped_fenced: int = 0
    compacted: bool = False


def _compact(records: list[Record]) -> list[Record]:
    """Latest value per key (group, or group + topic-partition); tombstones drop the key."""
    groups: dict[str, GroupMetadataRecord] = {}
    offsets: dict[tuple[str, str, int], OffsetCommitRecord] = {}
    for r in records:
        if isinstance(r, GroupMetadataRecord):
            if r.deleted:
                groups.pop(r.group_id, None)
                for key in [k for k in offsets if k[0] == r.group_id]:
                    del offsets[key]
            else:
                groups[r.group_id] = r
        elif r.offset is None:
            offsets.pop((r.group_id, r.topic, r.partition), None)
        else:
            offsets[(r.group_id, r.topic, r.partition)] = r
    return [*groups.values(), *offsets.values()]


@dataclass
class OffsetsLog:
    """The offsets partitions' logs under ``log_dir`` (shared by every broker of the cluster)."""

    log_dir: Path
    compact_bytes: int = DEFAULT_COMPACT_BYTES
    _fds: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (fd, epoch)
    _locks: dict[int, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def _lock(self, partition: int) -> threading.Lock:
        """One lock per partition: a long load must not block appends to the others."""
        with self._locks_lock:
            return self._locks.setdefault(partition, threading.Lock())

    def partition_dir(self, partition: int) -> Path:
        return self.log_dir / f"__consumer_offsets-{partition}"

    def log_path(self, partition: int) -> Path:
        return self.partition_dir(partition) / "log"

    def _epoch_path(self, partition: int) -> Path:
        return self.partition_dir(partition) / "leader-epoch"

    def _fenced_by(self, partition: int, epoch: int) -> int | None:
        """The newer leader epoch that fences ``epoch``, if any."""
        try:
            current = int(self._epoch_path(partition).read_text().strip() or -1)
        except (OSError, ValueError):
            return None
        return current if current > epoch else None

    def _open(self, partition: int) -> int:
        directory = self.partition_dir(partition)
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(self.log_path(partition), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)

    def load(self, partition: int, epoch: int) -> LoadResult:
        """Become the writer of ``partition`` at ``epoch`` and read its log (blocking; run in a thread)."""
        with self._lock(partition):
            self._close(partition)
            directory = self.partition_dir(partition)
            directory.mkdir(parents=True, exist_ok=True)
            fenced = self._fenced_by(partition, epoch)
            if fenced is not None:
                raise PersistError(
                    ErrorCode.NOT_COORDINATOR, f"partition {partition} epoch {fenced} > {epoch}"
                )
            tmp = self._epoch_path(partition).with_suffix(".tmp")
            tmp.write_text(str(epoch))
            os.replace(tmp, self._epoch_path(partition))
            fd = self._open(partition)
            # The marker: whatever an older epoch writes after it is void.
            self._write_all(fd, encode_line(None, epoch))
            result = self._read(partition)
            if self.log_path(partition).stat().st_size > self.compact_bytes:
                os.close(fd)
                fd = self._rewrite(partition, epoch, result.records)
                result.compacted = True
            self._fds[partition] = (fd, epoch)
        log.info(
            "offsets partition %d: loaded %d records from %d lines at epoch %d (skipped %d corrupt, %d fenced)%s",
            partition,
            len(result.records),
            result.lines,
            epoch,
            result.skipped_corrupt,
            result.skipped_fenced,
            ", compacted" if result.compacted else "",
        )
        return result

    def _read(self, partition: int) -> LoadResult:
        result = LoadResult(records=[])
        max_marker = -1
        try:
            data = self.log_path(partition).read_bytes()
        except FileNotFoundError:
            return result
        for line in data.splitlines(keepends=True):
            result.lines += 1
            parsed = _parse_line(line)
            if parsed is None:
                result.skipped_corrupt += 1
                continue
            record_epoch, record = parsed
            if record is None:
                max_marker = max(max_marker, record_epoch)
            elif record_epoch < max_marker:
                result.skipped_fenced += 1  # written by a deposed leader after its successor took over
            else:
                result.records.append(record)
        return result

    def _rewrite(self, partition: int, epoch: int, records: list[Record]) -> int:
        compacted = _compact(records)
        tmp = self.log_path(partition).with_suffix(".compact")
        with open(tmp, "wb") as f:
            f.write(encode_line(None, epoch))
            for r in compacted:
                f.write(encode_line(r, epoch))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.log_path(partition))
        dir_fd = os.open(self.partition_dir(partition), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self._open(partition)

    def append(self, partition: int, records: list[Record]) -> None:
        """Append durably (fsync); raises :class:`PersistError` if we are not or no longer the writer."""
        with self._lock(partition):
            entry = self._fds.get(partition)
            if entry is None:
                raise PersistError(
                    ErrorCode.NOT_COORDINATOR, f"not the writer of offsets partition {partition}"
                )
            fd, epoch = entry
            if self._fenced_by(partition, epoch) is not None:
                self._close(partition)
                raise PersistError(
                    ErrorCode.NOT_COORDINATOR, f"offsets partition {partition} has a newer leader"
                )
            try:
                self._write_all(fd, b"".join(encode_line(r, epoch) for r in records))
            except OSError as exc:
                raise PersistError(ErrorCode.COORDINATOR_NOT_AVAILABLE, f"append failed: {exc}") from exc

    def _close(self, partition: int) -> None:
        entry = self._fds.pop(partition, None)
        if entry is not None:
            os.close(entry[0])

    def release(self, partition: int, epoch: int | None = None) -> None:
        """Stop writing ``partition`` (leadership moved away); with ``epoch``, only that epoch's writer,
        so a late release cannot close the file a newer leadership of this broker just opened."""
        with self._lock(partition):
            entry = self._fds.get(partition)
            if entry is not None and (epoch is None or entry[1] <= epoch):
                self._close(partition)

    def close(self) -> None:
        for partition in list(self._fds):
            self.release(partition)

    def read(self, partition: int) -> list[Record]:
        """Every valid record of ``partition`` (for tests and inspection; takes no leadership)."""
        return self._read(partition).records

"""A data partition's log on disk: segment rolling, retention by size, recovery of a torn tail, and
the validation of a Produce's batches (CRC32C, size, whole batches)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator_mode.broker.data_log import PartitionLog
from coordinator_mode.broker.records import InvalidRecords, parse_produce
from tests.batches import batch, values


def append(plog: PartitionLog, *payloads: bytes) -> int:
    return plog.append(parse_produce(batch(list(payloads)), 1 << 20), leader_epoch=3).base_offset


def test_segments_roll_and_old_ones_are_deleted_past_retention(tmp_path: Path) -> None:
    plog = PartitionLog(tmp_path / "t-0", segment_bytes=2_000, retention_bytes=5_000)
    for i in range(60):
        assert append(plog, b"%04d" % i + b"." * 200) == i
    segments = sorted(p.name for p in (tmp_path / "t-0").glob("*.log"))
    assert 1 < len(segments) <= 4  # rolled, and the oldest deleted
    assert plog.size < 5_000 + 2_000
    assert plog.log_start_offset > 0 and plog.end_offset == 60
    assert segments[0] == f"{plog.log_start_offset:020d}.log"
    got = values(plog.read(plog.log_start_offset, 1 << 20))
    assert [o for o, _ in got] == list(range(plog.log_start_offset, 60))


def test_a_reopened_log_cuts_a_torn_tail_and_keeps_the_rest(tmp_path: Path) -> None:
    plog = PartitionLog(tmp_path / "t-0", segment_bytes=1 << 20, retention_bytes=1 << 30)
    append(plog, b"a", b"b")
    append(plog, b"c")
    plog.close()
    segment = next((tmp_path / "t-0").glob("*.log"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + batch([b"torn"])[:30])  # a crash mid-write
    reopened = PartitionLog(tmp_path / "t-0", segment_bytes=1 << 20, retention_bytes=1 << 30)
    assert reopened.end_offset == 3 and segment.read_bytes() == whole
    assert append(reopened, b"d") == 3


def test_produce_validation() -> None:
    good = batch([b"x"])
    assert len(parse_produce(good, 1 << 20)) == 1
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    cases = {
        bytes(corrupt): 2,  # CORRUPT_MESSAGE: CRC32C mismatch
        good[:-3]: 2,  # not a whole batch
        good + good[:20]: 2,
        batch([b"y" * 5_000]): 10,  # MESSAGE_TOO_LARGE against a 4 KiB limit
    }
    for data, code in cases.items():
        with pytest.raises(InvalidRecords) as err:
            parse_produce(data, 4_096)
        assert err.value.code == code

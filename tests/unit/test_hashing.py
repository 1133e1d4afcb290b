"""Group -> offsets partition with Java's exact String.hashCode semantics (reference test vectors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator_mode.hashing import java_abs, java_string_hash, partition_for

#: group id, Java hashCode, partition for 50 partitions (checked against the JVM; see the reference).
VECTORS = [
    ("hello", 99162322, 22),
    ("test_group_id", -737384472, 22),
    ("my-group", -1906497762, 12),
    ("group1", -1237460590, 40),
    ("test-consumer-group", -1793216381, 31),
    ("console-consumer", -648006740, 40),
    ("", 0, 0),
    ("polygenelubricants", -(2**31), 0),
]


@pytest.mark.parametrize(("group", "hash_code", "partition"), VECTORS)
def test_reference_vectors(group: str, hash_code: int, partition: int) -> None:
    assert java_string_hash(group) == hash_code
    assert partition_for(group) == partition
    assert partition_for(group, 50) == partition


def test_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16: 0xD83D * 31 + 0xDE00.
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00
    assert java_string_hash("é") == 0xE9


def test_utils_abs_of_min_value_is_zero() -> None:
    assert java_abs(-(2**31)) == 0
    assert java_abs(-5) == 5


@given(st.text(max_size=60), st.integers(min_value=1, max_value=200))
def test_matches_the_textbook_definition(group: str, n: int) -> None:
    units = group.encode("utf-16-be", errors="surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i : i + 2], "big")) % 2**32
    signed = h - 2**32 if h >= 2**31 else h
    assert java_string_hash(group) == signed
    assert 0 <= partition_for(group, n) < n


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError):
        partition_for("g", 0)

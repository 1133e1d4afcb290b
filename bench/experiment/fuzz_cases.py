"""Structured fuzz cases for the brokers: Hypothesis strategies built from Kafka's own message schemas.

For an API key and version the broker advertises, :func:`requests` draws a request whose fields are
those of that version in Kafka's JSON schema (kafka-python carries them: ``Request.fields``), with
values biased to the edges: integers at their type's limits, empty, long and null strings, empty and
oversized arrays. kafka-python encodes it, so the frame and header are valid. :func:`mutations` then
damages the encoded frame in one of the ways a broken or hostile client would: a truncation, a frame
size that lies, an int16/int32 overwritten with a negative or huge value (a length or count that
does not match), invalid UTF-8 in place of a string's bytes, an unknown tagged field (flexible
versions), trailing bytes, or nothing at all (a valid request, answered normally or with an error).

The schema walk covers every field kind kafka-python 3.0 generates: ints, uint16, float64, bool,
string, bytes, uuid, records, arrays of primitives, structs and arrays of structs.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

#: (minimum, maximum) of each integer type in Kafka's schemas.
INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
#: Longest string or bytes drawn: past a group id's sane size, well under the broker's frame limit.
LONG = 4_096
MAX_ITEMS = 4
#: Values a length, count or size field is overwritten with.
HOSTILE_INT32 = (-1, -2, -(2**31), 2**31 - 1, 2**30, 0x7FFF, 0xFFFF, 1_000_000)
HOSTILE_INT16 = (-1, -2, -(2**15), 2**15 - 1, 0x7FFF)
MUTATIONS = ("none", "truncate", "frame_size", "int16", "int32", "utf8", "tagged", "trailing")


@dataclass(frozen=True)
class Case:
    """One fuzz case: the request it started from, the bytes sent, and what was done to them."""

    api_key: int
    version: int
    correlation_id: int
    request: Any  # the kafka-python request before mutation (its response class decodes answers)
    mutation: str
    data: bytes


def _integer(kind: str) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[kind]
    edges = sorted(e for e in {low, high, -1, 0, 1, low + 1, high - 1} if low <= e <= high)
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "g", "consumer", "range", "\u00e9\u4e2d\U0001f600"]),
        st.text(max_size=32),
        st.integers(256, LONG).map(lambda n: "x" * n),
    )


def _bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=64), st.integers(256, LONG).map(lambda n: b"\x00" * n))


def _primitive(kind: str) -> st.SearchStrategy[Any]:
    if kind in INT_RANGES:
        return _integer(kind)
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == "string":
        return _text()
    if kind in ("bytes", "records"):
        return _bytes()
    if kind == "uuid":
        return st.one_of(st.just(uuid.UUID(int=0)), st.uuids())
    raise ValueError(f"no strategy for schema type {kind!r}")


def _value(field: Any, version: int) -> st.SearchStrategy[Any]:
    """A strategy for one schema field at ``version`` (None among its values when it is nullable)."""
    type_str: str = field.type_str
    if getattr(field, "data_class", None) is not None:
        item = _struct(field.data_class, field.fields, version)
        strategy: st.SearchStrategy[Any] = st.lists(item, max_size=MAX_ITEMS) if field.is_array() else item
    elif type_str.startswith("[]"):
        strategy = st.lists(_primitive(type_str[2:]), max_size=MAX_ITEMS)
    else:
        strategy = _primitive(type_str)
    if field.nullable_for_version_q(version):
        strategy = st.one_of(st.none(), strategy)
    return strategy


def _struct(cls: Any, fields: dict[str, Any], version: int) -> st.SearchStrategy[Any]:
    present = {name: f for name, f in fields.items() if f.for_version_q(version)}
    return st.fixed_dictionaries({name: _value(f, version) for name, f in present.items()}).map(
        lambda values: cls(**values)
    )


def requests(request_class: Any, version: int) -> st.SearchStrategy[Any]:
    """A request of ``request_class`` at ``version`` with schema-shaped, edge-biased field values."""
    present = {name: f for name, f in request_class.fields.items() if f.for_version_q(version)}
    return st.fixed_dictionaries({name: _value(f, version) for name, f in present.items()}).map(
        lambda values: request_class(version=version, **values)
    )


def encode(request: Any, correlation_id: int) -> tuple[bytes, int] | None:
    """The framed request and its header's size, or None when kafka-python itself cannot encode the
    drawn values (a float where none fits, a string past int16): such a draw is no case."""
    request.with_header(correlation_id=correlation_id, client_id="fuzz")
    try:
        framed = bytes(request.encode(header=True, framed=True))
        body = bytes(request.encode(header=False, framed=False))
    except (struct.error, ValueError, TypeError, OverflowError, UnicodeEncodeError, AttributeError):
        return None
    return framed, len(framed) - 4 - len(body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def mutations(draw: st.DrawFn, frame: bytes, header_size: int, flexible: bool) -> tuple[str, bytes]:
    """One way to damage ``frame`` (4-byte size, then the request header of ``header_size`` bytes,
    then the body): the mutation's name and the bytes to send."""
    kinds = [k for k in MUTATIONS if k != "tagged" or flexible]
    kind = draw(st.sampled_from(kinds))
    body_start = 4 + header_size
    if kind == "none":
        return kind, frame
    if kind == "truncate":
        return kind, frame[: draw(st.integers(0, len(frame) - 1))]
    if kind == "frame_size":
        size = draw(st.one_of(st.sampled_from(HOSTILE_INT32), st.integers(0, len(frame) + 64)))
        return kind, struct.pack(">i", size) + frame[4:]
    if kind in ("int16", "int32", "utf8") and len(frame) <= body_start:
        return "none", frame  # nothing after the header to damage (ApiVersions v0)
    if kind in ("int16", "int32"):
        width, fmt, values = (2, ">h", HOSTILE_INT16) if kind == "int16" else (4, ">i", HOSTILE_INT32)
        at = draw(st.integers(body_start, max(body_start, len(frame) - width)))
        value = struct.pack(fmt, draw(st.sampled_from(values)))
        return kind, (frame[:at] + value + frame[at + width :])[: len(frame)]
    if kind == "utf8":
        at = draw(st.integers(body_start, len(frame) - 1))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return kind, (frame[:at] + bad + frame[at + len(bad) :])[: len(frame)]
    if kind == "tagged":
        # The body's last byte is its (empty) tagged-field count: replace it with one unknown field.
        tag = draw(st.sampled_from([7, 127, 10_000, 2**31 - 1]))
        payload = draw(st.binary(max_size=16))
        tagged = _varint(1) + _varint(tag) + _varint(len(payload)) + payload
        body = frame[4:-1] + tagged
        return kind, struct.pack(">i", len(body)) + body
    junk = draw(st.binary(min_size=1, max_size=64))  # trailing
    body = frame[4:] + junk
    return kind, struct.pack(">i", len(body)) + body

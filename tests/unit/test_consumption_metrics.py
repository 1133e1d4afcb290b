"""The records checks on hand-made histories: a lost record, a duplicate after a graceful hand-over
(a violation) and one after a crash within the bound (allowed), pauses and the records/s curve."""

from __future__ import annotations

from typing import Any

from bench.analysis.metrics.consumption import check_records, handover_pauses, rate_per_second
from group_api import Event, EventKind

TP = ("t", 0)


def ev(kind: EventKind, member: str, second: float, **extra: Any) -> Event:
    return Event(kind, member, "g", "zk", "chain", 1, (TP,), int(second * 1e9), second, extra)


def consumed(member: str, second: float, first: int, last: int) -> Event:
    return ev(
        EventKind.CONSUMED, member, second, first_offset=first, last_offset=last, count=last - first + 1
    )


def committed(member: str, second: float, offset: int) -> Event:
    return ev(EventKind.OFFSETS_COMMITTED, member, second, offsets=[["t", 0, offset]])


def test_a_graceful_hand_over_without_duplicates_passes() -> None:
    events = [
        consumed("a", 1, 0, 9),
        committed("a", 1.5, 10),
        ev(EventKind.LEFT, "a", 2),
        consumed("b", 3, 10, 19),
    ]
    check = check_records(events, {TP: range(20)})
    assert check.ok and check.summary()["lost"] == 0 and not check.duplicates
    assert handover_pauses(events) == {TP: [2.0]}
    assert rate_per_second(events) == [(0, 10), (1, 0), (2, 10)]


def test_a_duplicate_after_a_graceful_leave_is_a_violation_and_a_gap_is_lost() -> None:
    events = [
        consumed("a", 1, 0, 9),
        committed("a", 1.5, 8),
        ev(EventKind.LEFT, "a", 2),
        consumed("b", 3, 8, 15),
    ]
    check = check_records(events, {TP: range(20)})
    assert [o for _, o, _ in check.beyond_crash_bound] == [8, 9]
    assert [o for _, o in check.lost] == list(range(16, 20))
    assert not check.ok


def test_crash_duplicates_within_the_bound_are_allowed() -> None:
    # a committed 5, processed to 9, then crashed (no `left`): b redoes 5-9.
    events = [
        consumed("a", 1, 0, 9),
        committed("a", 0.5, 5),
        consumed("b", 8, 5, 12),
        committed("b", 8.5, 13),
        ev(EventKind.LEFT, "b", 9),
    ]
    check = check_records(events, {TP: range(13)})
    assert check.ok
    assert [o for _, o, _ in check.duplicates] == [5, 6, 7, 8, 9]
    assert check.crash_bound == 5

"""The KIP-848 group state machine without IO: epochs, reconciliation, fencing, timers, replay, assignors."""

from __future__ import annotations

import pytest

from bench.analysis.checker import LEADER_VARIANTS
from coordinator_mode.group.config import CoordinatorConfig
from coordinator_mode.group.consumer_coordinator import ConsumerGroupCoordinator
from coordinator_mode.group.consumer_group import MemberState
from coordinator_mode.group.errors import ErrorCode, PersistError
from coordinator_mode.group.messages import ConsumerHeartbeat
from coordinator_mode.group.server_assignors import RangeAssignor, UniformAssignor

TOPICS = {"t": 6}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def coordinator(log: list, clock: Clock | None = None) -> ConsumerGroupCoordinator:
    return ConsumerGroupCoordinator(
        CoordinatorConfig(consumer_session_timeout_ms=10_000),
        clock or Clock(),
        lambda: TOPICS,
        lambda group, records: log.extend(records),
    )


def join(c: ConsumerGroupCoordinator, member_id: str, **fields):
    req = ConsumerHeartbeat(
        "g", member_id, 0, rebalance_timeout_ms=5_000, subscribed_topics=("t",), owned={}, **fields
    )
    result = c.heartbeat(req)
    assert result.error is ErrorCode.NONE, result
    return result


def beat(c: ConsumerGroupCoordinator, member_id: str, epoch: int, owned: dict | None):
    return c.heartbeat(ConsumerHeartbeat("g", member_id, epoch, owned=owned))


def owners(c: ConsumerGroupCoordinator) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    for m in c.groups["g"].members.values():
        for t, ps in list(m.assigned.items()) + list(m.pending_revocation.items()):
            for p in ps:
                out.setdefault((t, p), []).append(m.member_id)
    return out


def test_a_partition_moves_only_after_its_owner_revoked_it() -> None:
    records: list = []
    c = coordinator(records)
    a = join(c, "a")
    assert a.member_epoch == 1 and a.assignment == {"t": frozenset(range(6))}
    b = join(c, "b")
    assert b.member_epoch == 2 and b.assignment == {}  # b's target partitions are still a's
    assert c.groups["g"].members["b"].state is MemberState.UNRELEASED_PARTITIONS
    # a is told to keep half; it still owns all six, so it stays at epoch 1, revoking.
    r = beat(c, "a", 1, {"t": frozenset(range(6))})
    assert r.member_epoch == 1 and len(r.assignment["t"]) == 3
    assert c.groups["g"].members["a"].state is MemberState.UNREVOKED_PARTITIONS
    assert beat(c, "b", 2, {}).assignment is None  # still nothing free
    assert all(len(v) == 1 for v in owners(c).values())
    # a acknowledges: it moves to epoch 2, and b gets the freed partitions at its next heartbeat.
    kept = r.assignment["t"]
    assert beat(c, "a", 1, {"t": kept}).member_epoch == 2
    r = beat(c, "b", 2, {})
    assert r.assignment == {"t": frozenset(range(6)) - kept}
    assert c.groups["g"].state.value == "Stable"
    assert all(len(v) == 1 for v in owners(c).values())


def test_epochs_fence_and_leave() -> None:
    c = coordinator([])
    join(c, "a")
    assert beat(c, "a", 5, {}).error is ErrorCode.FENCED_MEMBER_EPOCH
    assert beat(c, "x", 1, {}).error is ErrorCode.UNKNOWN_MEMBER_ID
    left = c.heartbeat(ConsumerHeartbeat("g", "a", -1))
    assert left.error is ErrorCode.NONE and left.member_epoch == -1
    assert not c.groups["g"].members and c.groups["g"].group_epoch == 2


def test_session_expiry_fences_and_reassigns() -> None:
    clock = Clock()
    c = coordinator([], clock)
    join(c, "a")
    join(c, "b")
    clock.now = 5_000
    beat(c, "b", 2, {})
    clock.now = 10_001  # a's session (10 s) is over; b's is not
    c.poll(clock.now)
    assert set(c.groups["g"].members) == {"b"}
    r = beat(c, "b", 2, {})
    assert r.member_epoch == 3 and r.assignment == {"t": frozenset(range(6))}


def test_a_failed_write_leaves_the_group_as_it_was() -> None:
    c = coordinator([])
    join(c, "a")

    def fail(group, records):
        raise PersistError(ErrorCode.NOT_COORDINATOR)

    c._persist = fail
    assert (
        c.heartbeat(
            ConsumerHeartbeat("g", "", 0, rebalance_timeout_ms=1, subscribed_topics=("t",), owned={})
        ).error
        is ErrorCode.NOT_COORDINATOR
    )
    assert set(c.groups["g"].members) == {"a"} and c.groups["g"].group_epoch == 1


def test_replaying_the_records_rebuilds_the_group() -> None:
    records: list = []
    c = coordinator(records)
    join(c, "a")
    join(c, "b")
    beat(c, "a", 1, {"t": frozenset(range(6))})
    loaded = coordinator([])
    for r in records:
        loaded.replay(r)
    assert loaded.describe("g") == c.describe("g")


def test_request_validation() -> None:
    c = coordinator([])
    assert (
        c.heartbeat(ConsumerHeartbeat("g", "", 0, subscribed_topics=("t",), owned={})).error
        is ErrorCode.INVALID_REQUEST
    )
    assert c.heartbeat(ConsumerHeartbeat("g", "", -3)).error is ErrorCode.INVALID_REQUEST
    assert (
        c.heartbeat(
            ConsumerHeartbeat(
                "g", "", 0, rebalance_timeout_ms=1, subscribed_topics=("t",), owned={}, server_assignor="x"
            )
        ).error
        is ErrorCode.UNSUPPORTED_ASSIGNOR
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_uniform_is_balanced_and_sticky(n: int) -> None:
    u = UniformAssignor()
    members = {f"m{i}": ("a", "b") for i in range(n)}
    topics = {"a": 5, "b": 4}
    first = u.assign(members, topics, {})
    sizes = [sum(len(ps) for ps in a.values()) for a in first.values()]
    assert sum(sizes) == 9 and max(sizes) - min(sizes) <= 1
    grown = {**members, "new": ("a", "b")}
    second = u.assign(grown, topics, first)
    moved = sum(
        len(first[m].get(t, frozenset()) - second[m].get(t, frozenset())) for m in first for t in topics
    )
    assert moved == sum(len(ps) for ps in second["new"].values())  # only what the new member takes moves


def test_range_gives_contiguous_ranges() -> None:
    out = RangeAssignor().assign({"a": ("t",), "b": ("t",)}, {"t": 5}, {})
    assert out == {"a": {"t": frozenset({0, 1, 2})}, "b": {"t": frozenset({3, 4})}}


def test_the_consumer_variant_has_no_leader() -> None:
    assert ("coordinator", "consumer") not in LEADER_VARIANTS  # the broker assigns

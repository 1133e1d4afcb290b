"""The pure parts of the replicated offsets topic: the controller's elections (from the ISR only,
preferred leaders on the periodic check) and the leader's ISR and high-watermark bookkeeping."""

from __future__ import annotations

from coordinator_mode.broker.controller import (
    NO_LEADER,
    PartitionLeader,
    assign_replicas,
    plan_offsets_states,
)
from coordinator_mode.broker.partition import LeaderPartition


def state(leader: int, epoch: int, replicas: tuple[int, ...], isr: tuple[int, ...]) -> PartitionLeader:
    return PartitionLeader(leader, epoch, replicas, isr, version=3)


def test_replicas_spread_preferred_leaders_over_the_brokers() -> None:
    assignment = assign_replicas(6, [3, 1, 2], 3)
    assert assignment[0] == (1, 2, 3) and assignment[1] == (2, 3, 1)
    assert sorted(r[0] for r in assignment.values()) == [1, 1, 2, 2, 3, 3]
    assert assign_replicas(2, [1], 3) == {0: (1,), 1: (1,)}


def test_a_dead_leader_is_replaced_by_the_first_live_replica_in_the_isr_only() -> None:
    current = {0: state(1, 4, (1, 2, 3), (1, 3))}  # broker 2 is out of the ISR
    changed = plan_offsets_states(current, live={2, 3})
    assert changed == {0: PartitionLeader(3, 5, (1, 2, 3), (3,), 3)}


def test_no_live_isr_member_leaves_the_partition_offline_with_its_last_isr() -> None:
    current = {0: state(3, 5, (1, 2, 3), (3,))}
    changed = plan_offsets_states(current, live={1, 2})
    assert changed == {0: PartitionLeader(NO_LEADER, 6, (1, 2, 3), (3,), 3)}
    # The last ISR member comes back: it leads again; the others never do.
    back = plan_offsets_states({0: changed[0]}, live={1, 2, 3})
    assert back[0].leader == 3 and back[0].epoch == 7


def test_a_dead_follower_leaves_the_isr_and_the_leader_keeps_its_epoch() -> None:
    current = {0: state(1, 2, (1, 2, 3), (1, 2, 3))}
    assert plan_offsets_states(current, live={1, 3}) == {0: PartitionLeader(1, 2, (1, 2, 3), (1, 3), 3)}


def test_preferred_leaders_return_only_on_the_periodic_check_above_the_threshold() -> None:
    current = {
        p: state(2, 1, (1, 2, 3) if p < 5 else (2, 3, 1), (1, 2, 3)) for p in range(10)
    }  # broker 1 prefers partitions 0-4 and leads none of them
    live = {1, 2, 3}
    assert plan_offsets_states(current, live) == {}  # a broker (re)joining moves nothing
    moved = plan_offsets_states(current, live, preferred_check=True)
    assert sorted(moved) == [0, 1, 2, 3, 4] and all(s.leader == 1 and s.epoch == 2 for s in moved.values())
    # Within the 10 % threshold nothing moves: 1 of 11 preferred partitions is led elsewhere.
    balanced = {p: state(1, 1, (1, 2, 3), (1, 2, 3)) for p in range(10)} | {
        10: state(2, 1, (1, 2, 3), (1, 2, 3))
    }
    assert plan_offsets_states(balanced, live, preferred_check=True) == {}


def test_high_watermark_follows_the_slowest_isr_member_and_a_lagging_one_leaves() -> None:
    p = LeaderPartition(0, 1, 0, (1, 2, 3), frozenset({1, 2, 3}), end_offset=0, high_watermark=0, now_ms=0)
    p.on_append(5)
    assert not p.reached(5)
    p.on_follower_fetch(2, 5, now_ms=10)
    assert not p.reached(5)  # broker 3 has not fetched it yet
    assert p.on_follower_fetch(3, 5, now_ms=20) and p.reached(5)
    p.on_append(9)
    p.on_follower_fetch(2, 9, now_ms=30)
    assert p.out_of_sync(now_ms=30_000, max_lag_ms=30_000) == set()
    assert p.out_of_sync(now_ms=30_021, max_lag_ms=30_000) == {3}  # last caught up at 20
    assert p.apply_isr(frozenset({1, 2})) and p.high_watermark == 9  # the shrink lets the HW move
    assert p.expand_candidates() == set()
    p.on_follower_fetch(3, 9, now_ms=30_100)
    assert p.expand_candidates() == {3}

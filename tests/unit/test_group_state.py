"""The classic group state machine, transition by transition, on a fake clock (no sockets, no threads)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from coordinator_mode.group.classic import ClassicGroup, GroupContext
from coordinator_mode.group.config import CoordinatorConfig
from coordinator_mode.group.coordinator import GroupCoordinator, PartitionState
from coordinator_mode.group.errors import ErrorCode, IllegalStateTransition, PersistError
from coordinator_mode.group.messages import (
    JoinRequest,
    JoinResult,
    LeavingMember,
    OffsetCommit,
    SyncRequest,
    SyncResult,
)
from coordinator_mode.group.records import GroupMetadataRecord, OffsetCommitRecord, Record
from coordinator_mode.group.state import ClassicGroupState

GROUP = "g"
SESSION = 10_000
REBALANCE = 60_000
DELAY = 3_000
RANGE = (("range", b"sub"),)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    coord: GroupCoordinator
    clock: FakeClock
    records: list[Record] = field(default_factory=list)
    fail_persist: ErrorCode | None = None

    def advance(self, ms: float) -> None:
        self.clock.now += ms
        self.coord.poll()

    @property
    def group(self) -> ClassicGroup:
        return self.coord.groups[GROUP]


class Box:
    """Collects what a callback receives; ``value`` is the single answer (None while parked)."""

    def __init__(self) -> None:
        self.values: list[JoinResult | SyncResult] = []

    def __call__(self, value: JoinResult | SyncResult) -> None:
        self.values.append(value)

    @property
    def value(self):
        assert len(self.values) <= 1, self.values
        return self.values[0] if self.values else None


def make_env(delay: int = DELAY, **config: int) -> Env:
    clock = FakeClock()
    ids = itertools.count(1)
    env: Env

    def persist(partition: int, records: list[Record]) -> None:
        if env.fail_persist is not None:
            raise PersistError(env.fail_persist)
        env.records.extend(records)

    coord = GroupCoordinator(
        partition_for=lambda g: 0,
        persist=persist,
        config=CoordinatorConfig(initial_rebalance_delay_ms=delay, **config),
        clock=clock,
        wall_clock=lambda: 1_000.0,
        new_member_id=lambda prefix: f"{prefix}-{next(ids)}",
    )
    env = Env(coord, clock)
    coord.begin_loading(0, epoch=1)
    coord.complete_loading(0, 1, [])
    return env


@pytest.fixture
def env() -> Env:
    return make_env()


def join_req(member_id: str = "", client: str = "c", **kw) -> JoinRequest:
    defaults = dict(
        group_id=GROUP,
        member_id=member_id,
        protocol_type="consumer",
        protocols=RANGE,
        session_timeout_ms=SESSION,
        rebalance_timeout_ms=REBALANCE,
        client_id=client,
    )
    defaults.update(kw)
    return JoinRequest(**defaults)


def join(env: Env, member_id: str = "", client: str = "c", **kw) -> Box:
    box = Box()
    env.coord.join(join_req(member_id, client, **kw), box)
    return box


def new_member(env: Env, client: str, **kw) -> tuple[str, Box]:
    """KIP-394's two steps: MEMBER_ID_REQUIRED, then the parked join with the issued id."""
    first = join(env, "", client, **kw)
    assert first.value.error is ErrorCode.MEMBER_ID_REQUIRED
    member_id = first.value.member_id
    return member_id, join(env, member_id, client, **kw)


def sync(env: Env, member_id: str, generation: int, assignments=(), **kw) -> Box:
    box = Box()
    env.coord.sync(SyncRequest(GROUP, member_id, generation, tuple(assignments), **kw), box)
    return box


def run_with_heartbeats(env: Env, ms: int, members: list[str], generation: int, step: int = 1_000) -> None:
    """Advance ``ms`` of time while ``members`` heartbeat every ``step`` ms."""
    for _ in range(ms // step):
        env.advance(step)
        for member_id in members:
            env.coord.heartbeat(GROUP, member_id, None, generation)
    env.advance(ms % step)


def finish_initial_delay(env: Env) -> None:
    """Let the initial delay (and its extensions for members that arrived meanwhile) run out."""
    for _ in range(100):
        if env.group.state is not ClassicGroupState.PREPARING_REBALANCE:
            return
        env.advance(DELAY)
    raise AssertionError("the initial rebalance never completed")


def stable_group(env: Env, *clients: str) -> list[str]:
    """Form a Stable generation with one member per client (the first is the leader)."""
    joined = [new_member(env, c) for c in clients]
    finish_initial_delay(env)
    ids = [member_id for member_id, _ in joined]
    gen = joined[0][1].value.generation_id
    followers = [sync(env, m, gen) for m in ids[1:]]
    leader = sync(env, ids[0], gen, [(m, m.encode()) for m in ids])
    assert leader.value.error is ErrorCode.NONE
    assert all(f.value.error is ErrorCode.NONE for f in followers)
    assert env.group.state is ClassicGroupState.STABLE
    return ids


# -- forming the first generation ----------------------------------------------------------------


def test_first_join_v4_requires_member_id_and_leaves_it_pending(env: Env) -> None:
    box = join(env, "", "alice")
    assert box.value.error is ErrorCode.MEMBER_ID_REQUIRED
    assert box.value.member_id == "alice-1"
    assert env.group.state is ClassicGroupState.EMPTY
    assert "alice-1" in env.group.pending_members


def test_join_before_v4_adds_the_member_directly(env: Env) -> None:
    box = join(env, "", "old", require_known_member_id=False)
    assert box.value is None  # parked
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    assert list(env.group.members) == ["old-1"]


def test_new_group_is_recorded_empty_at_once(env: Env) -> None:
    join(env, "", "alice")
    assert env.records == [GroupMetadataRecord(GROUP, 0, None, None, None)]


def test_second_join_parks_until_initial_delay_then_completing_rebalance(env: Env) -> None:
    member_id, box = new_member(env, "alice")
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    assert env.group.previous_state is ClassicGroupState.EMPTY
    assert box.value is None
    env.advance(DELAY - 1)
    assert box.value is None, "the initial delay never completes early"
    env.advance(1)
    result = box.value
    assert result.error is ErrorCode.NONE
    assert result.generation_id == 1
    assert result.leader_id == member_id
    assert result.protocol_name == "range"
    assert [m.member_id for m in result.members] == [member_id]
    assert env.group.state is ClassicGroupState.COMPLETING_REBALANCE


def test_initial_delay_extends_as_members_arrive_capped_by_rebalance_timeout() -> None:
    env = make_env(delay=3_000)
    a, box_a = new_member(env, "a", rebalance_timeout_ms=7_000)
    env.advance(2_000)
    new_member(env, "b", rebalance_timeout_ms=7_000)  # arrives during the first delay
    env.advance(1_000)  # first delay (3 s) over: extend by min(3000, remaining 4000)
    assert box_a.value is None
    env.advance(1_000)
    new_member(env, "c", rebalance_timeout_ms=7_000)  # arrives during the second delay
    env.advance(2_000)  # t=6 s: second delay over, remaining 1000 -> extend by 1000
    assert box_a.value is None
    env.advance(999)
    assert box_a.value is None
    env.advance(1)  # t=7 s = the rebalance timeout: no more extensions
    assert box_a.value.generation_id == 1
    assert len(box_a.value.members) == 3


def test_initial_delay_without_new_arrivals_completes_after_one_delay(env: Env) -> None:
    _, box = new_member(env, "a")
    env.advance(DELAY)
    assert box.value.error is ErrorCode.NONE


def test_zero_initial_delay_completes_at_the_next_poll() -> None:
    env = make_env(delay=0)
    _, box = new_member(env, "a")
    assert box.value is None
    env.advance(0)
    assert box.value.generation_id == 1


def test_leader_is_first_member_and_alone_gets_member_list(env: Env) -> None:
    a, box_a = new_member(env, "a")
    b, box_b = new_member(env, "b")
    finish_initial_delay(env)
    assert box_a.value.leader_id == a and box_b.value.leader_id == a
    assert {m.member_id for m in box_a.value.members} == {a, b}
    assert box_b.value.members == ()
    assert box_a.value.generation_id == box_b.value.generation_id == 1


def test_followers_sync_parks_until_leader_sync_then_stable(env: Env) -> None:
    a, _ = new_member(env, "a")
    b, _ = new_member(env, "b")
    finish_initial_delay(env)
    follower = sync(env, b, 1)
    assert follower.value is None
    assert env.group.state is ClassicGroupState.COMPLETING_REBALANCE
    leader = sync(env, a, 1, [(a, b"A"), (b, b"B")])
    assert leader.value == SyncResult(ErrorCode.NONE, b"A", "consumer", "range")
    assert follower.value.assignment == b"B"
    assert env.group.state is ClassicGroupState.STABLE
    record = env.records[-1]
    assert isinstance(record, GroupMetadataRecord) and record.generation_id == 1
    assert {m.member_id: m.assignment for m in record.members} == {a: b"A", b: b"B"}


def test_leader_sync_fills_missing_members_with_empty_assignment(env: Env) -> None:
    a, _ = new_member(env, "a")
    b, _ = new_member(env, "b")
    finish_initial_delay(env)
    sync(env, a, 1, [(a, b"A")])
    assert sync(env, b, 1).value.assignment == b""


def test_sync_in_stable_returns_stored_assignment(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    assert sync(env, b, 1).value.assignment == b.encode()


def test_sync_errors(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    assert sync(env, "nobody", 1).value.error is ErrorCode.UNKNOWN_MEMBER_ID
    assert sync(env, a, 7).value.error is ErrorCode.ILLEGAL_GENERATION
    assert sync(env, a, 1, protocol_type="connect").value.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert sync(env, a, 1, protocol_name="roundrobin").value.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL


# -- heartbeats ----------------------------------------------------------------------------------


def test_heartbeat_answers_by_state(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    hb = env.coord.heartbeat
    assert hb(GROUP, a, None, 1) is ErrorCode.NONE
    assert hb(GROUP, a, None, 0) is ErrorCode.ILLEGAL_GENERATION
    assert hb(GROUP, "zed", None, 1) is ErrorCode.UNKNOWN_MEMBER_ID
    join(env, a, "a")  # the leader rejoins: a rebalance starts
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    assert hb(GROUP, b, None, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    join(env, b, "b")  # everyone rejoined: not an initial rebalance, so it completes at once
    assert env.group.state is ClassicGroupState.COMPLETING_REBALANCE
    assert hb(GROUP, b, None, 2) is ErrorCode.NONE  # Kafka's code answers OK here


def test_heartbeat_pushes_session_deadline(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    for _ in range(5):
        env.advance(SESSION - 1)
        assert env.coord.heartbeat(GROUP, a, None, 1) is ErrorCode.NONE
        assert env.coord.heartbeat(GROUP, b, None, 1) is ErrorCode.NONE
    assert env.group.state is ClassicGroupState.STABLE


def test_an_offset_commit_pushes_the_session_deadline_as_a_heartbeat_does(env: Env) -> None:
    """Kafka 3.9 GroupCoordinator.doCommitOffsets: completeAndScheduleNextHeartbeatExpiration in
    Stable and PreparingRebalance. b only commits; a heartbeats. Neither is expired."""
    a, b = stable_group(env, "a", "b")
    for _ in range(3):
        env.advance(SESSION - 1)
        assert env.coord.heartbeat(GROUP, a, None, 1) is ErrorCode.NONE
        assert env.coord.commit_offsets(GROUP, b, None, 1, [OffsetCommit("t", 0, 1)])[0][1] is ErrorCode.NONE
    assert env.group.state is ClassicGroupState.STABLE and b in env.group.members
    join(env, a, "a")  # PreparingRebalance: b's commit (before its own rejoin) still extends it
    env.advance(SESSION - 1)
    assert env.coord.commit_offsets(GROUP, b, None, 1, [OffsetCommit("t", 0, 2)])[0][1] is ErrorCode.NONE
    env.advance(SESSION - 1)
    assert b in env.group.members
    env.advance(2)  # one session after b's last commit, with no heartbeat: b is gone
    assert b not in env.group.members


# -- rebalances from Stable ----------------------------------------------------------------------


def test_follower_rejoin_with_same_metadata_keeps_generation(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box = join(env, b, "b")
    assert box.value.generation_id == 1 and box.value.members == ()
    assert env.group.state is ClassicGroupState.STABLE


def test_follower_rejoin_with_new_metadata_rebalances(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    join(env, b, "b", protocols=(("range", b"other"),))
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE


def test_leader_keeps_leadership_when_it_rejoins(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_b = join(env, b, "b", protocols=(("range", b"new"),))  # follower triggers the rebalance
    box_a = join(env, a, "a")
    assert box_a.value.leader_id == a and box_b.value.leader_id == a
    assert box_a.value.generation_id == 2
    assert len(box_a.value.members) == 2


def test_new_member_joining_stable_group_rebalances_and_completes_when_all_rejoined(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    c, box_c = new_member(env, "c")
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    assert box_c.value is None
    assert env.coord.heartbeat(GROUP, a, None, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    box_a = join(env, a, "a")
    assert box_a.value is None
    box_b = join(env, b, "b")
    assert box_b.value.generation_id == 2
    assert box_c.value.generation_id == 2
    assert box_a.value.leader_id == a
    assert env.group.state is ClassicGroupState.COMPLETING_REBALANCE


def test_member_that_does_not_rejoin_is_dropped_at_rebalance_timeout(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_a = join(env, a, "a")
    assert env.coord.heartbeat(GROUP, b, None, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    run_with_heartbeats(env, REBALANCE - 1, [b], 1)  # b keeps its session alive but never rejoins
    assert box_a.value is None
    env.advance(1)
    assert box_a.value.generation_id == 2
    assert [m.member_id for m in box_a.value.members] == [a]
    assert b not in env.group.members


def test_leader_missing_from_rejoin_hands_leadership_to_a_joined_member(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_b = join(env, b, "b", protocols=(("range", b"x"),))
    env.advance(REBALANCE)
    assert box_b.value.leader_id == b
    assert [m.member_id for m in box_b.value.members] == [b]


def test_session_expiry_removes_member_and_rebalances(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    env.advance(SESSION - 1)
    env.coord.heartbeat(GROUP, a, None, 1)
    env.advance(1)  # b's deadline passes
    assert b not in env.group.members
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    box_a = join(env, a, "a")
    assert box_a.value.generation_id == 2 and box_a.value.leader_id == a


def test_session_expiry_of_leader_moves_leadership(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    env.advance(SESSION - 1)
    env.coord.heartbeat(GROUP, b, None, 1)
    env.advance(1)
    assert env.group.leader_id == b


def test_parked_existing_member_is_not_expired(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_a = join(env, a, "a")
    env.advance(SESSION + 1)  # a is parked in its join: its heartbeat is satisfied; b expires
    assert a in env.group.members
    assert box_a.value.generation_id == 2


def test_new_member_parked_in_join_expires_after_new_member_join_timeout() -> None:
    env = make_env(new_member_join_timeout_ms=20_000)
    a, b = stable_group(env, "a", "b")
    c, box_c = new_member(env, "c")
    join(env, a, "a")  # b never rejoins; the rebalance waits for it until the rebalance timeout
    run_with_heartbeats(env, 20_000, [b], 1)
    assert box_c.value.error is ErrorCode.UNKNOWN_MEMBER_ID
    assert c not in env.group.members


def test_pending_member_expires_after_session_timeout(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box = join(env, "", "late")
    pending = box.value.member_id
    assert pending in env.group.pending_members
    env.advance(SESSION - 1)
    env.coord.heartbeat(GROUP, a, None, 1)
    env.coord.heartbeat(GROUP, b, None, 1)
    env.advance(1)
    assert pending not in env.group.pending_members
    assert env.group.state is ClassicGroupState.STABLE


def test_pending_member_blocks_join_completion_until_it_joins(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    pending = join(env, "", "late").value.member_id
    box_a = join(env, a, "a")
    join(env, b, "b")
    assert box_a.value is None, "a pending member has not joined yet"
    join(env, pending, "late")
    assert box_a.value.generation_id == 2 and len(box_a.value.members) == 3


def test_missing_sync_removes_member_after_rebalance_timeout(env: Env) -> None:
    a, _ = new_member(env, "a")
    b, _ = new_member(env, "b")
    finish_initial_delay(env)
    sync(env, a, 1, [(a, b"A"), (b, b"B")])
    assert env.group.state is ClassicGroupState.STABLE
    run_with_heartbeats(env, REBALANCE, [a, b], 1)  # b heartbeats but never syncs
    assert b not in env.group.members
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE


def test_rebalance_during_completing_answers_parked_syncs_with_rebalance_in_progress(env: Env) -> None:
    a, _ = new_member(env, "a")
    b, _ = new_member(env, "b")
    finish_initial_delay(env)
    parked = sync(env, b, 1)
    new_member(env, "c")
    assert parked.value.error is ErrorCode.REBALANCE_IN_PROGRESS
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE


# -- LeaveGroup ----------------------------------------------------------------------------------


def test_leave_triggers_rebalance_and_remaining_member_gets_everything(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    result = env.coord.leave(GROUP, [LeavingMember(a)])
    assert result.error is ErrorCode.NONE and result.members[0][1] is ErrorCode.NONE
    assert env.group.leader_id == b
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE
    box_b = join(env, b, "b")
    assert box_b.value.generation_id == 2 and box_b.value.leader_id == b


def test_leave_unknown_member(env: Env) -> None:
    stable_group(env, "a")
    result = env.coord.leave(GROUP, [LeavingMember("ghost")])
    assert result.members[0][1] is ErrorCode.UNKNOWN_MEMBER_ID
    assert env.coord.leave("other", [LeavingMember("x")]).members[0][1] is ErrorCode.UNKNOWN_MEMBER_ID


def test_last_member_leaving_makes_group_empty_with_next_generation_recorded(env: Env) -> None:
    (a,) = stable_group(env, "a")
    env.coord.leave(GROUP, [LeavingMember(a)])
    # Not an initial rebalance, and nobody is left to wait for: the join phase completes at once.
    assert env.group.state is ClassicGroupState.EMPTY
    assert env.group.generation_id == 2
    assert env.records[-1] == GroupMetadataRecord(GROUP, 2, "consumer", None, None)
    assert env.coord.heartbeat(GROUP, a, None, 1) is ErrorCode.UNKNOWN_MEMBER_ID


def test_leave_of_parked_member_answers_its_join(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_a = join(env, a, "a")
    env.coord.leave(GROUP, [LeavingMember(a)])
    assert box_a.value.error is ErrorCode.UNKNOWN_MEMBER_ID


# -- static membership (KIP-345) -----------------------------------------------------------------


def static_group(env: Env) -> tuple[str, str]:
    a_box = join(env, "", "a", group_instance_id="ia")
    b_box = join(env, "", "b", group_instance_id="ib")
    finish_initial_delay(env)
    a, b = a_box.value.member_id, b_box.value.member_id
    assert a.startswith("ia-") and b.startswith("ib-")
    sync(env, a, 1, [(a, b"A"), (b, b"B")], group_instance_id="ia")
    sync(env, b, 1, group_instance_id="ib")
    assert env.group.state is ClassicGroupState.STABLE
    return a, b


def test_static_members_join_without_member_id_required(env: Env) -> None:
    static_group(env)
    assert set(env.group.static_members) == {"ia", "ib"}


def test_static_rejoin_in_stable_replaces_id_without_rebalance(env: Env) -> None:
    a, b = static_group(env)
    box = join(env, "", "b2", group_instance_id="ib")
    result = box.value
    assert result.error is ErrorCode.NONE and result.generation_id == 1
    new_b = result.member_id
    assert new_b != b and env.group.static_members["ib"] == new_b
    assert env.group.state is ClassicGroupState.STABLE
    assert env.group.members[new_b].assignment == b"B"
    assert sync(env, new_b, 1, group_instance_id="ib").value.assignment == b"B"
    assert env.coord.heartbeat(GROUP, b, "ib", 1) is ErrorCode.FENCED_INSTANCE_ID
    assert isinstance(env.records[-1], GroupMetadataRecord)
    assert {m.member_id for m in env.records[-1].members} == {a, new_b}


def test_static_leader_rejoin_gets_old_leader_id_so_it_does_not_assign(env: Env) -> None:
    a, b = static_group(env)
    result = join(env, "", "a2", group_instance_id="ia").value
    assert result.leader_id == a != result.member_id
    assert env.group.leader_id == result.member_id


def test_static_leader_rejoin_v9_skips_assignment(env: Env) -> None:
    a, b = static_group(env)
    result = join(env, "", "a2", group_instance_id="ia", supports_skip_assignment=True).value
    assert result.skip_assignment and result.leader_id == result.member_id
    assert len(result.members) == 2


def test_static_rejoin_with_changed_protocol_rebalances(env: Env) -> None:
    static_group(env)
    join(env, "", "b2", group_instance_id="ib", protocols=(("roundrobin", b""), ("range", b"")))
    assert env.group.state is ClassicGroupState.STABLE  # range is still everyone's common choice
    assert join(env, "", "x", group_instance_id="ix", protocols=(("roundrobin", b""),)).value.error is (
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )
    join(env, "", "a2", group_instance_id="ia", protocols=(("roundrobin", b""), ("range", b"")))
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE  # the vote now picks roundrobin


def test_static_rejoin_during_completing_rebalance_forces_rebalance(env: Env) -> None:
    a_box = join(env, "", "a", group_instance_id="ia")
    join(env, "", "b", group_instance_id="ib")
    finish_initial_delay(env)
    assert a_box.value.error is ErrorCode.NONE
    join(env, "", "b2", group_instance_id="ib")
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE


def test_fenced_instance_id_on_join_sync_commit_and_leave(env: Env) -> None:
    a, b = static_group(env)
    new_b = join(env, "", "b2", group_instance_id="ib").value.member_id
    assert join(env, b, "b", group_instance_id="ib").value.error is ErrorCode.FENCED_INSTANCE_ID
    assert sync(env, b, 1, group_instance_id="ib").value.error is ErrorCode.FENCED_INSTANCE_ID
    commit = env.coord.commit_offsets(GROUP, b, "ib", 1, [OffsetCommit("t", 0, 5)])
    assert commit[0][1] is ErrorCode.FENCED_INSTANCE_ID
    leave = env.coord.leave(GROUP, [LeavingMember(b, "ib")])
    assert leave.members[0][1] is ErrorCode.FENCED_INSTANCE_ID
    assert new_b in env.group.members


def test_static_member_not_rejoining_is_kept_through_the_rebalance(env: Env) -> None:
    a, b = static_group(env)
    box_a = join(env, a, "a", group_instance_id="ia")  # the leader rejoins, b only heartbeats
    run_with_heartbeats(env, REBALANCE - 1, [b], 1)
    assert box_a.value is None, "a static member that has not rejoined holds the join phase"
    env.advance(1)
    assert box_a.value.generation_id == 2
    assert {m.member_id for m in box_a.value.members} == {a, b}  # static members are not dropped


def test_admin_leave_by_instance_id(env: Env) -> None:
    a, b = static_group(env)
    result = env.coord.leave(GROUP, [LeavingMember("", "ib")])
    assert result.members[0][1] is ErrorCode.NONE
    assert b not in env.group.members


# -- validation and coordinator-level errors -----------------------------------------------------


def test_invalid_session_timeout_and_group_id(env: Env) -> None:
    assert join(env, session_timeout_ms=5_999).value.error is ErrorCode.INVALID_SESSION_TIMEOUT
    assert join(env, session_timeout_ms=1_800_001).value.error is ErrorCode.INVALID_SESSION_TIMEOUT
    box = Box()
    env.coord.join(join_req(group_id=""), box)
    assert box.value.error is ErrorCode.INVALID_GROUP_ID


def test_unknown_member_id_for_unknown_group(env: Env) -> None:
    assert join(env, "someone").value.error is ErrorCode.UNKNOWN_MEMBER_ID


def test_inconsistent_protocol(env: Env) -> None:
    stable_group(env, "a")
    assert join(env, "", "x", protocol_type="connect").value.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    box = join(env, "", "y", protocols=(("roundrobin", b""),))
    assert box.value.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_chosen_by_vote_among_common_protocols(env: Env) -> None:
    both = (("roundrobin", b""), ("range", b""))
    a, box_a = new_member(env, "a", protocols=(("range", b""), ("roundrobin", b"")))
    new_member(env, "b", protocols=both)
    new_member(env, "c", protocols=both)
    finish_initial_delay(env)
    assert box_a.value.protocol_name == "roundrobin"


def test_group_max_size() -> None:
    env = make_env(max_size=1)
    stable_group(env, "a")
    assert join(env, "", "b").value.error is ErrorCode.GROUP_MAX_SIZE_REACHED


def test_not_coordinator_and_load_in_progress() -> None:
    env = make_env()
    env.coord.unload(0)
    assert join(env).value.error is ErrorCode.NOT_COORDINATOR
    assert env.coord.heartbeat(GROUP, "m", None, 1) is ErrorCode.NOT_COORDINATOR
    env.coord.begin_loading(0, epoch=2)
    assert env.coord.partition_state(0) is PartitionState.LOADING
    assert join(env).value.error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert env.coord.heartbeat(GROUP, "m", None, 1) is ErrorCode.NONE  # answered blindly while loading
    assert sync(env, "m", 1).value.error is ErrorCode.REBALANCE_IN_PROGRESS
    assert env.coord.fetch_offsets(GROUP, None)[0] is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert env.coord.describe(GROUP).error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert not env.coord.complete_loading(0, 1, []), "a load for an older epoch is dropped"
    assert env.coord.complete_loading(0, 2, [])
    assert env.coord.partition_state(0) is PartitionState.ACTIVE


def test_persist_failure_on_leader_sync_fails_sync_and_rebalances(env: Env) -> None:
    a, _ = new_member(env, "a")
    b, _ = new_member(env, "b")
    finish_initial_delay(env)
    follower = sync(env, b, 1)
    env.fail_persist = ErrorCode.NOT_COORDINATOR
    leader = sync(env, a, 1, [(a, b"A"), (b, b"B")])
    assert leader.value.error is ErrorCode.NOT_COORDINATOR
    assert follower.value.error is ErrorCode.NOT_COORDINATOR
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE


def test_invalid_transition_is_refused() -> None:
    group = ClassicGroup(GROUP, GroupContext())
    with pytest.raises(IllegalStateTransition):
        group._transition(ClassicGroupState.STABLE)


# -- offsets -------------------------------------------------------------------------------------


def test_commit_and_fetch_offsets(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    results = env.coord.commit_offsets(GROUP, a, None, 1, [OffsetCommit("t", 0, 42, metadata="m")])
    assert results[0][1] is ErrorCode.NONE
    error, offsets = env.coord.fetch_offsets(GROUP, [("t", 0), ("t", 1)])
    assert error is ErrorCode.NONE
    assert offsets[("t", 0)].offset == 42 and offsets[("t", 0)].metadata == "m"
    assert offsets[("t", 1)].offset == -1
    assert env.records[-1] == OffsetCommitRecord(GROUP, "t", 0, 42, -1, "m", 1_000_000)


def test_offset_commit_validation(env: Env) -> None:
    commit = [OffsetCommit("t", 0, 1)]
    # A group that only stores offsets: generation -1 on an unknown or Empty group is fine.
    assert env.coord.commit_offsets("solo", "", None, -1, commit)[0][1] is ErrorCode.NONE
    assert env.coord.commit_offsets("ghost", "m", None, 3, commit)[0][1] is ErrorCode.ILLEGAL_GENERATION
    a, _ = new_member(env, "a")
    env.advance(DELAY)
    assert env.group.state is ClassicGroupState.COMPLETING_REBALANCE
    assert env.coord.commit_offsets(GROUP, a, None, 1, commit)[0][1] is ErrorCode.REBALANCE_IN_PROGRESS
    sync(env, a, 1, [(a, b"")])
    assert env.coord.commit_offsets(GROUP, a, None, 0, commit)[0][1] is ErrorCode.ILLEGAL_GENERATION
    assert env.coord.commit_offsets(GROUP, "x", None, 1, commit)[0][1] is ErrorCode.UNKNOWN_MEMBER_ID
    assert env.coord.commit_offsets(GROUP, a, None, 1, commit)[0][1] is ErrorCode.NONE
    big = [OffsetCommit("t", 0, 1, metadata="x" * 5000)]
    assert env.coord.commit_offsets(GROUP, a, None, 1, big)[0][1] is ErrorCode.OFFSET_METADATA_TOO_LARGE


# -- failover: load and unload -------------------------------------------------------------------


def test_reload_resumes_stable_generation_with_fresh_sessions(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    env.coord.commit_offsets(GROUP, a, None, 1, [OffsetCommit("t", 0, 7)])
    records = list(env.records)

    other = make_env()
    other.coord.unload(0)
    other.clock.now = 500_000.0
    other.coord.begin_loading(0, epoch=2)
    assert other.coord.complete_loading(0, 2, records)
    group = other.group
    assert group.state is ClassicGroupState.STABLE and group.generation_id == 1 and group.leader_id == a
    assert other.coord.heartbeat(GROUP, b, None, 1) is ErrorCode.NONE
    assert sync(other, b, 1).value.assignment == b.encode()
    assert other.coord.fetch_offsets(GROUP, [("t", 0)])[1][("t", 0)].offset == 7
    other.advance(SESSION - 1)
    assert group.state is ClassicGroupState.STABLE, "every loaded member got a full session timeout"


def test_reload_of_empty_group_and_tombstones() -> None:
    env = make_env()
    records: list[Record] = [
        GroupMetadataRecord("e", 4, "consumer", None, None),
        OffsetCommitRecord("e", "t", 0, 3),
        OffsetCommitRecord("e", "t", 1, 9),
        OffsetCommitRecord("e", "t", 1, None),
        GroupMetadataRecord("gone", 1, "consumer", None, None),
        GroupMetadataRecord("gone", 1, None, None, None, deleted=True),
    ]
    env.coord.unload(0)
    env.coord.begin_loading(0, 5)
    env.coord.complete_loading(0, 5, records)
    assert env.coord.groups["e"].state is ClassicGroupState.EMPTY and env.coord.groups["e"].generation_id == 4
    assert "gone" not in env.coord.groups
    assert env.coord.fetch_offsets("e", None)[1] == {("t", 0): env.coord.offsets["e"][("t", 0)]}


def test_unload_kills_group_and_answers_parked_requests_with_not_coordinator(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    box_a = join(env, a, "a")
    group = env.group
    env.coord.unload(0)
    assert group.state is ClassicGroupState.DEAD
    assert box_a.value.error is ErrorCode.NOT_COORDINATOR
    assert GROUP not in env.coord.groups


def test_describe_and_list(env: Env) -> None:
    a, b = stable_group(env, "a", "b")
    d = env.coord.describe(GROUP)
    assert d.state == "Stable" and d.protocol == "range" and d.protocol_type == "consumer"
    assert {m.member_id: m.assignment for m in d.members} == {a: a.encode(), b: b.encode()}
    assert env.coord.describe("nope").state == "Dead"
    assert env.coord.list_groups() == (ErrorCode.NONE, [(GROUP, "consumer", "Stable")])
    assert env.coord.list_groups(["empty"]) == (ErrorCode.NONE, [])

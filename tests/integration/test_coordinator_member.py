"""Our coordinator-mode member, in process, against real brokers (and the real ZooKeeper under them).

Judged by events (folded with :class:`bench.analysis.ownership.GroupOwnership`) and by ``assignment()``: one
generation, every partition owned exactly once, exactly one leader.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.analysis.ownership import GroupOwnership
from bench.services.brokers import BrokerCluster
from coordinator_mode.client.member import CoordinatorMember
from group_api import EventKind, ListSink, MemberConfig, MemberState
from group_api.registry import create_member
from tests.conftest import running_brokers, wait_until

log = logging.getLogger(__name__)

SESSION_MS = 6_000  # the brokers' group.min.session.timeout.ms
HEARTBEAT_MS = 1_000
TOPICS = {"orders": 6, "clicks": 3}
PARTITIONS = frozenset((t, p) for t, n in TOPICS.items() for p in range(n))
CONVERGE_S = 30.0


@contextlib.contextmanager
def running_cluster(zk_connect: str, base_dir: Path, size: int, **options: int) -> Iterator[BrokerCluster]:
    """``size`` brokers serving this module's topics."""
    with running_brokers(zk_connect, size, base_dir, topics=dict(TOPICS), **options) as cluster:
        yield cluster


class Members:
    """In-process members of one group sharing one event sink; all closed at the end."""

    def __init__(self, bootstrap: str, group: str, sink: ListSink | None = None) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.sink = sink or ListSink()
        self.all: list[CoordinatorMember] = []

    def add(self, n: int = 1, **config: object) -> list[CoordinatorMember]:
        new = []
        for _ in range(n):
            cfg = MemberConfig(
                group=self.group,
                topics=tuple(TOPICS),
                mode="coordinator",
                member_name=f"m{len(self.all)}",
                session_timeout_ms=SESSION_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
                rebalance_timeout_ms=SESSION_MS,
                bootstrap=self.bootstrap,
                **config,  # type: ignore[arg-type]
            )
            member = create_member(cfg, self.sink)
            assert isinstance(member, CoordinatorMember)
            self.all.append(member)
            member.start()
            new.append(member)
        return new

    def close(self) -> None:
        for member in self.all:
            member.close()

    def view(self) -> GroupOwnership:
        return GroupOwnership(PARTITIONS).apply_all(list(self.sink.events))

    def converged(
        self, members: list[CoordinatorMember], newer_than: int = -1, named_leader: bool = True
    ) -> GroupOwnership | None:
        """The members' events and ``assignment()`` agree on one complete, disjoint generation with
        one leader (``named_leader``: and followers name it by its ``member`` id, which they can
        for dynamic members only: a static leader is known by its ``group.instance.id``)."""
        ids = [m.member_id for m in members]
        view = self.view()
        generation = view.generation(ids)
        if generation is None or generation <= newer_than or not view.converged(ids):
            return None
        leaders = view.leaders(ids)
        if named_leader and (len(leaders) != 1 or not leaders <= set(ids)):
            return None
        assignments = [m.assignment() for m in members]
        if any(a is None or a.generation != generation for a in assignments):
            return None
        if sum(a.is_leader for a in assignments) != 1:
            return None
        return view

    def wait_converged(
        self, members: list[CoordinatorMember], newer_than: int = -1, named_leader: bool = True
    ) -> GroupOwnership:
        try:
            return wait_until(
                lambda: self.converged(members, newer_than, named_leader),
                CONVERGE_S,
                interval=0.05,
                what=f"{len(members)} members to converge past generation {newer_than}",
            )
        except TimeoutError:
            view = self.view()
            state = {m: (v.generation, sorted(v.counted), v.leader) for m, v in view.members.items()}
            raise AssertionError(f"no convergence; view: {state}; members: {members}") from None


def responses(member: CoordinatorMember, api: str) -> int:
    return member.stats().get(api, {}).get("responses", 0)


def owners(members: list[CoordinatorMember]) -> list[tuple[str, int]]:
    return sorted(tp for m in members for tp in (m.assignment().partitions if m.assignment() else ()))


def assert_complete_and_disjoint(members: list[CoordinatorMember]) -> None:
    owned = owners(members)
    assert len(owned) == len(set(owned)), f"a partition is owned twice: {owned}"
    assert set(owned) == PARTITIONS


@pytest.fixture
def cluster(zk_server, tmp_path: Path) -> Iterator[BrokerCluster]:
    with running_cluster(zk_server.connect_string, tmp_path / "brokers", 1) as c:
        yield c


@pytest.fixture
def members(cluster: BrokerCluster, request: pytest.FixtureRequest) -> Iterator[Members]:
    group = f"cm-{request.node.name}".replace("[", "-").replace("]", "")
    m = Members(cluster.bootstrap, group)
    try:
        yield m
    finally:
        m.close()


@pytest.mark.parametrize("n", [1, 3])
def test_members_converge_to_one_generation_with_one_leader(members: Members, n: int) -> None:
    group = members.add(n)
    view = members.wait_converged(group)
    assert_complete_and_disjoint(group)
    ids = {m.member_id for m in group}
    (leader,) = view.leaders(list(ids))
    assert leader in ids
    assert [m.member_id for m in group if m.assignment().is_leader] == [leader]
    events = members.sink.events
    computed = [e for e in events if e.kind == EventKind.ASSIGNMENT_COMPUTED]
    assert computed and {e.member for e in computed} <= {leader}
    last = computed[-1].extra["assignment"]
    assert sorted((t, p) for parts in last.values() for t, p in parts) == sorted(PARTITIONS)
    for m in group:
        assert m.state is MemberState.STABLE
        stats = m.stats()
        assert stats["JoinGroup"]["requests"] >= 2  # MEMBER_ID_REQUIRED, then the real join
        assert stats["SyncGroup"]["requests"] >= 1
        assert stats["FindCoordinator"]["requests"] >= 1


def test_leave_gives_the_rest_a_new_complete_generation(members: Members) -> None:
    group = members.add(3)
    first = members.wait_converged(group).generation([m.member_id for m in group])
    leaving = group[0]
    leaving.leave()
    assert leaving.state is MemberState.LEFT and leaving.assignment() is None
    kinds = [e.kind for e in members.sink.events if e.member == leaving.member_id]
    assert kinds[-1] == EventKind.LEFT
    assert EventKind.REVOKED in kinds[kinds.index(EventKind.ASSIGNED) :]
    rest = group[1:]
    members.wait_converged(rest, newer_than=first)
    assert_complete_and_disjoint(rest)
    assert leaving.stats()["LeaveGroup"]["requests"] == 1


def test_each_member_revokes_before_its_next_assignment(members: Members) -> None:
    """Eager protocol: between two ``assigned`` events of one member there is a ``revoked`` (or
    nothing was owned), so no member ever holds partitions of two generations."""
    group = members.add(2)
    first = members.wait_converged(group).generation([m.member_id for m in group])
    group += members.add(1)
    members.wait_converged(group, newer_than=first)
    for m in group:
        owned: frozenset = frozenset()
        for e in (e for e in members.sink.events if e.member == m.member_id):
            if e.kind == EventKind.ASSIGNED:
                assert not owned, f"{m.member_id} was assigned {e.partitions} while owning {sorted(owned)}"
                owned = frozenset(e.partitions or ())
            elif e.kind == EventKind.REVOKED:
                owned = owned - frozenset(e.partitions or ())


def test_static_leader_restart_keeps_the_generation(members: Members) -> None:
    """KIP-345: a static member closes without LeaveGroup and a new process with the same
    ``group.instance.id`` takes its place in the Stable group without a rebalance; here it is the
    leader, which the coordinator answers with ``skip_assignment`` (JoinGroup v9)."""
    (a,) = members.add(1, group_instance_id="static-a")
    members.wait_converged([a])
    (b,) = members.add(1, group_instance_id="static-b")
    members.wait_converged([a, b], newer_than=a.assignment().generation, named_leader=False)
    before = a.assignment()
    assert before.is_leader
    mark = len(members.sink.events)
    a.close()
    (a2,) = members.add(1, group_instance_id="static-a")

    members.wait_converged([a2, b], named_leader=False)
    assert_complete_and_disjoint([a2, b])
    assert a2.assignment().generation == before.generation
    assert a2.assignment().partitions == before.partitions and a2.assignment().is_leader
    since = members.sink.events[mark:]
    assert not [e for e in since if e.member == b.member_id and e.kind == EventKind.REVOKED]
    assert not [e for e in since if e.kind == EventKind.ASSIGNMENT_COMPUTED]
    assert "LeaveGroup" not in a.stats()
    a2.leave()
    assert "LeaveGroup" not in a2.stats() and a2.state is MemberState.LEFT


@pytest.mark.parametrize(
    "broker_zk_session_ms",
    # Past the members' session by a clear margin: at the same value the two expiries race (the
    # broker's ZooKeeper session counts from its last ping, a member's from its last answer).
    [2_000, 2 * SESSION_MS],
    ids=["failover-within-session", "failover-past-session"],
)
def test_coordinator_failover(zk_server, tmp_path: Path, broker_zk_session_ms: int) -> None:
    """SIGKILL the broker coordinating the group: members find the new coordinator and carry on.

    How fast a dead broker's partitions move is the brokers' ZooKeeper session timeout. Below the
    members' session timeout the failover beats it and the group keeps its generation (the new
    coordinator loads the group Stable and must not rebalance it on its own); well past it the
    members' sessions run out first and they rejoin. Either way the end must be one complete,
    disjoint generation.
    """
    with running_cluster(
        zk_server.connect_string, tmp_path / "brokers", 3, zk_session_timeout_ms=broker_zk_session_ms
    ) as cluster:
        members = Members(cluster.bootstrap, "cm-failover")
        try:
            group = members.add(3)
            before = members.wait_converged(group).generation([m.member_id for m in group])
            victim = cluster.coordinator_for(members.group)
            assert victim is not None
            dead_node = victim.id
            assert {m.coordinator.node_id for m in group} == {dead_node}
            heartbeats = {m.member_id: responses(m, "Heartbeat") for m in group}
            killed_at = len(members.sink.events)
            victim.kill()

            def carried_on() -> bool:
                return all(
                    m.coordinator is not None
                    and m.coordinator.node_id != dead_node
                    and m.state is MemberState.STABLE
                    # two answered heartbeats since the kill: the new coordinator accepts us
                    and responses(m, "Heartbeat") >= heartbeats[m.member_id] + 2
                    for m in group
                ) and bool(members.converged(group))

            wait_until(carried_on, 60, interval=0.1, what="members to continue with the new coordinator")
            after = members.view().generation([m.member_id for m in group])
            new_coordinator = cluster.coordinator_for(members.group)
            assert new_coordinator is not None and new_coordinator.id != dead_node
            assert {m.coordinator.node_id for m in group} == {new_coordinator.id}
            assert_complete_and_disjoint(group)
            since = members.sink.events[killed_at:]
            lost = [e.member for e in since if e.kind == EventKind.SESSION_LOST]
            assert after is not None
            if broker_zk_session_ms < SESSION_MS:
                # The new coordinator loads the group Stable before any member's session runs out.
                assert not lost, f"sessions lost although the failover beat them: {lost}"
                assert after == before, "the group rebalanced although no member lost its session"
            else:
                # The dead broker stays registered for a whole session, so no request of a member
                # is answered for that long: every member notices and rejoins (keeping its id, so
                # the generation may or may not move on).
                assert set(lost) == {m.member_id for m in group}, f"sessions lost: {lost}"
                assert after >= before
            log.info("failover: generation %s -> %s; sessions lost: %s", before, after, lost)
        finally:
            members.close()

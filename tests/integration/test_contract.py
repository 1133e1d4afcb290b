"""The consumer-interface contract, run against every mode and variant as separate processes.

Each test starts real ``rebalance-lab member`` processes against a real ZooKeeper (and, for the
coordinator mode, real brokers) and judges them only by the JSON events they print, folded with
:class:`bench.analysis.ownership.GroupOwnership`: one generation, complete and disjoint ownership, one leader.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.ownership import GroupOwnership
from bench.backends import MemberHandle
from bench.experiment.groups import MemberGroup
from bench.experiment.history import History
from bench.services.java import java_module
from bench.services.members import MemberProcess
from group_api import EventKind
from tests.conftest import running_brokers, wait_until

SESSION_MS = 4_000
TOPICS = {"orders": 8, "clicks": 4}
PARTITIONS = {(t, p) for t, n in TOPICS.items() for p in range(n)}
CONVERGE_S = 60.0


@dataclass(frozen=True)
class Target:
    """A mode and variant under test, and the member flags it needs."""

    mode: str
    variant: str
    has_leader: bool
    options: tuple[str, ...] = ()
    session_ms: int = SESSION_MS

    def __str__(self) -> str:
        return f"{self.mode}-{self.variant}"


JAVA = java_module("member")
#: The targets that run on the JVM skip, saying why, where Java or the built module is missing.
NEEDS_JAVA = [
    pytest.mark.java,
    pytest.mark.skipif(not JAVA.available, reason=f"needs the Java members: {JAVA.reason}"),
]


TARGETS = [
    Target("zk", "chain", True),
    Target("zk", "herd", True),
    Target("zk", "selfbalance", False, ("rebalance_backoff_ms=200",)),
    Target("zk", "setpartitioner", False, ("time_boundary_s=0.5",)),
    # Kafka's brokers refuse sessions below group.min.session.timeout.ms (6 s).
    Target("coordinator", "classic", True, session_ms=6_000),
    Target("coordinator", "cooperative", True, session_ms=6_000),
    pytest.param(Target("zk", "curator", True), marks=NEEDS_JAVA, id="zk-curator"),
    pytest.param(
        Target("coordinator", "java", True, session_ms=6_000), marks=NEEDS_JAVA, id="coordinator-java"
    ),
]


@dataclass
class Group:
    """The members of the group under test (a :class:`~bench.experiment.groups.MemberGroup`) and how to judge them."""

    target: Target
    members: MemberGroup

    @property
    def history(self) -> History:
        return self.members.history

    def add(self, n: int = 1) -> list[MemberHandle]:
        """Start ``n`` member processes; returns once each reported its first event."""
        return self.members.spawn(n)

    def view(self, until_ns: int | None = None) -> GroupOwnership:
        return self.members.view(until_ns)

    def kill(self, proc: MemberHandle) -> None:
        self.members.kill(proc)

    def wait_converged(self, members: list[MemberHandle], newer_than: int | None = None) -> GroupOwnership:
        ids = [p.member_id for p in members]

        def done() -> GroupOwnership | None:
            view = self.view()
            if not view.converged(ids):
                return None
            generation = view.generation(ids)
            if newer_than is not None and (generation is None or generation <= newer_than):
                return None
            if self.target.has_leader:
                leaders = view.leaders(ids)
                if len(leaders) != 1 or next(iter(leaders)) not in ids:
                    return None
            return view

        try:
            return wait_until(
                done, CONVERGE_S, interval=0.1, what=f"{len(ids)} members of {self.target} to converge"
            )
        except TimeoutError:
            view = self.view()
            state = {m: (v.generation, sorted(v.counted), v.leader) for m, v in view.members.items()}
            raise AssertionError(f"no convergence of {ids}; state: {state}") from None


@pytest.fixture(params=TARGETS, ids=str)
def target(request: pytest.FixtureRequest) -> Target:
    return request.param


@pytest.fixture(scope="module")
def brokers(zk_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One broker with no initial rebalance delay, shared by this module's coordinator-mode tests."""
    with running_brokers(
        zk_server.connect_string, 1, tmp_path_factory.mktemp("brokers"), topics=TOPICS
    ) as cluster:
        yield cluster


@pytest.fixture
def group(
    target: Target, zk_server, zk_root: str, kazoo_client, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Group]:
    if target.mode == "coordinator":
        connect = ["--bootstrap", request.getfixturevalue("brokers").bootstrap]
    else:
        from zk_mode.catalog import write_topics

        write_topics(kazoo_client, zk_root, TOPICS)
        connect = ["--zk", zk_server.connect_string, "--zk-root", zk_root]
    args = [
        *("--mode", target.mode, "--variant", target.variant),
        *(a for t in TOPICS for a in ("--topic", t)),
        *("--session-timeout-ms", str(target.session_ms), "--heartbeat-interval-ms", "500"),
        *connect,
        *(a for o in target.options for a in ("--option", o)),
    ]
    # Each test gets its own group, so coordinator-mode tests sharing one broker never meet.
    name = f"contract-{target.variant}-{uuid.uuid4().hex[:6]}"
    members = MemberGroup(name, TOPICS, 1, args, History(), tmp_path, MemberProcess)
    try:
        yield Group(target, members)
    finally:
        for proc in members.procs:
            proc.close()


def generation_of(view: GroupOwnership, procs: list[MemberHandle]) -> int:
    generation = view.generation([p.member_id for p in procs])
    assert generation is not None
    return generation


@pytest.mark.parametrize("n", [1, 3, 10])
def test_formation(group: Group, n: int) -> None:
    procs = group.add(n)
    view = group.wait_converged(procs)
    owners = [tp for p in procs for tp in view.members[p.member_id].counted]
    assert sorted(owners) == sorted(PARTITIONS)
    if group.target.has_leader:
        assert len(view.leaders([p.member_id for p in procs])) == 1


def test_graceful_leave_then_join(group: Group) -> None:
    procs = group.add(3)
    first = generation_of(group.wait_converged(procs), procs)

    leaving = procs[0]
    assert leaving.terminate() == 0
    assert any(e.kind == EventKind.LEFT and e.member == leaving.member_id for e in group.history.snapshot())
    rest = procs[1:]
    second = generation_of(group.wait_converged(rest, newer_than=first), rest)

    joined = group.add(1)
    group.wait_converged(rest + joined, newer_than=second)


def test_leader_killed(group: Group) -> None:
    procs = group.add(3)
    view = group.wait_converged(procs)
    first = generation_of(view, procs)
    old_leader = next(iter(view.leaders([p.member_id for p in procs])))
    victim = next((p for p in procs if p.member_id == old_leader), procs[0])

    group.kill(victim)
    survivors = [p for p in procs if p is not victim]
    view = group.wait_converged(survivors, newer_than=first)
    if group.target.has_leader:
        assert view.leaders([p.member_id for p in survivors]) != {old_leader}


def pick(view: GroupOwnership, procs: list[MemberHandle], role: str, has_leader: bool) -> MemberHandle:
    """The generation's leader, or a member that is not the leader."""
    leaders = view.leaders([p.member_id for p in procs]) if has_leader else set()
    if role == "leader":
        (leader,) = leaders
        return next(p for p in procs if p.member_id == leader)
    return next(p for p in procs if p.member_id not in leaders)


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_paused_member_never_reports_a_partition_another_owns(group: Group, role: str) -> None:
    if role == "leader" and not group.target.has_leader:
        pytest.skip(f"{group.target} has no leader")
    if group.target.variant == "cooperative":
        # A stable cooperative member watches its session exactly as classic does (the same code);
        # left out to keep make test short.
        pytest.skip("coordinator-cooperative: the session watch of coordinator-classic")
    procs = group.add(3)
    view = group.wait_converged(procs)
    first = generation_of(view, procs)
    paused = pick(view, procs, role, group.target.has_leader)
    others = [p for p in procs if p is not paused]

    paused.pause()
    try:
        # The others converge without it only once its session has expired.
        second = generation_of(group.wait_converged(others, newer_than=first), others)
    finally:
        resumed_ns = time.monotonic_ns()
        paused.resume()
    group.wait_converged(procs, newer_than=second)

    after = [e for e in group.history.snapshot() if e.member == paused.member_id and e.mono_ns >= resumed_ns]
    ownership = [
        e for e in after if e.kind in (EventKind.ASSIGNED, EventKind.REVOKED, EventKind.SESSION_LOST)
    ]
    assert ownership, "the resumed member reported nothing"
    assert ownership[0].kind != EventKind.ASSIGNED, f"acted on old partitions first: {ownership[0]}"
    for event in after:
        if event.kind != EventKind.ASSIGNED:
            continue
        view = group.view(until_ns=event.mono_ns)
        others_own = {tp for m, v in view.members.items() if m != paused.member_id for tp in v.counted}
        clash = others_own & set(event.partitions or ())
        assert not clash, f"resumed member reported {sorted(clash)} while others owned them"
    if group.target.mode == "coordinator":
        assert_commits_resumed(group, paused)


def assert_commits_resumed(group: Group, member: MemberHandle) -> None:
    """The member commits again, for exactly the partitions it owns now (coordinator mode)."""
    owned = set(group.view().members[member.member_id].counted)
    rejoined_ns = max(
        e.mono_ns
        for e in group.history.snapshot()
        if e.member == member.member_id and e.kind == EventKind.ASSIGNED
    )

    def committed() -> set[tuple[str, int]] | None:
        for e in group.history.snapshot():
            if (
                e.member == member.member_id
                and e.kind == EventKind.OFFSETS_COMMITTED
                and e.mono_ns > rejoined_ns
            ):
                return {(t, p) for t, p, _ in e.extra["offsets"]}
        return None

    # Members commit every auto.commit.interval.ms (5 s by default).
    partitions = wait_until(committed, 30, interval=0.1, what="the resumed member to commit again")
    assert partitions == owned

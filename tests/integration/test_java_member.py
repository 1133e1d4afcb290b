"""The Java members (java/member) as real JVM processes: Kafka's own consumer on our brokers, beside
our Python members, and the zk variant ``curator`` on a real ZooKeeper.

Judged, as every member is, by the JSON events the processes print, folded with
:class:`bench.analysis.ownership.GroupOwnership`. The contract tests (test_contract.py) run both
Java members through formation, leave, leader kill and pause; these add what only they have: several
members in one JVM, the JVM's clock, mixed groups of Python and Java members, the cooperative
protocol, manual commits, and the Curator member's answers to bad znodes. Skipped, saying why,
where Java or the built module is missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from bench.analysis.ownership import GroupOwnership
from bench.backends import MemberHandle
from bench.experiment.groups import MemberGroup
from bench.experiment.history import History
from bench.services.java import java_module
from bench.services.members import MemberProcess
from group_api import Event, EventKind
from tests.conftest import committed_offsets, running_brokers, wait_until

JAVA = java_module("member")
pytestmark = [
    pytest.mark.java,
    pytest.mark.skipif(not JAVA.available, reason=f"needs the Java members: {JAVA.reason}"),
]

TOPICS = {"orders": 8, "clicks": 4}
PARTITIONS = {(t, p) for t, n in TOPICS.items() for p in range(n)}
SESSION_MS = 6_000  # the brokers' group.min.session.timeout.ms
CONVERGE_S = 60.0


@pytest.fixture(scope="module")
def brokers(zk_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_brokers(
        zk_server.connect_string, 1, tmp_path_factory.mktemp("brokers"), topics=TOPICS
    ) as cluster:
        yield cluster


class Groups:
    """Member groups of one consumer group (one per kind of member), sharing one history."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.history = History()
        self.kinds: list[MemberGroup] = []

    def kind(self, args: list[str], per_process: int = 1) -> MemberGroup:
        group = MemberGroup(self.name, TOPICS, per_process, args, self.history, self.tmp_path, MemberProcess)
        self.kinds.append(group)
        return group

    def procs(self) -> list[MemberHandle]:
        return [p for g in self.kinds for p in g.procs]

    def live_ids(self) -> list[str]:
        return [m for g in self.kinds for m in g.live_ids()]

    def view(self) -> GroupOwnership:
        view = GroupOwnership(PARTITIONS).apply_all(
            e for e in self.history.snapshot() if e.group == self.name
        )
        for g in self.kinds:
            for member in g.dead:
                view.mark_dead(member)
        return view

    def kill(self, proc: MemberHandle) -> None:
        next(g for g in self.kinds if proc in g.procs).kill(proc)

    def events(self, kind: EventKind, member: str | None = None) -> list[Event]:
        return [
            e
            for e in self.history.snapshot()
            if e.group == self.name and e.kind == kind and (member is None or e.member == member)
        ]

    def wait_converged(self, newer_than: int | None = None) -> tuple[GroupOwnership, int]:
        """Every live member holds one generation (newer than ``newer_than``) and every partition is
        owned exactly once."""

        def done() -> tuple[GroupOwnership, int] | None:
            ids = self.live_ids()
            view = self.view()
            generation = view.generation(ids)
            if not view.converged(ids) or generation is None:
                return None
            return (view, generation) if newer_than is None or generation > newer_than else None

        try:
            return wait_until(done, CONVERGE_S, interval=0.1, what=f"group {self.name} to converge")
        except TimeoutError:
            view = self.view()
            state = {m: (v.generation, sorted(v.counted)) for m, v in view.members.items() if v.live}
            raise AssertionError(f"no convergence of {self.live_ids()}: {state}") from None

    def close(self) -> None:
        for proc in self.procs():
            proc.close()


@pytest.fixture
def groups(tmp_path: Path) -> Iterator[Groups]:
    g = Groups(f"java-{uuid.uuid4().hex[:6]}", tmp_path)
    try:
        yield g
    finally:
        g.close()


def consumer_args(bootstrap: str, client: str, *options: str) -> list[str]:
    return [
        *("--mode", "coordinator", "--client", client, "--bootstrap", bootstrap),
        *(a for t in TOPICS for a in ("--topic", t)),
        *("--session-timeout-ms", str(SESSION_MS), "--heartbeat-interval-ms", "500"),
        *(a for o in options for a in ("--option", o)),
    ]


def test_one_jvm_hosts_several_members_on_the_python_clock(brokers: Any, groups: Groups) -> None:
    """Three Java members in one JVM form a group; their stamps lie on this process's monotonic
    clock (System.nanoTime and time.monotonic_ns both read CLOCK_MONOTONIC on Linux)."""
    java = groups.kind(consumer_args(brokers.bootstrap, "java"), per_process=3)
    before = time.monotonic_ns()
    (proc,) = java.spawn(3)
    view, _ = groups.wait_converged()
    after = time.monotonic_ns()

    assert len(proc.member_ids) == 3
    assert len(view.leaders(proc.member_ids)) == 1
    stamps = [e.mono_ns for e in groups.history.snapshot() if e.member in proc.member_ids]
    assert stamps and all(before <= s <= after for s in stamps), (before, min(stamps), max(stamps), after)


def test_java_group_rebalances_on_a_join_and_survives_its_leader_killed(brokers: Any, groups: Groups) -> None:
    java = groups.kind(consumer_args(brokers.bootstrap, "java"), per_process=2)
    java.spawn(2)
    _, first = groups.wait_converged()

    java.spawn(1)
    view, second = groups.wait_converged(newer_than=first)
    (leader,) = view.leaders(groups.live_ids())
    assert leader in groups.live_ids()
    computed = [e for e in groups.events(EventKind.ASSIGNMENT_COMPUTED) if e.generation == second]
    assert [e.member for e in computed] == [leader]

    victim = next(p for p in groups.procs() if leader in p.member_ids)
    groups.kill(victim)
    view, _ = groups.wait_converged(newer_than=second)
    survivors = groups.live_ids()
    assert leader not in survivors and len(survivors) == 1
    assert view.leaders(survivors) == set(survivors)


@pytest.mark.parametrize("first", ["python", "java"])
def test_mixed_group_of_python_and_java_members_converges(brokers: Any, groups: Groups, first: str) -> None:
    """The member that joins alone first leads (the coordinator keeps it): each kind leads once.
    The leader's assignment_computed is what every member of the generation owns."""
    kinds = {c: groups.kind(consumer_args(brokers.bootstrap, c), per_process=2) for c in ("python", "java")}
    second = "java" if first == "python" else "python"
    kinds[first].spawn(1)
    _, alone = groups.wait_converged()
    kinds[second].spawn(2)
    kinds[first].spawn(1)
    view, generation = groups.wait_converged(newer_than=alone)

    (computed,) = [e for e in groups.events(EventKind.ASSIGNMENT_COMPUTED) if e.generation == generation]
    assert computed.member in kinds[first].live_ids()
    by_kafka_id = {
        e.member: e.extra["kafka_member_id"]
        for e in groups.events(EventKind.ASSIGNED)
        if e.generation == generation
    }
    assert len(by_kafka_id) == 4
    for member, kafka_id in by_kafka_id.items():
        expected = {(t, p) for t, p in computed.extra["assignment"][kafka_id]}
        assert set(view.members[member].counted) == expected, member

    # A Java member leaves gracefully; the rest follow to a new complete generation.
    leaving = kinds["java"].procs[0]
    assert leaving.terminate() == 0
    assert all(groups.events(EventKind.LEFT, m) for m in leaving.member_ids)
    groups.wait_converged(newer_than=generation)


def revoked_between(groups: Groups, member: str, start_ns: int) -> set[tuple[str, int]]:
    return {
        tp
        for e in groups.events(EventKind.REVOKED, member)
        if e.mono_ns > start_ns
        for tp in e.partitions or ()
    }


def test_cooperative_members_give_up_only_what_moves(brokers: Any, groups: Groups) -> None:
    """KIP-429 on our brokers: a join moves a few partitions; the others stay owned throughout."""
    args = [*consumer_args(brokers.bootstrap, "java", "protocol=cooperative"), "--assignor", "sticky"]
    java = groups.kind(args, per_process=2)
    old = java.spawn(2)
    view, first = groups.wait_converged()
    owned_before = {m: set(view.members[m].counted) for m in old[0].member_ids}
    joined_ns = time.monotonic_ns()

    java.spawn(1)
    view, _ = groups.wait_converged(newer_than=first)
    for member, before in owned_before.items():
        revoked = revoked_between(groups, member, joined_ns)
        kept = before - revoked
        assert revoked < before, f"{member} revoked everything it owned: {sorted(revoked)}"
        assert kept <= set(view.members[member].counted)
    assert {e.extra.get("protocol") for e in groups.events(EventKind.JOINED)} == {"cooperative-sticky"}


def test_manual_commits_advance_and_survive_a_handover(brokers: Any, groups: Groups) -> None:
    """commit=manual: commitSync every interval, one past the last; a member that takes over a
    partition reads back at least the last acknowledged offset."""
    options = ("commit=manual", "auto_commit_interval_ms=300")
    java = groups.kind(consumer_args(brokers.bootstrap, "java", *options))
    (first,) = java.spawn(1)
    groups.wait_converged()
    (member,) = first.member_ids

    def committed_twice() -> list[Event] | None:
        commits = groups.events(EventKind.OFFSETS_COMMITTED, member)
        return commits if len(commits) >= 2 else None

    commits = wait_until(committed_twice, 30, interval=0.1, what="two manual commits")
    offsets = [{(t, p): o for t, p, o in c.extra["offsets"]} for c in commits[:2]]
    assert set(offsets[0]) == PARTITIONS
    assert all(offsets[1][tp] == offsets[0][tp] + 1 for tp in PARTITIONS)

    assert first.terminate() == 0
    last = {(t, p): o for t, p, o in groups.events(EventKind.OFFSETS_COMMITTED, member)[-1].extra["offsets"]}
    (second,) = java.spawn(1)
    groups.wait_converged()
    (fetched,) = wait_until(
        lambda: groups.events(EventKind.OFFSETS_FETCHED, second.member_ids[0]), 30, what="the fetch"
    )
    read_back = {(t, p): o for t, p, o in fetched.extra["offsets"]}
    assert all(read_back[tp] >= last[tp] for tp in PARTITIONS), (last, read_back)


def test_no_commit_at_all_with_auto_commit_off(brokers: Any, groups: Groups) -> None:
    """enable_auto_commit=false (a scenario's offsets: none), with commit=auto and commit=manual:
    no periodic commit, none before the rejoin a join causes, none on close, and the coordinator
    holds no offset for the group (-1, Kafka's "none committed")."""
    off = ("auto_commit_interval_ms=200", "enable_auto_commit=false")
    auto = groups.kind(consumer_args(brokers.bootstrap, "java", "commit=auto", *off))
    manual = groups.kind(consumer_args(brokers.bootstrap, "java", "commit=manual", *off))
    (first,) = auto.spawn(1)
    _, generation = groups.wait_converged()
    (second,) = manual.spawn(1)  # the first member rejoins: with commits on, it commits first
    groups.wait_converged(generation)
    assert first.terminate() == 0 and second.terminate() == 0  # close(): would commit too
    assert groups.events(EventKind.OFFSETS_COMMITTED) == []
    for topic, n in TOPICS.items():
        committed = wait_until(
            lambda t=topic, k=n: committed_offsets(brokers, groups.name, t, k), 30, what="the OffsetFetch"
        )
        assert committed == dict.fromkeys(range(n), -1), (topic, committed)


# -- the Curator member ---------------------------------------------------------------------------


def curator_args(zk: str, root: str) -> list[str]:
    return [
        *("--mode", "zk", "--variant", "curator", "--zk", zk, "--zk-root", root),
        *(a for t in TOPICS for a in ("--topic", t)),
        *("--session-timeout-ms", "4000"),
    ]


def test_curator_member_says_so_on_garbage_in_the_assignment_and_recovers(
    zk_server: Any, zk_root: str, kazoo_client: KazooClient, groups: Groups
) -> None:
    from zk_mode.catalog import write_topics
    from zk_mode.paths import GroupPaths

    write_topics(kazoo_client, zk_root, TOPICS)
    curator = groups.kind(curator_args(zk_server.connect_string, zk_root))
    procs = curator.spawn(2)
    _, first = groups.wait_converged()

    assignment = GroupPaths(zk_root, groups.name).assignment
    kazoo_client.set(assignment, b"\x00not json")
    for proc in procs:
        assert proc.log_path is not None
        wait_until(
            lambda p=proc.log_path: f"skipping unparseable data in {assignment}" in p.read_text(),
            30,
            what="the members to report the garbage",
        )
    # The garbage is no decision: everyone keeps what it owns, and the next join gets a new one.
    assert groups.view().converged(groups.live_ids())
    curator.spawn(1)
    _, generation = groups.wait_converged(newer_than=first + 1)
    assert len(groups.live_ids()) == 3 and generation > first + 1


def test_curator_member_refuses_a_bad_catalog_entry(
    zk_server: Any, zk_root: str, kazoo_client: KazooClient
) -> None:
    kazoo_client.ensure_path(f"{zk_root}/topics")
    kazoo_client.create(f"{zk_root}/topics/orders", b'{"partitions": "eight"}')
    kazoo_client.create(f"{zk_root}/topics/clicks", b'{"partitions": 4}')
    args = [*curator_args(zk_server.connect_string, zk_root), "--group", "g"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "member", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"catalog entry {zk_root}/topics/orders is not valid" in done.stderr


def test_the_java_consumer_joins_a_kip_848_group_on_our_brokers(brokers: Any, groups: Groups) -> None:
    """Our brokers advertise ConsumerGroupHeartbeat: the Java consumer with group.protocol=consumer
    forms a KIP-848 group on them (the broker assigns; no JoinGroup, no leader)."""
    groups.kind(consumer_args(brokers.bootstrap, "java", "protocol=consumer")).spawn(2)
    groups.wait_converged()

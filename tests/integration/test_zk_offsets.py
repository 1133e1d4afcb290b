"""zk mode's offsets in ZooKeeper (Kafka 0.8.2's layout), on every variant, against a real ZooKeeper.

A partition's next owner reads back what its previous owner committed before giving it up, and the
checker's lost-offset check examines these histories and fails on one broken on purpose. The Python
variants run in this process; ``curator`` runs on the JVM, so its members are ``rebalance-lab member
--client java`` processes judged by the JSON events they print (skipped, saying why, where Java or
the built java/member is missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from bench.analysis.checker import Check, check
from bench.analysis.ownership import GroupOwnership
from bench.analysis.replay import RunHistory
from bench.experiment.history import History
from bench.services.java import java_module
from bench.services.members import MemberProcess
from group_api import Event, EventKind, GroupMember, ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import wait_until
from zk_mode.catalog import write_topics
from zk_mode.member import EXTERNAL_VARIANTS, VARIANTS
from zk_mode.paths import GroupPaths

JAVA = java_module("member")
#: The variants that run on the JVM skip, saying why, where Java or the built module is missing.
NEEDS_JAVA = [
    pytest.mark.java,
    pytest.mark.skipif(not JAVA.available, reason=f"needs the Java members: {JAVA.reason}"),
]


def variant_param(variant: str) -> Any:
    return pytest.param(variant, marks=NEEDS_JAVA) if variant in EXTERNAL_VARIANTS else variant


TOPICS = {"t": 4}
PARTITIONS = {("t", p) for p in range(4)}
COMMIT_MS = 200  # often, so the test waits little; the value is the members' own knob


@pytest.fixture
def catalog(kazoo_client: KazooClient, zk_root: str) -> str:
    write_topics(kazoo_client, zk_root, TOPICS)
    return zk_root


@dataclass
class JavaMember:
    """One ``rebalance-lab member --client java`` process hosting one member."""

    proc: MemberProcess

    @property
    def member_id(self) -> str:
        assert self.proc.member_id is not None
        return self.proc.member_id

    def leave(self) -> None:
        """SIGTERM: the member commits, leaves and the JVM exits 0."""
        code = self.proc.terminate()
        assert code == 0, f"member process {self.proc.pid} exited {code}"


class Members:
    """Members of group ``g``: in this process, or as member processes for the variants another
    program runs (curator); their events either way."""

    def __init__(self, zk_hosts: str, zk_root: str, log_dir: Path) -> None:
        self.zk_hosts = zk_hosts
        self.zk_root = zk_root
        self.log_dir = log_dir
        self.sink = ListSink()
        self.history = History()
        self.in_process: list[GroupMember] = []
        self.procs: list[MemberProcess] = []

    def start(self, variant: str, name: str, **options: object) -> GroupMember | JavaMember:
        options = {"auto_commit_interval_ms": COMMIT_MS, "time_boundary_s": 0.3, **options}
        if variant in EXTERNAL_VARIANTS:
            return self._spawn(variant, name, options)
        config = MemberConfig(
            group="g",
            topics=("t",),
            variant=variant,
            member_name=name,
            zk_hosts=self.zk_hosts,
            zk_root=self.zk_root,
            session_timeout_ms=4000,
            options=options,
        )
        member = create_member(config, self.sink)
        member.start()
        self.in_process.append(member)
        return member

    def _spawn(self, variant: str, name: str, options: dict[str, object]) -> JavaMember:
        args = [
            *("member", "--mode", "zk", "--variant", variant, "--client", EXTERNAL_VARIANTS[variant]),
            *("--zk", self.zk_hosts, "--zk-root", self.zk_root, "--group", "g", "--topic", "t"),
            *("--name", name, "--session-timeout-ms", "4000"),
            *(a for key, value in options.items() for a in ("--option", f"{key}={value}")),
        ]
        proc = MemberProcess(args, self.history, self.log_dir / f"{name}.log")
        self.procs.append(proc)

        def reported() -> bool:
            if not proc.alive() and proc.member_id is None:
                raise AssertionError(
                    f"member process {name} exited early: {proc.log_path.read_text()[-1500:]}"
                )
            return proc.member_id is not None

        wait_until(reported, 60, what=f"member process {name} to report")
        return JavaMember(proc)

    def events(self) -> list[Event]:
        return [*self.sink.events, *self.history.snapshot()]

    def close(self) -> None:
        for member in self.in_process:
            member.close()
        for proc in self.procs:
            proc.close()


@pytest.fixture
def members(zk_server: Any, catalog: str, tmp_path: Path) -> Iterator[Members]:
    group = Members(zk_server.connect_string, catalog, tmp_path)
    try:
        yield group
    finally:
        group.close()


def of(members: Members, kind: EventKind, member: str | None = None) -> list[Event]:
    return [e for e in members.events() if e.kind == kind and (member is None or e.member == member)]


def last_committed(events: list[Event], member: str) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for e in events:
        if e.kind == EventKind.OFFSETS_COMMITTED and e.member == member:
            out.update({(t, p): o for t, p, o in e.extra["offsets"]})
    return out


def history_of(events: list[Event]) -> RunHistory:
    start = min(e.mono_ns for e in events) - 1
    end = max(e.mono_ns for e in events) + 1
    lines = [
        {
            "event": "run",
            "phase": "start",
            "groups": {"g": {"topics": TOPICS, "mode": "zk", "variant": events[0].variant}},
            "partitions": {"g": sorted([t, p] for t, p in PARTITIONS)},
            "mono_ns": start,
            "wall": 0.0,
        },
        *(e.to_dict() for e in events),
        {"event": "run", "phase": "end", "mono_ns": end, "wall": 0.0},
    ]
    return RunHistory.from_lines(json.dumps(line) for line in lines)


def fetched_by(members: Members, member: str) -> dict[tuple[str, int], tuple[int, int]]:
    """What ``member`` read back per partition, with when it asked (request_mono_ns)."""
    return {
        (t, p): (o, e.extra["request_mono_ns"])
        for e in of(members, EventKind.OFFSETS_FETCHED, member)
        for t, p, o in e.extra["offsets"]
    }


def stored_offsets(kazoo_client: KazooClient, catalog: str, partitions: Any) -> dict[tuple[str, int], int]:
    paths = GroupPaths(catalog, "g")
    return {tp: int(kazoo_client.get(paths.offset(*tp))[0]) for tp in sorted(partitions)}


def wait_both_assigned(members: Members, first: str, second: str) -> list[Event]:
    def both_assigned() -> list[Event] | None:
        events = members.events()
        ownership = GroupOwnership(PARTITIONS).apply_all(events)
        converged = ownership.converged([first, second]) and of(members, EventKind.OFFSETS_FETCHED, second)
        return events if converged else None

    return wait_until(both_assigned, 60, what=f"{first} and {second} to share the partitions")


def assert_read_back(
    events: list[Event], first: str, fetched: dict[tuple[str, int], tuple[int, int]]
) -> None:
    """Each partition the next owner took over reads what the previous owner last committed before
    the fetch was sent."""
    assert fetched, "the second member took over no partition"
    for tp, (offset, sent_ns) in fetched.items():
        before = [e for e in events if e.mono_ns < sent_ns]
        assert offset == last_committed(before, first)[tp] >= 2, tp


def assert_checker_judges(events: list[Event], second: str) -> None:
    """The lost-offset check passes this history and catches it with one read-back made too low."""
    report = check(history_of(events))
    assert report.examined["offset_fetches"] >= 1
    assert not report.of(Check.OFFSET_LOST), report.failures

    broken_fetch = next(e for e in events if e.kind == EventKind.OFFSETS_FETCHED and e.member == second)
    t, p, o = broken_fetch.extra["offsets"][0]
    broken = [
        e
        if e is not broken_fetch
        else Event.from_dict({**e.to_dict(), "offsets": [[t, p, o - 1], *e.extra["offsets"][1:]]})
        for e in events
    ]
    (lost,) = check(history_of(broken)).of(Check.OFFSET_LOST)
    assert lost.details["partition"] == [t, p] and lost.details["fetched"] == o - 1


@pytest.mark.parametrize("variant", [variant_param(v) for v in VARIANTS])
def test_the_next_owner_reads_back_what_the_previous_owner_committed(
    variant: str, members: Members, kazoo_client: KazooClient, catalog: str
) -> None:
    if variant in EXTERNAL_VARIANTS:
        read_back_across_processes(variant, members, kazoo_client, catalog)
        return
    first = members.start(variant, "a")
    # Two commits of all four partitions: the periodic commit runs and writes what moved.
    assert wait_until(lambda: len(of(members, EventKind.OFFSETS_COMMITTED, first.member_id)) >= 2, 30)
    stored = stored_offsets(kazoo_client, catalog, PARTITIONS)
    assert all(o >= 2 for o in stored.values()), stored

    second = members.start(variant, "b")
    events = wait_both_assigned(members, first.member_id, second.member_id)
    fetched = fetched_by(members, second.member_id)
    assert_read_back(events, first.member_id, fetched)
    # Every commit of the new owner starts from what it read: its first write is one more.
    first_commit = of(members, EventKind.OFFSETS_COMMITTED, second.member_id)
    if first_commit:
        for t, p, o in first_commit[0].extra["offsets"]:
            assert o == fetched[(t, p)][0] + 1

    assert_checker_judges(events, second.member_id)


def read_back_across_processes(
    variant: str, members: Members, kazoo_client: KazooClient, catalog: str
) -> None:
    """The same hand-over between two member processes. The new owner commits only on its leave
    (an interval longer than the test), so the znodes of what it took over still hold what it read
    until it leaves, and then one more."""
    first = members.start(variant, "a")
    assert wait_until(lambda: len(of(members, EventKind.OFFSETS_COMMITTED, first.member_id)) >= 2, 30)
    stored = stored_offsets(kazoo_client, catalog, PARTITIONS)
    assert all(o >= 2 for o in stored.values()), stored

    second = members.start(variant, "b", auto_commit_interval_ms=3_600_000)
    events = wait_both_assigned(members, first.member_id, second.member_id)
    fetched = fetched_by(members, second.member_id)
    assert_read_back(events, first.member_id, fetched)
    read = {tp: offset for tp, (offset, _) in fetched.items()}
    assert stored_offsets(kazoo_client, catalog, read) == read
    assert not of(members, EventKind.OFFSETS_COMMITTED, second.member_id)

    second.leave()  # 0.8.2's shutdown: one commit of everything it owns, each one past what it read
    (commit,) = of(members, EventKind.OFFSETS_COMMITTED, second.member_id)
    left = {(t, p): o for t, p, o in commit.extra["offsets"]}
    assert left == {tp: offset + 1 for tp, offset in read.items()}
    assert stored_offsets(kazoo_client, catalog, left) == left

    assert_checker_judges(events, second.member_id)


@pytest.mark.parametrize("variant", ["chain", variant_param("curator")])
def test_garbage_in_an_offset_znode_is_reported_and_the_member_goes_on(
    variant: str, members: Members, kazoo_client: KazooClient, catalog: str
) -> None:
    paths = GroupPaths(catalog, "g")
    kazoo_client.create(paths.offset("t", 0), b"not-an-offset", makepath=True)
    member = members.start(variant, "a")
    assert wait_until(lambda: bool(of(members, EventKind.ASSIGNED, member.member_id)), 30)
    (fetch,) = of(members, EventKind.OFFSETS_FETCHED, member.member_id)
    assert fetch.extra["unreadable"] == [paths.offset("t", 0)]
    assert ["t", 0, -1] in fetch.extra["offsets"]
    # It still commits, and the commit replaces the garbage with an offset.
    assert wait_until(lambda: kazoo_client.get(paths.offset("t", 0))[0].isdigit(), 30)


@pytest.mark.parametrize("variant", ["chain", variant_param("curator")])
def test_offsets_none_commits_and_reads_nothing(
    variant: str, members: Members, kazoo_client: KazooClient, catalog: str
) -> None:
    member = members.start(variant, "a", enable_auto_commit="false")
    assert wait_until(lambda: bool(of(members, EventKind.ASSIGNED, member.member_id)), 30)
    member.leave()
    assert of(members, EventKind.LEFT, member.member_id)
    assert not of(members, EventKind.OFFSETS_COMMITTED) and not of(members, EventKind.OFFSETS_FETCHED)
    assert kazoo_client.exists(f"{catalog}/consumers") is None

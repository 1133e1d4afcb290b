"""zk mode's offsets in ZooKeeper (Kafka 0.8.2's layout), on every variant, against a real ZooKeeper.

A partition's next owner reads back what its previous owner committed before giving it up, and the
checker's lost-offset check examines these histories and fails on one broken on purpose.
"""

from __future__ import annotations

import json

import pytest
from kazoo.client import KazooClient

from bench.analysis.checker import Check, check
from bench.analysis.ownership import GroupOwnership
from bench.analysis.replay import RunHistory
from group_api import Event, EventKind, ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import wait_until
from zk_mode.catalog import write_topics
from zk_mode.member import VARIANTS
from zk_mode.paths import GroupPaths

TOPICS = {"t": 4}
PARTITIONS = {("t", p) for p in range(4)}
COMMIT_MS = 200  # often, so the test waits little; the value is the members' own knob


@pytest.fixture
def catalog(kazoo_client: KazooClient, zk_root: str) -> str:
    write_topics(kazoo_client, zk_root, TOPICS)
    return zk_root


@pytest.fixture
def members(zk_server, catalog: str):
    started = []
    sink = ListSink()

    def start(variant: str, name: str, **options: object):
        config = MemberConfig(
            group="g",
            topics=("t",),
            variant=variant,
            member_name=name,
            zk_hosts=zk_server.connect_string,
            zk_root=catalog,
            session_timeout_ms=4000,
            options={"auto_commit_interval_ms": COMMIT_MS, "time_boundary_s": 0.3, **options},
        )
        member = create_member(config, sink)
        member.start()
        started.append(member)
        return member

    try:
        yield start, sink
    finally:
        for m in started:
            m.close()


def of(sink: ListSink, kind: EventKind, member: str | None = None) -> list[Event]:
    return [e for e in list(sink.events) if e.kind == kind and (member is None or e.member == member)]


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


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_next_owner_reads_back_what_the_previous_owner_committed(
    variant: str, members, kazoo_client: KazooClient, catalog: str
) -> None:
    start, sink = members
    first = start(variant, "a")
    # Two commits of all four partitions: the periodic commit runs and writes what moved.
    assert wait_until(lambda: len(of(sink, EventKind.OFFSETS_COMMITTED, first.member_id)) >= 2, 30)
    paths = GroupPaths(catalog, "g")
    stored = {tp: int(kazoo_client.get(paths.offset(*tp))[0]) for tp in sorted(PARTITIONS)}
    assert all(o >= 2 for o in stored.values()), stored

    second = start(variant, "b")

    def both_assigned() -> bool:
        ownership = GroupOwnership(PARTITIONS).apply_all(list(sink.events))
        return ownership.converged([first.member_id, second.member_id]) and bool(
            of(sink, EventKind.OFFSETS_FETCHED, second.member_id)
        )

    assert wait_until(both_assigned, 60)
    events = list(sink.events)
    fetched = {
        (t, p): (o, e.extra["request_mono_ns"])
        for e in of(sink, EventKind.OFFSETS_FETCHED, second.member_id)
        for t, p, o in e.extra["offsets"]
    }
    assert fetched, "the second member took over no partition"
    for tp, (offset, sent_ns) in fetched.items():
        before = [e for e in events if e.mono_ns < sent_ns]
        assert offset == last_committed(before, first.member_id)[tp] >= 2, tp
    # Every commit of the new owner starts from what it read: its first write is one more.
    first_commit = of(sink, EventKind.OFFSETS_COMMITTED, second.member_id)
    if first_commit:
        for t, p, o in first_commit[0].extra["offsets"]:
            assert o == fetched[(t, p)][0] + 1

    report = check(history_of(events))
    assert report.examined["offset_fetches"] >= 1
    assert not report.of(Check.OFFSET_LOST), report.failures

    # The same history with one read-back below the commit before it: the check must catch it.
    broken_fetch = of(sink, EventKind.OFFSETS_FETCHED, second.member_id)[0]
    t, p, o = broken_fetch.extra["offsets"][0]
    broken = [
        e
        if e is not broken_fetch
        else Event.from_dict({**e.to_dict(), "offsets": [[t, p, o - 1], *e.extra["offsets"][1:]]})
        for e in events
    ]
    (lost,) = check(history_of(broken)).of(Check.OFFSET_LOST)
    assert lost.details["partition"] == [t, p] and lost.details["fetched"] == o - 1


def test_garbage_in_an_offset_znode_is_reported_and_the_member_goes_on(
    members, kazoo_client: KazooClient, catalog: str
) -> None:
    start, sink = members
    paths = GroupPaths(catalog, "g")
    kazoo_client.create(paths.offset("t", 0), b"not-an-offset", makepath=True)
    member = start("chain", "a")
    assert wait_until(lambda: bool(of(sink, EventKind.ASSIGNED, member.member_id)), 30)
    (fetch,) = of(sink, EventKind.OFFSETS_FETCHED, member.member_id)
    assert fetch.extra["unreadable"] == [paths.offset("t", 0)]
    assert ["t", 0, -1] in fetch.extra["offsets"]
    # It still commits, and the commit replaces the garbage with an offset.
    assert wait_until(lambda: kazoo_client.get(paths.offset("t", 0))[0].isdigit(), 30)


def test_offsets_none_commits_and_reads_nothing(members, kazoo_client: KazooClient, catalog: str) -> None:
    start, sink = members
    member = start("chain", "a", enable_auto_commit="false")
    assert wait_until(lambda: bool(of(sink, EventKind.ASSIGNED, member.member_id)), 30)
    member.leave()
    assert not of(sink, EventKind.OFFSETS_COMMITTED) and not of(sink, EventKind.OFFSETS_FETCHED)
    assert kazoo_client.exists(f"{catalog}/consumers") is None

"""zk_mode beyond the contract: bad input, garbage in znodes, counted calls, the cost of a join."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kazoo.client import KazooClient

from bench.analysis.ownership import GroupOwnership
from bench.experiment.joincost import measure_join, parse_hosts
from bench.model import Workload
from bench.services.proxy import Proxy
from group_api import ConfigError, EventKind, ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import wait_until
from zk_mode.catalog import write_topics
from zk_mode.member import encode_json
from zk_mode.paths import GroupPaths

TOPICS = {"t": 6}
PARTITIONS = {("t", p) for p in range(6)}


def member_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "member", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def catalog(kazoo_client: KazooClient, zk_root: str) -> str:
    write_topics(kazoo_client, zk_root, TOPICS)
    return zk_root


@pytest.fixture
def members(zk_server, catalog: str):
    """Start in-process members on demand; all are closed in finally."""
    started = []
    sink = ListSink()

    def start(variant: str, n: int, **options: object):
        base = MemberConfig(
            group="g",
            topics=("t",),
            variant=variant,
            zk_hosts=zk_server.connect_string,
            zk_root=catalog,
            session_timeout_ms=4000,
            options=dict(options),
        )
        new = [create_member(base.with_(member_name=f"m{len(started) + i}"), sink) for i in range(n)]
        for m in new:
            m.start()
        started.extend(new)
        return new

    try:
        yield start, sink
    finally:
        for m in started:
            m.close()


def converged(sink: ListSink, ms) -> bool:
    return GroupOwnership(PARTITIONS).apply_all(sink.events).converged([m.member_id for m in ms])


def test_unknown_variant_is_a_clear_error(zk_server, catalog: str) -> None:
    out = member_cli("--variant", "nope", "--group", "g", "--topic", "t", "--zk", zk_server.connect_string)
    assert out.returncode != 0
    assert "variant" in out.stderr and "chain" in out.stderr


def test_unknown_assignor_is_a_clear_error(zk_server) -> None:
    out = member_cli("--assignor", "fair", "--group", "g", "--topic", "t", "--zk", zk_server.connect_string)
    assert out.returncode != 0
    assert "roundrobin" in out.stderr


def test_topic_missing_from_catalog_is_a_clear_error(zk_server, catalog: str) -> None:
    out = member_cli(
        "--group", "g", "--topic", "missing", "--zk", zk_server.connect_string, "--zk-root", catalog
    )
    assert out.returncode != 0
    assert "'missing' is not in the catalog" in out.stderr


@pytest.mark.parametrize(
    "data",
    [b"\x00not json", b"[6]", b"6", b"{}", b'{"partitions": "6"}', b'{"partitions": 2.5}']
    + [b'{"partitions": true}', b'{"partitions": 0}', b'{"partitions": null}'],
)
def test_garbage_in_the_catalog_is_a_clear_error(
    zk_server, kazoo_client: KazooClient, catalog: str, data: bytes
) -> None:
    kazoo_client.set(f"{catalog}/topics/t", data)
    config = MemberConfig(group="g", topics=("t",), zk_hosts=zk_server.connect_string, zk_root=catalog)
    with pytest.raises(ConfigError, match="not valid"):
        create_member(config, ListSink()).start()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="assignor"):
        MemberConfig(group="g", topics=("t",), assignor="fair")
    with pytest.raises(ConfigError, match="group"):
        MemberConfig(group="bad group!", topics=("t",))
    with pytest.raises(ConfigError, match="zk_hosts"):
        create_member(MemberConfig(group="g", topics=("t",)), ListSink())


#: Registrations no member wrote: not JSON, and valid JSON of the wrong shape.
BAD_REGISTRATIONS = [
    b"\xff\xfe{garbage",
    b'["m", "t"]',
    b'{"member": "x", "topics": 5}',
    b'{"member": "x", "topics": "t"}',
    b'{"member": "x", "topics": [1, {}]}',
    b'{"member": 5, "topics": ["t"]}',
]


@pytest.mark.parametrize("data", BAD_REGISTRATIONS)
@pytest.mark.parametrize("variant", ["chain", "herd", "selfbalance"])
def test_garbage_member_znode_is_skipped(
    members, kazoo_client: KazooClient, catalog: str, variant: str, data: bytes
) -> None:
    start, sink = members
    paths = GroupPaths(catalog, "g")
    kazoo_client.ensure_path(paths.members)
    # Garbage registered first, so for chain and herd it holds the lowest sequence number.
    name = "m-" if variant != "selfbalance" else "garbage"
    kazoo_client.create(f"{paths.members}/{name}", data, ephemeral=True, sequence=variant != "selfbalance")
    group = start(variant, 3, rebalance_backoff_ms=100)
    assert sink.wait_for(lambda _: converged(sink, group), 60), "group did not converge around the garbage"


#: Assignments no leader wrote, given the two members' ids; the good share must survive.
BAD_ASSIGNMENTS = {
    "not-json": lambda a, b: b"]]garbage",
    "members-not-a-dict": lambda a, b: encode_json({"members": [[a, [["t", 0]]]]}),
    "share-not-a-list": lambda a, b: encode_json({"members": {a: 5, b: [["t", 0]]}}),
    "share-of-strings": lambda a, b: encode_json({"members": {a: ["t0", "t1"], b: [["t", 0]]}}),
    "pair-too-short": lambda a, b: encode_json({"members": {a: [["t"]], b: [["t", 0]]}}),
    "partition-not-an-int": lambda a, b: encode_json({"members": {a: [["t", "x"]], b: [["t", 0]]}}),
    "unknown-partition": lambda a, b: encode_json({"members": {a: [["t", 99]], b: [["t", 0]]}}),
    "topic-not-a-string": lambda a, b: encode_json({"members": {a: [[1, 2]], b: [["t", 0]]}}),
}


@pytest.mark.parametrize("shape", BAD_ASSIGNMENTS)
@pytest.mark.parametrize("variant", ["chain", "herd"])
def test_garbage_assignment_is_skipped_until_the_next_decision(
    members, kazoo_client: KazooClient, catalog: str, variant: str, shape: str
) -> None:
    start, sink = members
    group = start(variant, 2)
    assert sink.wait_for(lambda _: converged(sink, group), 60)
    # One bad share and one good one: the good one must still be taken.
    data = BAD_ASSIGNMENTS[shape](group[0].member_id, group[1].member_id)
    kazoo_client.set(GroupPaths(catalog, "g").assignment, data)
    group += start(variant, 1)
    assert sink.wait_for(lambda _: converged(sink, group), 60), "no new decision after garbage"
    assert all(m._worker.is_alive() for m in group)


def test_assigned_is_announced_once_per_generation(members, kazoo_client: KazooClient, catalog: str) -> None:
    start, sink = members
    paths = GroupPaths(catalog, "g")
    # Someone else still holds every claim, so the member waits on one watch per partition ...
    for tp in sorted(PARTITIONS):
        kazoo_client.create(paths.owner(*tp), b"previous-owner", ephemeral=True, makepath=True)
    (a,) = start("chain", 1)
    # (its assignment's read set one watch; its probes of the held claims one each)
    wait_until(
        lambda: a.zk_counts()["watches_set"] >= 1 + len(PARTITIONS), 30, what="a watch on every held claim"
    )
    # ... and all of them fire at once: one retry completes the claims, the others change nothing.
    tx = kazoo_client.transaction()
    for tp in sorted(PARTITIONS):
        tx.delete(paths.owner(*tp))
    assert all(r is True for r in tx.commit())
    assert sink.wait_for(lambda _: converged(sink, [a]), 60)
    # A second generation (the newcomer was in no earlier one): its assignment task queues
    # behind the claim retries of the first.
    group = [a, *start("chain", 1)]
    assert sink.wait_for(lambda _: converged(sink, group), 60)
    assigned = [(e.member, e.generation) for e in sink.events if e.kind == EventKind.ASSIGNED]
    assert len(assigned) == len(set(assigned)), f"repeated assigned events: {assigned}"


@pytest.mark.parametrize("variant", ["chain", "herd"])
def test_a_leader_announces_its_election_before_its_assignment(members, variant: str) -> None:
    start, sink = members
    group = start(variant, 3)
    assert sink.wait_for(lambda _: converged(sink, group), 60)
    computed = [e for e in sink.events if e.kind == EventKind.ASSIGNMENT_COMPUTED]
    assert computed
    for c in computed:
        own = [e.kind for e in sink.events if e.member == c.member and e.generation == c.generation]
        expected = [EventKind.LEADER_ELECTED, EventKind.ASSIGNMENT_COMPUTED, EventKind.ASSIGNED]
        assert [k for k in own if k in expected] == expected, f"{c.member} in generation {c.generation}"


def test_a_leader_whose_member_znode_is_gone_cannot_publish(
    members, kazoo_client: KazooClient, catalog: str
) -> None:
    start, sink = members
    (a,) = start("chain", 1)
    assert sink.wait_for(lambda _: converged(sink, [a]), 60)
    paths = GroupPaths(catalog, "g")
    _, before = kazoo_client.get(paths.assignment)
    # As when its session expired unnoticed: the membership watch makes it try to publish for a
    # group without itself, and only the check on its own znode holds that off.
    kazoo_client.delete(f"{paths.members}/{a.node}")
    # Its first publication and its claims were one multi each; the third is the stale publication.
    wait_until(lambda: a.zk_counts().get("multi", 0) == 3, 30, what="the stale leader's publication")
    wait_until(
        lambda: not a.is_leader or kazoo_client.exists(paths.assignment).version != before.version,
        30,
        what="the stale leader to step down or publish",
    )
    raw, after = kazoo_client.get(paths.assignment)
    assert after.version == before.version, f"a leader without a member znode published {raw!r}"


def test_a_leader_that_read_an_older_assignment_cannot_overwrite_a_newer_one(
    members, kazoo_client: KazooClient, catalog: str
) -> None:
    start, sink = members
    (a,) = start("chain", 1)
    assert sink.wait_for(lambda _: converged(sink, [a]), 60)
    paths = GroupPaths(catalog, "g")
    raw, stale = kazoo_client.get(paths.assignment)
    newer = encode_json({"newer": True})  # not a decision the member acts on
    kazoo_client.set(paths.assignment, newer, version=stale.version)
    decision = {**json.loads(raw), "generation": stale.version + 1}
    assert not a._publish(decision, stale.version), "published over a newer assignment"
    assert kazoo_client.get(paths.assignment)[0] == newer


def test_client_counts_match_what_a_member_did(members) -> None:
    start, sink = members
    (solo,) = start("chain", 1)
    assert sink.wait_for(lambda _: converged(sink, [solo]), 60)
    counts = solo.zk_counts()
    # One member alone: it created its registration and claimed all 6 partitions ...
    assert counts["create"] >= 1 + len(PARTITIONS)
    # ... published once and claimed through one multi each, and watches the assignment.
    assert counts["multi"] == 2 and counts["multi_ops"] == 2 + len(PARTITIONS)
    assert counts["watches_set"] >= 2
    assert counts["reads"] == counts["get"] + counts["get_children"] + counts["exists"]


def test_session_loss_is_reported_and_the_member_rejoins(members, zk_server) -> None:
    start, sink = members
    a, b = start("chain", 2)
    assert sink.wait_for(lambda _: converged(sink, [a, b]), 60)
    # Expire b's session from the server side: a second client with the same session id closes it.
    session_id, password = b.client.client_id
    thief = KazooClient(zk_server.connect_string)
    thief._session_id, thief._session_passwd = session_id, password  # the documented way to share a session
    thief.start()
    thief.stop()
    thief.close()
    assert sink.wait_for(
        lambda ev: any(e.kind == EventKind.SESSION_LOST and e.member == b.member_id for e in ev), 30
    )
    wait_until(
        lambda: (
            converged(sink, [a, b])
            and GroupOwnership(PARTITIONS).apply_all(sink.events).members[b.member_id].counted
        ),
        60,
    )


@pytest.mark.parametrize("variant", ["chain", "herd", "selfbalance"])
def test_a_member_cut_off_stops_owning_before_the_link_heals(zk_server, catalog: str, variant: str) -> None:
    """A blackhole longer than the session: the member must give its partitions up while cut off.
    Its commit timer keeps asking ZooKeeper; such a call must not hold the worker until the heal,
    behind the SUSPENDED notice (the session expires meanwhile and others may take the partitions)."""
    host, _, port = zk_server.connect_string.split(",")[0].rpartition(":")
    sink = ListSink()
    with Proxy((host, int(port))) as proxy:
        config = MemberConfig(
            group="g",
            topics=("t",),
            variant=variant,
            zk_hosts=f"{proxy.address[0]}:{proxy.address[1]}",
            zk_root=catalog,
            session_timeout_ms=4000,
            member_name="cut",
            options={"auto_commit_interval_ms": 100},
        )
        member = create_member(config, sink)
        member.start()
        try:
            assert sink.wait_for(lambda _: converged(sink, [member]), 60)
            proxy.blackhole()
            suspended = sink.wait_for(
                lambda ev: any(
                    e.kind == EventKind.REVOKED and e.extra.get("reason") == "suspended" for e in ev
                ),
                30,
            )
            proxy.heal()
            assert suspended, "the member still owned its partitions while cut off from ZooKeeper"
            assert sink.wait_for(lambda _: converged(sink, [member]), 60)
        finally:
            member.close()


def test_herd_reads_grow_faster_than_chain(zk_server) -> None:
    servers = parse_hosts(zk_server.connect_string)
    cost = {
        (v, n): measure_join(zk_server.connect_string, servers, v, n, partitions=16).server.reads
        for v in ("chain", "herd")
        for n in (4, 8)
    }
    assert cost["herd", 8] > cost["chain", 8]
    herd_growth = cost["herd", 8] / cost["herd", 4]
    chain_growth = cost["chain", 8] / cost["chain", 4]
    assert herd_growth > 2.0 > chain_growth, cost


def test_a_chain_join_hands_ownership_over_in_one_multi_per_member(members) -> None:
    """Counted on the members' own calls: every owner znode a join moves is deleted and created as
    an op of a multi, never one call per partition; a member that only gives up or only gains (the
    newcomer) does it in one multi, one that does both in at most two (its releases, then the claims
    their previous owners released); the leader's publication is one more."""
    start, sink = members
    no_commits = {"enable_auto_commit": "false"}  # commits are single sets, beside the hand-over
    group = start("chain", 3, **no_commits)
    assert sink.wait_for(lambda _: converged(sink, group), 60)
    before = {m.member_id: m.zk_counts() for m in group}
    group += start("chain", 1, **no_commits)
    assert sink.wait_for(lambda _: converged(sink, group), 60)
    moved = Workload(members=4, partitions=len(PARTITIONS)).moves("join")
    multis, ops = {}, 0
    for i, m in enumerate(group):
        then, now = before.get(m.member_id, {}), m.zk_counts()
        delta = {k: now.get(k, 0) - then.get(k, 0) for k in now}
        single_writes = 3 if m is group[-1] else 0  # the newcomer's registration pipeline
        assert delta["writes"] - single_writes == delta.get("multi_ops", 0), f"{m.member_id}: {delta}"
        multis[f"m{i}"] = delta.get("multi", 0) - (1 if m.is_leader else 0)  # its publication
        ops += delta.get("multi_ops", 0)
    assert ops == 2 + 2 * moved.moved, "the publication's check and set, a delete and a create per move"
    for name, count in multis.items():
        lost, gained = moved.lost.get(name, 0), moved.gained.get(name, 0)
        allowed = (1 if lost or gained else 0) + (1 if lost and gained else 0)
        assert 0 < count <= allowed if (lost or gained) else count == allowed, (name, multis, moved)

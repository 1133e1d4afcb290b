"""Hostile data in every znode a member or a broker reads: each is logged with its path, skipped or
treated as absent, the group carries on, nothing crashes.

zk mode (in-process members, one group per case): member registrations, the assignment, ownership
claims, committed offsets (the catalog is read once at start: garbage there is a clear error, in
``test_zk_mode``). Brokers (one broker for the module, a real kafka-python consumer as the healthy
group): broker registrations, the topic catalog, a data topic's leaders, the offsets topic's replica
assignment, an offsets partition's state, the controller and the controller epoch. Every broker case
restores the znode it damaged, so the next one starts from a healthy cluster.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from kafka.protocol.metadata import MetadataRequest
from kazoo.client import KazooClient

from bench.analysis.ownership import GroupOwnership
from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import OFFSETS_TOPIC, ZkPaths, read_view
from group_api import EventKind, ListSink, MemberConfig
from group_api.registry import create_member
from tests.conftest import running_brokers, wait_until
from tests.kp_consumer import PolledConsumer
from zk_mode.catalog import write_topics
from zk_mode.paths import GroupPaths

TOPICS = {"t": 4}
PARTITIONS = {("t", p) for p in range(4)}
DEEP = b"[" * 60_000  # nesting past Python's recursion limit
HUGE_INT = b"9" * 5_000  # past Python's int-from-string digit limit


# -- zk mode ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZkCase:
    """Garbage written before the group starts, and the znode path(s) a member must log."""

    plant: Callable[[KazooClient, GroupPaths], list[str]]
    variants: tuple[str, ...] = ("chain",)


def plant_registrations(zk: KazooClient, paths: GroupPaths) -> list[str]:
    zk.ensure_path(paths.members)
    odd_name = f"{paths.members}/not-a-member"
    zk.create(odd_name, b'{"member": "x", "topics": ["t"]}')
    deep = zk.create(f"{paths.members}/m-", DEEP, ephemeral=True, sequence=True)
    huge = zk.create(f"{paths.members}/m-", b'{"member": ' + HUGE_INT + b"}", ephemeral=True, sequence=True)
    return [odd_name, deep, huge]


def plant_assignment(zk: KazooClient, paths: GroupPaths) -> list[str]:
    zk.create(paths.assignment, DEEP, makepath=True)
    return [paths.assignment]


def plant_claims(zk: KazooClient, paths: GroupPaths) -> list[str]:
    # Persistent, where claims are ephemeral: no member's session wrote them.
    claims = [paths.owner("t", 0), paths.owner("t", 1)]
    zk.create(claims[0], b"\xff\xfe", makepath=True)
    zk.create(claims[1], b'{"member": 5}', makepath=True)
    return claims


def plant_offsets(zk: KazooClient, paths: GroupPaths) -> list[str]:
    bad = {0: HUGE_INT, 1: b"-5", 2: b"\xff12", 3: b"9223372036854775808"}  # the last: int64 max + 1
    for p, data in bad.items():
        zk.create(paths.offset("t", p), data, makepath=True)
    return [paths.offset("t", p) for p in bad]


ZK_CASES = {
    "member registrations": ZkCase(plant_registrations, ("chain", "herd")),
    "assignment": ZkCase(plant_assignment, ("chain", "herd")),
    "owner claims": ZkCase(plant_claims, ("chain", "selfbalance")),
    "offsets": ZkCase(plant_offsets),
}


@pytest.mark.parametrize(
    ("kind", "variant"), [(kind, v) for kind, case in ZK_CASES.items() for v in case.variants]
)
def test_members_skip_hostile_znodes_and_the_group_converges(
    zk_server: ZooKeeperEnsemble,
    kazoo_client: KazooClient,
    zk_root: str,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    variant: str,
) -> None:
    write_topics(kazoo_client, zk_root, TOPICS)
    paths = GroupPaths(zk_root, "g")
    planted = ZK_CASES[kind].plant(kazoo_client, paths)
    sink = ListSink()
    config = MemberConfig(
        group="g",
        topics=("t",),
        variant=variant,
        zk_hosts=zk_server.connect_string,
        zk_root=zk_root,
        session_timeout_ms=4000,
        options={"rebalance_backoff_ms": 100},
    )
    group = [create_member(config.with_(member_name=f"m{i}"), sink) for i in range(2)]
    caplog.set_level(logging.WARNING, logger="zk_mode")
    try:
        for m in group:
            m.start()
        ids = [m.member_id for m in group]
        assert sink.wait_for(
            lambda _: GroupOwnership(PARTITIONS).apply_all(sink.events).converged(ids), 60
        ), f"the group did not converge around garbage in the {kind}"
        assert all(m._worker.is_alive() for m in group)
    finally:
        for m in group:
            m.close()
    logged = caplog.text
    for path in planted:
        assert path in logged, f"{path} was not named in a log line"
    if kind == "offsets":
        fetched = [e for e in sink.events if e.kind == EventKind.OFFSETS_FETCHED]
        unreadable = {path for e in fetched for path in e.extra.get("unreadable", [])}
        assert unreadable == set(planted)
        # Each unreadable znode was read as "no offset stored" (-1) by the fetch that named it.
        for e in fetched:
            named = set(e.extra.get("unreadable", []))
            assert all(
                o == -1 for t, p, o in e.extra["offsets"] if GroupPaths(zk_root, "g").offset(t, p) in named
            )


# -- brokers ----------------------------------------------------------------------------------------

TOPIC = "events"
BROKER_PARTITIONS = 3
OFFSETS_PARTITIONS = 3


@pytest.fixture(scope="module")
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        1,
        tmp_path_factory.mktemp("hostile"),
        topics={TOPIC: BROKER_PARTITIONS},
        offsets_partitions=OFFSETS_PARTITIONS,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def healthy(cluster: BrokerCluster) -> Iterator[PolledConsumer]:
    consumer = PolledConsumer(
        [TOPIC],
        bootstrap_servers=cluster.bootstrap,
        group_id=f"healthy-{uuid.uuid4().hex[:6]}",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        enable_auto_commit=False,
    )
    all_partitions = {(TOPIC, p) for p in range(BROKER_PARTITIONS)}
    try:
        wait_until(
            lambda: consumer.assignment() == all_partitions, 30, what="the healthy consumer's assignment"
        )
        yield consumer
    finally:
        consumer.close()


def controller_works(cluster: BrokerCluster) -> None:
    """The controller still does its duty: a new catalog topic gets a leader per partition."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    paths = ZkPaths(cluster.zk_root)
    cluster.zk.create(paths.topic(name), json.dumps({"partitions": 2}).encode())
    try:
        wait_until(
            lambda: len(read_view(cluster.zk, cluster.zk_root).leaders.get(name, {})) == 2,
            30,
            what=f"the controller to give the new topic {name} its leaders",
        )
    finally:
        cluster.zk.delete(paths.topic(name))
        cluster.zk.delete(paths.topic_state(name))


def hostile_writes(root: str, kind: str) -> list[tuple[str, bytes]]:
    """Znode kind -> the (path, garbage) writes of its case, in order."""
    p = ZkPaths(root)
    registrations = [b"\x00", b'{"host": "h", "port": 70000}', b'{"host": 5, "port": 1}', DEEP]
    return {
        "broker registration": [(p.broker(77 + i), data) for i, data in enumerate(registrations)],
        "topic catalog": [
            (p.topic("hostile"), data)
            for data in (b'{"partitions": 1000000000000}', b'{"partitions": "3"}', DEEP)
        ],
        "topic leaders": [
            (p.topic_state(TOPIC), data)
            for data in (b'{"partitions": {"0": {"leader": 4294967296, "leader_epoch": 0}}}', b"[]", DEEP)
        ],
        "offsets assignment": [
            (p.topic_state(OFFSETS_TOPIC), data)
            for data in (b'{"version": 99, "partitions": {"0": [1]}}', b'{"partitions": {"0": []}}', DEEP)
        ],
        "partition state": [
            (p.partition_state(OFFSETS_TOPIC, 0), data)
            for data in (
                b'{"leader": 1, "leader_epoch": -4, "isr": [1], "version": 1}',
                b'{"version": 7}',
                HUGE_INT,
            )
        ],
        "controller": [(p.controller, data) for data in (b"\x00garbage", b'{"brokerid": "1"}')],
        "controller epoch": [(p.controller_epoch, data) for data in (b"not a number", b"-3")],
    }[kind]


BROKER_KINDS = [
    "broker registration",
    "topic catalog",
    "topic leaders",
    "offsets assignment",
    "partition state",
    "controller",
    "controller epoch",
]


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_a_broker_skips_hostile_znodes_and_keeps_serving(
    cluster: BrokerCluster, healthy: PolledConsumer, kind: str
) -> None:
    broker = cluster.broker(1)
    zk = cluster.zk

    def mentions(path: str) -> int:
        return broker.log_path.read_text(errors="replace").count(path)

    originals: dict[str, bytes | None] = {}
    written: dict[str, bytes] = {}
    try:
        for path, data in hostile_writes(cluster.zk_root, kind):
            before = mentions(path)
            if path not in originals:
                originals[path] = zk.get(path)[0] if zk.exists(path) else None
            if zk.exists(path):
                zk.set(path, data)
            else:
                zk.create(path, data, makepath=True)
            written[path] = data
            controller_works(cluster)  # also what makes a controller read its epoch again
            wait_until(lambda p=path, n=before: mentions(p) > n, 20, what=f"the broker to log {path}")
            assert broker.is_running(), broker.log_tail()
        metadata = send_request(broker.address, MetadataRequest(version=1, topics=None))
        assert [b.node_id for b in metadata.brokers] == [1], "a bogus registration counted as a broker"
        assert "hostile" not in {t.name for t in metadata.topics}
    finally:
        for path, old in originals.items():
            # Only what still holds our garbage: the broker rewrites some (leaders, the epoch) itself.
            if not zk.exists(path) or zk.get(path)[0] != written[path]:
                continue
            if old is None:
                zk.delete(path)
            else:
                zk.set(path, old)
    controller_works(cluster)
    wait_until(
        lambda: healthy.assignment() == {(TOPIC, p) for p in range(BROKER_PARTITIONS)},
        30,
        what="the healthy consumer's assignment",
    )
    assert broker.is_running(), broker.log_tail()

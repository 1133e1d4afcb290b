"""Our coordinator member takes the Java consumer's round trips, counted at the broker (its per-API
stats), with member processes: the leader assigns from cached metadata (no Metadata between its
JoinGroup and SyncGroup), a member commits before each rejoin and before LeaveGroup (auto-commit on,
the default), and a follower heartbeats while it awaits SyncGroup.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path
from typing import Any

from kafka.protocol.consumer.group import HeartbeatRequest

from bench.experiment.history import History
from bench.services.members import MemberProcess
from coordinator_mode.client.connection import BrokerAddress, KafkaClient, RequestStats
from coordinator_mode.client.rebalance import GroupRebalance
from group_api import Event, EventKind
from tests.conftest import running_brokers, wait_until

TOPIC = "orders"
PARTITIONS = 8


def spawn(history: History, log: Path, bootstrap: str, group: str, name: str, *extra: str) -> MemberProcess:
    return MemberProcess(
        [
            "member",
            "--mode",
            "coordinator",
            "--bootstrap",
            bootstrap,
            "--group",
            group,
            "--topic",
            TOPIC,
            "--name",
            name,
            "--session-timeout-ms",
            "10000",
            "--heartbeat-interval-ms",
            "500",
            *extra,
        ],
        history,
        log,
    )


def api_counts(cluster: Any, fresh: bool = False) -> dict[str, int]:
    stats = cluster.stats(fresh=fresh)[1] or {"apis": {}}
    return {api: c["requests"] for api, c in stats["apis"].items()}


def events(history: History, kind: EventKind, name: str) -> list[Event]:
    """The events of ``kind`` from the member started with ``--name name`` (its id is name-<uuid>)."""
    return [e for e in history.snapshot() if e.kind is kind and e.member.startswith(f"{name}-")]


def test_commit_before_rejoin_and_leave_and_no_metadata_in_the_leaders_round(
    zk_server, tmp_path: Path
) -> None:
    """a leads alone; b joins, then leaves. No periodic commits (a 10-minute interval), so every
    OffsetCommit the broker counts is one before a rejoin or a leave; every Metadata one a
    member's bootstrap."""
    with running_brokers(zk_server.connect_string, 1, tmp_path / "brokers", topics={TOPIC: PARTITIONS}) as c:
        # The launcher's readiness check asks each broker for Metadata: not a member's.
        launcher_metadata = api_counts(c, fresh=True).get("Metadata", 0)
        history = History()
        no_periodic = ("--option", "auto_commit_interval_ms=600000")
        procs = [spawn(history, tmp_path / "a.log", c.bootstrap, "rt", "a", *no_periodic)]
        try:
            wait_until(lambda: events(history, EventKind.ASSIGNED, "a"), 30, what="a assigned")
            procs.append(spawn(history, tmp_path / "b.log", c.bootstrap, "rt", "b", *no_periodic))
            # Three SyncGroups: a's in generation 1, a's and b's in generation 2. Each round's
            # Metadata and OffsetCommit were answered before its SyncGroup went out.
            counts = wait_until(
                lambda: (n := api_counts(c)).get("SyncGroup", 0) >= 3 and n, 60, what="generation 2 synced"
            )
            assert counts["Metadata"] - launcher_metadata == 2, (
                "one per member's bootstrap; none in the leader's round"
            )
            assert counts["OffsetCommit"] == 1, "a commits before it rejoins; b owned nothing"
            (leader_gen2,) = [e for e in events(history, EventKind.JOINED, "a") if e.generation == 2]
            (commit,) = events(history, EventKind.OFFSETS_COMMITTED, "a")
            assert commit.mono_ns < leader_gen2.extra["join_started_ns"], (
                "the commit came before the JoinGroup"
            )
            assert commit.generation == 1 and len(commit.extra["offsets"]) == PARTITIONS

            assert procs[1].terminate(30) == 0  # b commits, then LeaveGroup; a commits, rejoins
            counts = wait_until(
                lambda: (n := api_counts(c)).get("SyncGroup", 0) >= 4 and n.get("LeaveGroup") == 1 and n,
                60,
                what="generation 3 synced after b's leave",
            )
            assert counts["OffsetCommit"] == 3 and counts["Metadata"] - launcher_metadata == 2
            (b_commit,) = events(history, EventKind.OFFSETS_COMMITTED, "b")
            (b_left,) = events(history, EventKind.LEFT, "b")
            assert b_commit.mono_ns < b_left.mono_ns
        finally:
            for p in procs:
                p.close()


class FrameLog:
    """A TCP relay in front of the broker that parses the Kafka framing it forwards: which request
    (API key, correlation id, client id) went up, and which correlation ids' answers came down, in
    the order the relay saw them. Bytes pass unchanged."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[str, str, int, int]] = []  # (up|down, client id, api key, correlation id)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, sock=self.sock)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.sock.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        api_of: dict[int, tuple[str, int]] = {}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while True:
                    head = await src.readexactly(4)
                    body = await src.readexactly(struct.unpack(">i", head)[0])
                    if up:  # request header: api key, version, correlation id, client id
                        api, _, corr, n = struct.unpack(">hhih", body[:10])
                        client = body[10 : 10 + n].decode() if n > 0 else ""
                        api_of[corr] = (client, api)
                        self.seen.append(("up", client, api, corr))
                    else:
                        (corr,) = struct.unpack(">i", body[:4])
                        client, api = api_of.get(corr, ("", -1))
                        self.seen.append(("down", client, api, corr))
                    dst.write(head + body)
                    await dst.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def heartbeat_awaiting_sync(self, client_prefix: str) -> bool:
        """A Heartbeat from the client went up after its SyncGroup and before that SyncGroup's answer."""
        sync: int | None = None
        for direction, client, api, corr in list(self.seen):
            if not client.startswith(client_prefix):
                continue
            if direction == "up" and api == SYNC_GROUP:
                sync = corr
            elif direction == "down" and corr == sync:
                sync = None
            elif direction == "up" and api == HEARTBEAT and sync is not None:
                return True
        return False


HEARTBEAT, SYNC_GROUP = 12, 14


def test_a_follower_heartbeats_while_it_awaits_syncgroup(zk_server, tmp_path: Path) -> None:
    """A leader of our own (this test, on the wire, straight to the broker) holds its SyncGroup
    until the follower, a member process whose coordinator link runs through a frame-parsing relay,
    has sent a Heartbeat while its own SyncGroup awaits the answer (the broker answers it only
    after the SyncGroup, one request at a time per connection, as Kafka's does)."""
    relays: list[FrameLog] = []

    def through_the_relay(broker_id: int, port: int) -> int:
        relays.append(FrameLog(port))
        return relays[-1].port

    options = {"advertise": through_the_relay, "extra_args": ("--advertised-host", "127.0.0.1")}
    with running_brokers(
        zk_server.connect_string, 1, tmp_path / "brokers", topics={TOPIC: PARTITIONS}, **options
    ) as c:
        (relay,) = relays
        history = History()
        follower: list[MemberProcess] = []
        direct = BrokerAddress("127.0.0.1", c.broker(1).port, 1)

        async def lead() -> None:
            await relay.start()
            client = KafkaClient(c.bootstrap, client_id="leader", stats=RequestStats(), request_timeout=30)
            try:
                conn = await client.connection(direct)

                def round_(member_id: str) -> GroupRebalance:
                    return GroupRebalance(
                        conn,
                        client,
                        group="hb",
                        topics=(TOPIC,),
                        assignor="range",
                        member_id=member_id,
                        group_instance_id=None,
                        session_timeout_ms=30_000,  # it heartbeats only before its rejoin
                        rebalance_timeout_ms=60_000,
                        previous=None,
                        previous_generation=-1,
                        clock=time.monotonic,
                    )

                first = round_("")
                joined = await first.join()
                await first.sync(joined, await first.compute_assignment(joined))
                me = joined.generation.member_id
                follower.append(spawn(history, tmp_path / "f.log", c.bootstrap, "hb", "f"))
                # Heartbeat until the coordinator says the follower's join started a rebalance.
                while True:
                    beat = HeartbeatRequest(
                        group_id="hb", generation_id=1, member_id=me, group_instance_id=None
                    )
                    if (await conn.send(beat)).error_code != 0:
                        break
                    await asyncio.sleep(0.2)  # the heartbeat interval of this hand-made member
                second = round_(me)
                rejoined = await second.join()
                assert rejoined.generation.is_leader and len(rejoined.members) == 2
                await asyncio.to_thread(
                    wait_until,
                    lambda: relay.heartbeat_awaiting_sync("f-"),
                    20,
                    what="a Heartbeat from the follower awaiting its SyncGroup answer",
                )
                await second.sync(rejoined, await second.compute_assignment(rejoined))
                # The relay runs on this loop: keep it until the follower has its answer.
                assigned = await asyncio.to_thread(
                    wait_until,
                    lambda: [e for e in events(history, EventKind.ASSIGNED, "f") if e.generation == 2],
                    30,
                    what="the follower assigned in generation 2",
                )
                assert len(assigned[0].partitions or ()) == PARTITIONS // 2
            finally:
                client.close()
                relay.close()

        try:
            asyncio.run(lead())
        finally:
            for p in follower:
                p.close()

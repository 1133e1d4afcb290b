"""Bad input on the wire: every attempt gets an error response or a closed connection, never a hang
or a crash, and the broker keeps serving a healthy group (a real KafkaConsumer stays assigned).
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import HeartbeatRequest, JoinGroupRequest
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest

from bench.experiment.fuzz import TOPIC as FUZZ_TOPIC
from bench.experiment.fuzz import TOPIC_PARTITIONS as FUZZ_PARTITIONS
from bench.experiment.fuzz import advertised, format_report, run_fuzz
from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.protocol import API_VERSIONS
from tests.batches import batch, fetch, produce, values
from tests.conftest import running_brokers, wait_until
from tests.kp_consumer import ConsumerDied, PolledConsumer

TOPIC = "events"
PARTITIONS = 3
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
# Longer than the broker's longest legitimate wait (an empty Fetch parks up to 10 s).
READ_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        1,
        tmp_path_factory.mktemp("robust"),
        topics={TOPIC: PARTITIONS, FUZZ_TOPIC: FUZZ_PARTITIONS},
        offsets_partitions=5,
    ) as c:
        yield c


@pytest.fixture
def healthy_consumer(cluster: BrokerCluster) -> Iterator[PolledConsumer]:
    consumer = PolledConsumer(
        [TOPIC],
        bootstrap_servers=cluster.bootstrap,
        group_id=f"healthy-{uuid.uuid4().hex[:6]}",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        wait_until(lambda: assignment(consumer) == ALL, 30, what="the healthy consumer's assignment")
        yield consumer
    finally:
        consumer.close()


def assignment(consumer: PolledConsumer) -> set[tuple[str, int]]:
    return consumer.assignment()


def exchange(port: int, data: bytes, half_close: bool = True) -> tuple[str, bytes]:
    """Send ``data`` (then EOF); ("response", frame) for a complete answer, ("closed", b"") otherwise.

    A hang (no answer, no close within READ_TIMEOUT) fails the test.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return "closed", b""
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if len(received) >= 4 and len(received) >= 4 + struct.unpack(">i", received[:4])[0]:
                    return "response", received
        except ConnectionResetError:
            return "closed", b""
        except TimeoutError:
            pytest.fail(f"the broker neither answered nor closed within {READ_TIMEOUT}s for {data[:40]!r}")
        return "closed", b""


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def header(api_key: int, version: int, correlation_id: int = 7, client_id: bytes = b"fuzz") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def encoded(request: object, correlation_id: int = 9) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id="fuzz")  # type: ignore[attr-defined]
    return bytes(request.encode(header=True, framed=True))  # type: ignore[attr-defined]


def assert_alive(cluster: BrokerCluster, consumer: PolledConsumer | None) -> None:
    assert cluster.broker(1).is_running(), cluster.broker(1).log_tail()
    if consumer is not None:
        assert assignment(consumer) == ALL
    response = send_request(cluster.broker(1).address, ApiVersionsRequest(version=3))
    assert response.error_code == 0


def test_the_health_check_fails_once_the_consumer_stopped_polling(healthy_consumer: PolledConsumer) -> None:
    # A closed KafkaConsumer raises on its next poll(): the helper must not go on reporting ALL.
    healthy_consumer.call(lambda c: c.close())
    with pytest.raises(ConsumerDied, match="closed"):
        wait_until(lambda: assignment(healthy_consumer) != ALL, 10, what="the dead consumer to be noticed")


def test_absurd_frame_sizes_close_the_connection(
    cluster: BrokerCluster, healthy_consumer: PolledConsumer
) -> None:
    port = cluster.broker(1).port
    for size in (-1, -(2**31), 0, 1, 9, 2**31 - 1, 200 * 1024 * 1024):
        outcome, _ = exchange(port, struct.pack(">i", size) + b"\x00" * 16)
        assert outcome == "closed", size
    assert_alive(cluster, healthy_consumer)


def test_truncated_frames_close_the_connection(
    cluster: BrokerCluster, healthy_consumer: PolledConsumer
) -> None:
    port = cluster.broker(1).port
    full = encoded(
        JoinGroupRequest(
            version=5,
            group_id="x",
            session_timeout_ms=6000,
            rebalance_timeout_ms=6000,
            member_id="",
            group_instance_id=None,
            protocol_type="consumer",
            protocols=[],
        )
    )
    for cut in (1, 3, 4, 5, 12, len(full) // 2, len(full) - 1):
        outcome, _ = exchange(port, full[:cut])
        assert outcome == "closed", cut
    # A frame whose declared size is larger than its body is also truncated.
    body = header(ApiKey.Heartbeat, 0) + b"\x00\x01g"
    outcome, _ = exchange(port, struct.pack(">i", len(body) + 50) + body)
    assert outcome == "closed"
    assert_alive(cluster, healthy_consumer)


def test_unknown_api_keys_and_versions(cluster: BrokerCluster, healthy_consumer: PolledConsumer) -> None:
    port = cluster.broker(1).port
    cases = [
        (0, 2),  # Produce below v3: message formats before record batch v2
        (24, 0),  # AddPartitionsToTxn: transactions are not implemented
        (19, 5),  # CreateTopics
        (68, 0),  # ConsumerGroupHeartbeat (KIP-848)
        (500, 0),  # no such API
        (-1, 0),
        (int(ApiKey.Metadata), 99),  # known API, unsupported version
        (int(ApiKey.JoinGroup), -3),
        (int(ApiKey.Fetch), 0),  # below our minimum
    ]
    for api_key, version in cases:
        outcome, _ = exchange(port, frame(header(api_key, version) + b"\x00" * 8))
        assert outcome == "closed", (api_key, version)
    # ApiVersions of an unknown version gets Kafka's v0 UNSUPPORTED_VERSION answer instead.
    for version in (5, 99, -1):
        outcome, data = exchange(port, frame(header(ApiKey.ApiVersions, version, correlation_id=77)))
        assert outcome == "response"
        response = ApiVersionsResponse.decode(data[4:], version=0, header=True)
        assert response.header.correlation_id == 77 and response.error_code == 35
        assert {k.api_key for k in response.api_keys} == {int(k) for k in API_VERSIONS}
    assert_alive(cluster, healthy_consumer)


def test_garbage_bodies_for_supported_versions(
    cluster: BrokerCluster, healthy_consumer: PolledConsumer
) -> None:
    port = cluster.broker(1).port
    rng = random.Random(1234)
    answered = []
    for api_key, (low, high) in sorted(API_VERSIONS.items()):
        for version in {low, high}:
            for length in (0, 3, 40):
                body = bytes(rng.randrange(256) for _ in range(length))
                outcome, data = exchange(port, frame(header(api_key, version, correlation_id=5) + body))
                if outcome == "response":
                    assert struct.unpack(">i", data[4:8])[0] == 5  # an answer to this request
                    answered.append((api_key, version, length))
    # ApiVersions v0 has no body, so at least that one is answered and the check above ran.
    assert (ApiKey.ApiVersions, 0, 0) in answered, answered
    assert_alive(cluster, healthy_consumer)


def test_structured_fuzz_cases_leave_the_broker_and_a_healthy_group_untouched(cluster: BrokerCluster) -> None:
    """A thousand cases of ``rebalance-lab fuzz`` (every advertised API and version, schema-shaped
    values, the frame damaged in every way it knows) while its own healthy group of two kafka-python
    consumers runs: no crash, hang, foreign answer, failed valid request or rebalance."""
    report = run_fuzz(cluster, cases=1_000, seed_value=17)
    assert report.problems() == [], format_report(report)
    assert report.cases == 1_000
    assert report.not_fuzzed == [], "an advertised API has no schema to fuzz it with"
    fuzzed = {name.rsplit(" v", 1)[0] for name in report.apis}
    assert len(fuzzed) == len(advertised(cluster.broker(1).address)), sorted(fuzzed)
    # Both kinds of answer happened: valid cases were answered, broken ones closed.
    assert report.outcomes.get("closed", 0) > 0, report.outcomes
    assert report.outcomes.get("answer", 0) + report.outcomes.get("error_answer", 0) > 0, report.outcomes
    assert report.rss_kb_before and report.rss_kb_after
    assert_alive(cluster, None)
    print(format_report(report))  # the figures, with -s


def test_valid_requests_with_nonsense_values_get_error_responses(
    cluster: BrokerCluster, healthy_consumer: PolledConsumer
) -> None:
    address = cluster.broker(1).address
    hb = send_request(address, HeartbeatRequest(version=4, group_id="", generation_id=-7, member_id="?"))
    assert hb.error_code == 24  # INVALID_GROUP_ID
    join = send_request(
        address,
        JoinGroupRequest(
            version=9,
            group_id="weird",
            session_timeout_ms=-5,
            rebalance_timeout_ms=-5,
            member_id="",
            group_instance_id=None,
            protocol_type="consumer",
            protocols=[],
            reason=None,
        ),
    )
    assert join.error_code == 26  # INVALID_SESSION_TIMEOUT
    metadata = send_request(
        address,
        MetadataRequest(
            version=12, topics=[MetadataRequest.MetadataRequestTopic(name="nope", topic_id=None)]
        ),
    )
    assert metadata.topics[0].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert_alive(cluster, healthy_consumer)


def test_many_connections_dropped_midway(cluster: BrokerCluster, healthy_consumer: PolledConsumer) -> None:
    port = cluster.broker(1).port
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(struct.pack(">i", 100) + b"\x00\x03")  # a frame that never completes
            socks.append(s)
        assert_alive(cluster, healthy_consumer)
    finally:
        for s in socks:
            s.close()
    wait_until(
        lambda: (cluster.stats()[1] or {}).get("connections_open", 99) < 10, 10, what="connections to close"
    )
    assert_alive(cluster, healthy_consumer)


def listening_addresses(pid: int) -> set[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """The local (address, port) of the TCP sockets process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
            found.add((ipaddress.ip_address(words), int(port, 16)))
    return found


def loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (a JVM's 127.0.0.1)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def test_brokers_and_zookeeper_listen_on_loopback_only(
    cluster: BrokerCluster, zk_server: ZooKeeperEnsemble
) -> None:
    broker = cluster.broker(1)
    assert broker.pid is not None
    zk_pid = zk_server.servers[0].pid
    assert zk_pid is not None
    for pid, what in ((broker.pid, "the broker"), (zk_pid, "ZooKeeper")):
        addresses = listening_addresses(pid)
        assert addresses, f"{what} listens on nothing we could see"
        assert all(loopback(ip) for ip, _ in addresses), f"{what} listens on {addresses}"
    assert (ipaddress.ip_address("127.0.0.1"), broker.port) in listening_addresses(broker.pid)


def test_bad_produce_input_gets_kafka_error_codes_and_loses_nothing(
    cluster: BrokerCluster, healthy_consumer: PolledConsumer
) -> None:
    address = cluster.broker(1).address
    assert produce(address, TOPIC, 0, batch([b"before"])).error_code == 0
    good = batch([b"x"])
    corrupt = bytearray(good)
    corrupt[-2] ^= 0x55
    cases = [
        (TOPIC, 0, bytes(corrupt), 2),  # CORRUPT_MESSAGE: CRC32C mismatch
        (TOPIC, 0, good[:-5], 2),  # a torn batch
        (TOPIC, 0, good + b"\x00" * 7, 2),  # trailing bytes
        (TOPIC, 0, batch([b"z" * 1_100_000]), 10),  # MESSAGE_TOO_LARGE (message.max.bytes)
        (TOPIC, PARTITIONS, good, 3),  # UNKNOWN_TOPIC_OR_PARTITION
        ("nope", 0, good, 3),
    ]
    for topic, partition, data, code in cases:
        assert produce(address, topic, partition, data).error_code == code, (topic, partition, code)
    assert produce(address, TOPIC, 0, good, acks=2).error_code == 21  # INVALID_REQUIRED_ACKS
    # acks=0 with an error: no answer, the connection is closed (the producer learns it that way).
    outcome, _ = exchange(address_port(address), produce_frame(bytes(corrupt)), half_close=False)
    assert outcome == "closed"
    assert produce(address, TOPIC, 0, batch([b"after"])).error_code == 0
    stored = [v for _, v in values(fetch(address, TOPIC, 0, 0).records)]
    assert stored == [b"before", b"after"]  # none of the rejected batches was appended
    assert_alive(cluster, healthy_consumer)


def address_port(address: str) -> int:
    return int(address.rpartition(":")[2])


def produce_frame(records: bytes, acks: int = 0) -> bytes:
    from kafka.protocol.producer import ProduceRequest

    pcls = ProduceRequest.TopicProduceData.PartitionProduceData
    request = ProduceRequest(
        version=9,
        transactional_id=None,
        acks=acks,
        timeout_ms=1000,
        topic_data=[
            ProduceRequest.TopicProduceData(name=TOPIC, partition_data=[pcls(index=1, records=records)])
        ],
    )
    return encoded(request)


def test_mutated_produce_and_fetch_requests(cluster: BrokerCluster, healthy_consumer: PolledConsumer) -> None:
    """Seeded bit flips in valid Produce and Fetch requests: each gets an answer for this request or
    a closed connection, and the log keeps only valid batches."""
    port = cluster.broker(1).port
    rng = random.Random(77)
    frames = [produce_frame(batch([b"fuzz-%d" % i for i in range(3)]), acks=1) for _ in range(2)]
    for _ in range(120):
        data = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(
                18, len(data)
            )  # past the header (size, key, version, correlation id, client id)
            data[i] = rng.randrange(256)
        outcome, answer = exchange(port, bytes(data))
        if outcome == "response":
            assert struct.unpack(">i", answer[4:8])[0] == 9  # our correlation id
    address = cluster.broker(1).address
    for partition in range(PARTITIONS):
        for offset in (-5, 0, 2**40):
            answer = fetch(address, TOPIC, partition, offset)
            assert answer.error_code in (0, 1)  # records or OFFSET_OUT_OF_RANGE
    # Whatever was appended reads back as valid batches with consecutive offsets.
    got = values(fetch(address, TOPIC, 1, 0).records)
    assert [o for o, _ in got] == list(range(len(got)))
    assert_alive(cluster, healthy_consumer)

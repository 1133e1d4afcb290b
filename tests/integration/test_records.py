"""The data plane on our brokers: real producers and consumers with their default settings, the
idempotent producer's retries, ListOffsets, long-polling Fetch, and a follower refusing Produce."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.protocol.consumer import ListOffsetsRequest
from kafka.protocol.producer import InitProducerIdRequest

from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from tests.batches import batch, fetch, produce, values
from tests.conftest import running_brokers, wait_until

TOPIC = "records"
PARTITIONS = 4
RECORDS_PER_PRODUCER = 600


@pytest.fixture(scope="module")
def cluster(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(
        zk_server.connect_string,
        2,
        tmp_path_factory.mktemp("records"),
        topics={TOPIC: PARTITIONS, "stamped": 1, "retried": 1, "polled": 1},
        offsets_partitions=3,
    ) as c:
        yield c


def leader_address(cluster: BrokerCluster, topic: str, partition: int) -> str:
    state = wait_until(
        lambda: cluster.view().leader(topic, partition), 20, what=f"a leader of {topic}-{partition}"
    )
    return cluster.broker(state.leader).address


class ConsumerThread:
    """A real consumer polling in its own thread; it records every (partition, offset, value) it gets."""

    def __init__(self, kind: str, bootstrap: str, group: str) -> None:
        self.kind = kind
        self.seen: list[tuple[int, int, bytes]] = []
        self.assigned: frozenset[int] = frozenset()
        # Every assigned partition has a position: with the default auto.offset.reset (latest) a
        # record produced before that would be skipped, by design.
        self.positioned = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._bootstrap, self._group = bootstrap, group
        self._thread = threading.Thread(target=self._run, name=kind, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.kind == "kafka-python":
                self._run_kafka_python()
            else:
                self._run_librdkafka()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run_kafka_python(self) -> None:
        consumer = KafkaConsumer(TOPIC, bootstrap_servers=self._bootstrap, group_id=self._group)
        try:
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=200).items():
                    self.seen.extend((tp.partition, r.offset, r.value) for r in records)
                assignment = consumer.assignment()
                self.positioned = bool(assignment) and all(consumer.position(tp) >= 0 for tp in assignment)
                self.assigned = frozenset(tp.partition for tp in assignment)
        finally:
            consumer.close()

    def _run_librdkafka(self) -> None:
        # The one setting changed: librdkafka reports no position before its first record, so the
        # test cannot tell when a latest (the default) reset happened; earliest makes it irrelevant.
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": self._bootstrap, "group.id": self._group, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([TOPIC])
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    self.seen.append((message.partition(), message.offset(), message.value()))
                assignment = consumer.assignment()
                self.positioned = bool(assignment)
                self.assigned = frozenset(tp.partition for tp in assignment)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_real_producers_and_consumers_with_default_settings(cluster: BrokerCluster) -> None:
    group = f"real-{uuid.uuid4().hex[:6]}"
    consumers = [ConsumerThread(kind, cluster.bootstrap, group) for kind in ("kafka-python", "librdkafka")]
    try:

        def settled() -> bool:
            for c in consumers:
                assert c.error is None, c.error
            owned = [c.assigned for c in consumers]
            return (
                all(owned)
                and set().union(*owned) == set(range(PARTITIONS))
                and sum(map(len, owned)) == PARTITIONS
                and all(c.positioned for c in consumers)
            )

        wait_until(settled, 60, what="both consumers assigned, together every partition once")
        produced: set[bytes] = set()
        kp = KafkaProducer(bootstrap_servers=cluster.bootstrap)  # idempotent by default in kafka-python 3
        try:
            futures = []
            for i in range(RECORDS_PER_PRODUCER):
                value = b"kp-%d" % i
                futures.append(kp.send(TOPIC, key=b"%d" % (i % 17), value=value))
                produced.add(value)
            kp.flush(30)
            assert all(f.get(timeout=10).offset >= 0 for f in futures)
        finally:
            kp.close()
        ck = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap})
        delivered: list[Any] = []
        for i in range(RECORDS_PER_PRODUCER):
            value = b"ck-%d" % i
            ck.produce(
                TOPIC, key=b"%d" % (i % 13), value=value, on_delivery=lambda err, _m: delivered.append(err)
            )
            produced.add(value)
        assert ck.flush(30) == 0
        assert delivered == [None] * RECORDS_PER_PRODUCER

        def consumed() -> bool:
            return sum(len(c.seen) for c in consumers) >= len(produced)

        wait_until(consumed, 60, what="every produced record consumed")
        seen = [v for c in consumers for _, _, v in c.seen]
        assert sorted(seen) == sorted(produced)  # each once, none lost
        assert all(c.seen for c in consumers)  # both kinds consumed a share
    finally:
        for c in consumers:
            c.stop()
    # The kafka-python producer's batches carry its producer id (idempotence was on).
    stored = [values_with_pid(leader_address(cluster, TOPIC, p), p) for p in range(PARTITIONS)]
    assert any(pid >= 0 for pids in stored for pid in pids)


def values_with_pid(address: str, partition: int) -> set[int]:
    from kafka.record.default_records import DefaultRecordBatch

    records = fetch(address, TOPIC, partition, 0).records
    pids, pos = set(), 0
    while pos + 12 <= len(records):
        size = int.from_bytes(records[pos + 8 : pos + 12], "big") + 12
        pids.add(DefaultRecordBatch(records[pos : pos + size]).producer_id)
        pos += size
    return pids


def test_idempotent_retries_are_not_appended_twice(cluster: BrokerCluster) -> None:
    address = leader_address(cluster, "retried", 0)
    init = send_request(
        address,
        InitProducerIdRequest(
            version=4, transactional_id=None, transaction_timeout_ms=60_000, producer_id=-1, producer_epoch=-1
        ),
    )
    assert init.error_code == 0 and init.producer_id >= 0
    pid = init.producer_id
    first = produce(address, "retried", 0, batch([b"a", b"b"], pid, 0, 0))
    retry = produce(address, "retried", 0, batch([b"a", b"b"], pid, 0, 0))
    assert first.error_code == 0 and retry.error_code == 0
    assert retry.base_offset == first.base_offset  # the retry is answered with the original offset
    gap = produce(address, "retried", 0, batch([b"c"], pid, 0, 5))
    assert gap.error_code == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(address, "retried", 0, batch([b"c"], pid, 0, 2)).error_code == 0
    assert produce(address, "retried", 0, batch([b"d"], pid, 1, 0)).error_code == 0  # a new epoch
    assert produce(address, "retried", 0, batch([b"e"], pid, 0, 3)).error_code == 47  # INVALID_PRODUCER_EPOCH
    got = values(fetch(address, "retried", 0, 0).records)
    assert [v for _, v in got] == [b"a", b"b", b"c", b"d"]
    assert [o for o, _ in got] == [0, 1, 2, 3]


def list_offset(address: str, topic: str, timestamp: int) -> tuple[int, int, int]:
    tcls = ListOffsetsRequest.ListOffsetsTopic
    request = ListOffsetsRequest(
        version=7,
        replica_id=-1,
        isolation_level=0,
        topics=[
            tcls(
                name=topic,
                partitions=[
                    tcls.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=timestamp)
                ],
            )
        ],
    )
    p = send_request(address, request).topics[0].partitions[0]
    return p.error_code, p.offset, p.timestamp


def test_list_offsets_earliest_latest_and_by_timestamp(cluster: BrokerCluster) -> None:
    address = leader_address(cluster, "stamped", 0)
    assert list_offset(address, "stamped", -1) == (0, 0, -1)
    for ts in (1_000, 2_000, 3_000):
        assert produce(address, "stamped", 0, batch([b"x", b"y"], timestamp_ms=ts)).error_code == 0
    assert list_offset(address, "stamped", -2)[:2] == (0, 0)
    assert list_offset(address, "stamped", -1)[:2] == (0, 6)
    assert list_offset(address, "stamped", 1_500) == (0, 2, 2_000)
    assert list_offset(address, "stamped", 3_000) == (0, 4, 3_000)
    assert list_offset(address, "stamped", 9_000) == (0, -1, -1)
    assert list_offset(address, "stamped", -3) == (0, 4, 3_000)  # the first record of the latest time


def test_a_waiting_fetch_returns_when_records_arrive(cluster: BrokerCluster) -> None:
    address = leader_address(cluster, "polled", 0)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(fetch, address, "polled", 0, 0, 9_000)
        time.sleep(0.3)  # let the fetch park; if it has not yet, it finds the record at once
        assert produce(address, "polled", 0, batch([b"late"])).error_code == 0
        answer = waiting.result(20)
    assert answer.error_code == 0 and answer.high_watermark == 1
    assert values(answer.records) == [(0, b"late")]
    assert fetch(address, "polled", 0, 5).error_code == 1  # OFFSET_OUT_OF_RANGE past the end


def test_a_broker_that_does_not_lead_refuses_produce_and_fetch(cluster: BrokerCluster) -> None:
    state = wait_until(lambda: cluster.view().leader(TOPIC, 0), 20, what="a leader")
    other = next(b for b in cluster.brokers if b.id != state.leader)
    assert produce(other.address, TOPIC, 0, batch([b"lost?"])).error_code == 6  # NOT_LEADER_OR_FOLLOWER
    assert fetch(other.address, TOPIC, 0, 0).error_code == 6
    assert produce(other.address, TOPIC, 99, batch([b"x"])).error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION

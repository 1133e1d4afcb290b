"""A zk-mode member's records: fetched from the partition leaders, as Kafka 0.8's consumer did.

Kafka 0.8's ``ZookeeperConsumerConnector`` found the brokers in ZooKeeper (``/brokers/ids``, read by
``ZkUtils.getAllBrokersInCluster``), asked one of them for Metadata to learn each partition's leader
(``ConsumerFetcherManager.LeaderFinderThread`` → ``ClientUtils.fetchTopicMetadata``), and ran fetcher
threads that filled the member's queues from the positions it owned. Here the brokers come from
ZooKeeper the same way and kafka-python's ``KafkaConsumer``, with manually assigned partitions and
no group (it coordinates nothing: ``group_id=None``, no commits), does the Metadata and Fetch
requests against the same brokers coordinator-mode members read: both designs read records the same
way and differ only in how the group is coordinated.

The member's worker owns the group state; this thread only fetches, processes (``processing_ms`` per
record) and advances the positions of what the member told it it owns (:meth:`RecordsFetcher.assign`).
The member calls :meth:`RecordsFetcher.stop_partitions` before it commits partitions it gives up: from
then on nothing fetched for them counts (a token per partition, bumped there), so the commit holds
every record processed and a revoked partition stops at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from group_api.consumption import ConsumeSettings, produce_time_ms
from group_api.events import TopicPartition

log = logging.getLogger(__name__)

#: Where the brokers register (their ``zk_root``), unless ``options.brokers_zk_root`` says otherwise.
DEFAULT_BROKERS_ZK_ROOT = "/kafka"


def brokers_from_zookeeper(client: KazooClient, root: str) -> str:
    """``host:port,...`` of the brokers registered under ``root`` (0.8's ``getAllBrokersInCluster``)."""
    addresses = []
    try:
        ids = client.get_children(f"{root.rstrip('/')}/brokers/ids")
    except NoNodeError:
        ids = []
    for broker_id in sorted(ids):
        try:
            raw, _ = client.get(f"{root.rstrip('/')}/brokers/ids/{broker_id}")
            info = json.loads(raw)
            addresses.append(f"{info['host']}:{int(info['port'])}")
        except (NoNodeError, ValueError, KeyError, TypeError):
            continue  # gone meanwhile, or not a registration we can read
    return ",".join(addresses)


@dataclass(frozen=True)
class FetchedRecords:
    """One partition's records of one poll, processed together."""

    tp: TopicPartition
    offsets: tuple[int, ...]
    produce_ms: tuple[int, ...]

    @property
    def next_offset(self) -> int:
        return self.offsets[-1] + 1


class RecordsFetcher:
    """The fetch-and-process thread of one zk-mode member (see the module)."""

    def __init__(
        self,
        member_id: str,
        bootstrap: Callable[[], str],
        settings: ConsumeSettings,
        on_consumed: Callable[[FetchedRecords], None],
    ) -> None:
        self.member_id = member_id
        self.bootstrap = bootstrap
        self.settings = settings
        self.on_consumed = on_consumed
        self._lock = threading.Lock()
        self._positions: dict[TopicPartition, int | None] = {}  # owned -> position (None: reset)
        self._tokens: dict[TopicPartition, int] = {}
        self._seek: set[TopicPartition] = set()  # positions the consumer must be moved to
        self._stopped: set[TopicPartition] = set()  # given up: positions kept for the last commit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"records-{member_id}", daemon=True)

    # -- the member's side (its worker thread) ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def assign(self, positions: dict[TopicPartition, int]) -> None:
        """Start fetching these newly owned partitions at these positions (-1: ``auto_offset_reset``)."""
        with self._lock:
            for tp, offset in positions.items():
                self._positions[tp] = offset if offset >= 0 else None
                self._tokens[tp] = self._tokens.get(tp, 0) + 1
                self._seek.add(tp)
                self._stopped.discard(tp)

    def stop_partitions(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop at once: nothing fetched or being processed for ``partitions`` counts any more; their
        positions stay readable for the commit that follows."""
        with self._lock:
            for tp in partitions:
                self._stopped.add(tp)
                self._tokens[tp] = self._tokens.get(tp, 0) + 1

    def positions(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The positions reached (what a commit writes)."""
        with self._lock:
            return {tp: p for tp in partitions if (p := self._positions.get(tp)) is not None}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the fetch thread -------------------------------------------------------------------------

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            while not self._stop.is_set():
                if consumer is None:
                    servers = self.bootstrap()
                    if not servers:
                        self._stop.wait(1.0)  # no broker registered yet
                        continue
                    consumer = KafkaConsumer(
                        bootstrap_servers=servers,
                        client_id=self.member_id,
                        group_id=None,
                        enable_auto_commit=False,
                        auto_offset_reset=self.settings.auto_offset_reset,
                    )
                self._round(consumer)
        except Exception:
            log.exception("%s: records thread failed", self.member_id)
        finally:
            if consumer is not None:
                consumer.close()

    def _round(self, consumer: KafkaConsumer) -> None:
        with self._lock:
            owned = {tp: p for tp, p in self._positions.items() if tp not in self._stopped}
            tokens = dict(self._tokens)
            seek, self._seek = self._seek & set(owned), set()
        wanted = {KafkaTopicPartition(t, p) for t, p in owned}
        if wanted != consumer.assignment():
            consumer.assign(sorted(wanted))
            seek = set(owned)  # assign() forgets every position: set them all again
        if not wanted:
            self._stop.wait(0.1)
            return
        for tp in seek:
            position = owned[tp]
            ktp = KafkaTopicPartition(*tp)
            if position is None:
                if self.settings.auto_offset_reset == "earliest":
                    consumer.seek_to_beginning(ktp)
                else:
                    consumer.seek_to_end(ktp)
            else:
                consumer.seek(ktp, position)
        polled = consumer.poll(timeout_ms=200)
        for ktp, records in polled.items():
            tp = (ktp.topic, ktp.partition)
            batch = FetchedRecords(
                tp,
                tuple(r.offset for r in records),
                tuple(ms for r in records if (ms := produce_time_ms(r.value)) is not None),
            )
            if not batch.offsets or tp not in tokens:
                continue
            if self.settings.processing_ms:
                time.sleep(self.settings.processing_ms * len(batch.offsets) / 1000)
            with self._lock:
                if self._tokens.get(tp) != tokens[tp] or tp in self._stopped:
                    continue  # given up meanwhile: not processed here
                self.on_consumed(batch)  # the event, before the position moves past it
                self._positions[tp] = batch.next_offset

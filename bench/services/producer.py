"""The harness's producer: records at a steady rate into a topic, each carrying its sequence number
and produce time (:func:`group_api.consumption.payload`), so members' ``consumed`` events can be
matched to what was produced and end-to-end latency read from the history.

It is kafka-python's ``KafkaProducer`` with its default settings (idempotent, acks=all, retries),
run in a thread of its own; the rate is kept by sending each record at its due time
(``start + seq / rate_per_s``), so a slow moment is caught up rather than lost. Every
acknowledgement is kept: :meth:`Producer.acked` is what the checker calls produced (partition ->
offsets), the records that must be consumed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from group_api.config import ConfigError
from group_api.consumption import payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProduceWorkload:
    """A scenario's ``produce:`` for one topic."""

    topic: str
    rate_per_s: float
    record_bytes: int = 100
    keys: int = 0  # distinct keys (0: no key, the producer spreads records over partitions)
    records: int | None = None  # stop after this many (None: until stopped)

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ConfigError(f"produce.rate_per_s: expected a positive number, got {self.rate_per_s!r}")
        if not isinstance(self.record_bytes, int) or not 16 <= self.record_bytes <= 1_000_000:
            raise ConfigError(f"produce.record_bytes: expected 16-1000000, got {self.record_bytes!r}")
        if not isinstance(self.keys, int) or self.keys < 0:
            raise ConfigError(f"produce.keys: expected a number of keys >= 0, got {self.keys!r}")
        if self.records is not None and (not isinstance(self.records, int) or self.records <= 0):
            raise ConfigError(f"produce.records: expected a positive integer, got {self.records!r}")


class Producer:
    """One workload's producer thread (see the module)."""

    def __init__(self, bootstrap: str, workload: ProduceWorkload, **producer_config: Any) -> None:
        self.workload = workload
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, **producer_config)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._acked: dict[int, list[int]] = {}
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=f"producer-{workload.topic}", daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def _on_ack(self, metadata: Any) -> None:
        with self._lock:
            self._acked.setdefault(metadata.partition, []).append(metadata.offset)

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
        log.warning("produce to %s failed: %s", self.workload.topic, exc)

    def _run(self) -> None:
        w = self.workload
        start = time.monotonic()
        seq = 0
        while not self._stop.is_set() and (w.records is None or seq < w.records):
            due = start + seq / w.rate_per_s
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            key = None if not w.keys else b"k%d" % (seq % w.keys)
            value = payload(seq, int(time.time() * 1000), w.record_bytes)
            future = self._producer.send(w.topic, key=key, value=value)
            future.add_callback(self._on_ack)
            future.add_errback(self._on_error)
            seq += 1
            self.sent = seq
        self._producer.flush(30)

    @property
    def done(self) -> bool:
        """Started and finished (its record count reached, or stopped)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def acked(self) -> dict[int, list[int]]:
        """The offsets acknowledged so far, per partition."""
        with self._lock:
            return {p: sorted(offsets) for p, offsets in self._acked.items()}

    def acked_count(self) -> int:
        with self._lock:
            return sum(len(o) for o in self._acked.values())

    def stop(self) -> None:
        """Stop sending, flush what was sent, close."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(60)
        self._producer.close(timeout=10)

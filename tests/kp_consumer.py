"""A kafka-python ``KafkaConsumer`` polled on its own thread, for tests against our brokers.

Why a thread and long polls: kafka-python 3.0.12 never applies a rejoin whose JoinGroup is still
parked at the coordinator when ``poll(timeout_ms)`` gives up. A leader rejoins by itself right
after its first assignment (its metadata snapshot changes from empty to the topic's partitions); if
other members are in the group that JoinGroup waits for them, ``need_rejoin()`` is already False on
the next ``poll()``, and the consumer stays half-joined with its heartbeat disabled. Polling
continuously with a timeout longer than a rebalance avoids that; polling several consumers in turn
from one thread does not.

``KafkaConsumer`` is not thread-safe, so everything that touches it runs on the polling thread:
:meth:`call` queues a function and waits for its result.

If ``poll()`` raises, the thread records the error and stops; :meth:`assignment` then raises
:class:`ConsumerDied`, so a "still assigned" check can never pass on a consumer that stopped polling.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from kafka import KafkaConsumer

T = TypeVar("T")

POLL_MS = 2_000  # longer than a rebalance with 1 s heartbeats


class ConsumerDied(RuntimeError):
    """The polling thread stopped: ``poll()`` raised (the cause) or the thread ended on its own."""


class PolledConsumer:
    def __init__(self, topics: list[str], **config: Any) -> None:
        self._consumer = KafkaConsumer(**config)
        self._consumer.subscribe(topics)
        self._calls: queue.Queue[tuple[Callable[[KafkaConsumer], Any], Future[Any]]] = queue.Queue()
        self._assignment: frozenset[tuple[str, int]] = frozenset()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kafka-python-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._calls.empty():
                fn, future = self._calls.get_nowait()
                try:
                    future.set_result(fn(self._consumer))
                except BaseException as exc:  # handed to the caller
                    future.set_exception(exc)
            try:
                self._consumer.poll(timeout_ms=POLL_MS if self._calls.empty() else 0)
                self._assignment = frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())
            except BaseException as exc:  # kept for assignment() to raise in the test's thread
                self._error = exc
                return

    def assignment(self) -> set[tuple[str, int]]:
        """The set the last poll saw; raises :class:`ConsumerDied` once polling has stopped."""
        if self._error is not None:
            raise ConsumerDied(f"poll() raised {self._error!r}") from self._error
        if not self._thread.is_alive():
            raise ConsumerDied("the polling thread is not running")
        return set(self._assignment)

    def call(self, fn: Callable[[KafkaConsumer], T], timeout: float = 30.0) -> T:
        """Run ``fn(consumer)`` on the polling thread (after the current poll returns)."""
        future: Future[T] = Future()
        self._calls.put((fn, future))
        return future.result(timeout)

    def close(self) -> None:
        """Stop polling and close the consumer (a dynamic member sends LeaveGroup). Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(POLL_MS / 1000 + 30)
        self._consumer.close()

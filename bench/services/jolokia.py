"""Reading a real Kafka broker's counters over the Jolokia JVM agent the launcher attaches.

One bulk ``read`` (HTTP POST of a JSON list, plain ``urllib``) per broker and sample; the answer is
turned into the per-API counters our own brokers write to ``broker_stats.json`` (``requests``,
``bytes_in``, ``bytes_out``), so ``broker_load.csv`` has the same rows for every target:

=========================  ======================================================================
row ``api``                from (Kafka's JMX names; every value a cumulative ``Count``)
=========================  ======================================================================
``JoinGroup``, ...         ``kafka.network:type=RequestMetrics,name=RequestsPerSec,request=X,version=V``
                           summed over versions (``requests``); ``bytes_in`` is the sum of
                           ``name=RequestBytes,request=X`` (its ``Count`` x ``Mean``: the histogram's
                           exact sum). Kafka counts no response bytes per API: ``bytes_out`` stays 0.
                           ``Fetch`` is every fetch; Kafka splits it again into ``FetchConsumer``
                           and ``FetchFollower`` (replication), kept as rows of their own.
``append:__consumer_offsets``  ``kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec`` (records
                           appended, as ``requests``) and ``BytesInPerSec`` (``bytes_in``) of
                           ``topic=__consumer_offsets``: what the group coordinator wrote as leader
``replication``            ``BrokerTopicMetrics`` ``ReplicationBytesInPerSec`` / ``ReplicationBytesOutPerSec``
                           (``bytes_in`` / ``bytes_out``)
``log_flush``              ``kafka.log:type=LogFlushStats,name=LogFlushRateAndTimeMs`` (flushes, as ``requests``)
=========================  ======================================================================

A meter or histogram that has not been touched yet does not exist in JMX: its row is absent (zero).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

OFFSETS_ROW = "append:__consumer_offsets"
REPLICATION_ROW = "replication"
FLUSH_ROW = "log_flush"

_TOPIC_METRICS = "kafka.server:type=BrokerTopicMetrics,name={},topic=__consumer_offsets"
#: The bulk read: (what it fills, Jolokia request)
_READS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("requests", {"mbean": "kafka.network:type=RequestMetrics,name=RequestsPerSec,*", "attribute": "Count"}),
    (
        "request_bytes",
        {"mbean": "kafka.network:type=RequestMetrics,name=RequestBytes,*", "attribute": ["Count", "Mean"]},
    ),
    ("offsets_records", {"mbean": _TOPIC_METRICS.format("MessagesInPerSec"), "attribute": "Count"}),
    ("offsets_bytes", {"mbean": _TOPIC_METRICS.format("BytesInPerSec"), "attribute": "Count"}),
    (
        "replication_in",
        {"mbean": "kafka.server:type=BrokerTopicMetrics,name=ReplicationBytesInPerSec", "attribute": "Count"},
    ),
    (
        "replication_out",
        {
            "mbean": "kafka.server:type=BrokerTopicMetrics,name=ReplicationBytesOutPerSec",
            "attribute": "Count",
        },
    ),
    ("flushes", {"mbean": "kafka.log:type=LogFlushStats,name=LogFlushRateAndTimeMs", "attribute": "Count"}),
)
_NOT_FOUND = 404  # Jolokia's status for an MBean that does not exist (yet)


class JolokiaUnavailable(RuntimeError):
    """The agent did not answer, or answered something that is not a Jolokia response."""


def _post(url: str, body: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:  # URLError is an OSError
        raise JolokiaUnavailable(f"{url}: {exc}") from exc
    if not isinstance(answer, list) or len(answer) != len(body):
        raise JolokiaUnavailable(f"{url}: expected {len(body)} answers, got {str(answer)[:200]}")
    return answer


def _key_property(object_name: str, key: str) -> str | None:
    """``request`` of ``kafka.network:name=RequestsPerSec,request=JoinGroup,...``."""
    for part in object_name.partition(":")[2].split(","):
        name, _, value = part.partition("=")
        if name == key:
            return value
    return None


def read_counters(url: str, timeout: float = 2.0) -> dict[str, dict[str, int]]:
    """The broker's counters as ``{row: {"requests": n, "bytes_in": n, "bytes_out": n}}`` (see the
    module docstring); :class:`JolokiaUnavailable` when the agent does not answer."""
    answers = _post(url, [{"type": "read", **req} for _, req in _READS], timeout)
    values: dict[str, Any] = {}
    for (what, req), answer in zip(_READS, answers, strict=True):
        status = answer.get("status")
        if status == _NOT_FOUND:
            continue
        if status != 200:
            raise JolokiaUnavailable(f"{url}: read of {req['mbean']}: {answer.get('error', answer)}")
        values[what] = answer["value"]

    rows: dict[str, dict[str, int]] = {}

    def add(row: str, key: str, amount: float) -> None:
        counters = rows.setdefault(row, {"requests": 0, "bytes_in": 0, "bytes_out": 0})
        counters[key] += round(amount)

    for name, attrs in values.get("requests", {}).items():
        if (api := _key_property(name, "request")) is not None:
            add(api, "requests", attrs["Count"])
    for name, attrs in values.get("request_bytes", {}).items():
        if (api := _key_property(name, "request")) is not None:
            add(api, "bytes_in", attrs["Count"] * attrs["Mean"])
    if "offsets_records" in values:
        add(OFFSETS_ROW, "requests", values["offsets_records"])
    if "offsets_bytes" in values:
        add(OFFSETS_ROW, "bytes_in", values["offsets_bytes"])
    if "replication_in" in values:
        add(REPLICATION_ROW, "bytes_in", values["replication_in"])
    if "replication_out" in values:
        add(REPLICATION_ROW, "bytes_out", values["replication_out"])
    if "flushes" in values:
        add(FLUSH_ROW, "requests", values["flushes"])
    # Kafka registers a meter for every API up front; untouched ones add nothing to any table.
    return {row: counters for row, counters in rows.items() if any(counters.values())}

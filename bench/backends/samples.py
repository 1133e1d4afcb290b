"""The ``samples.jsonl`` records, the same from every backend: a ZooKeeper server's ``mntr`` and a
broker's counters (ours from ``broker_stats.json``, per API and per partition of ``__consumer_offsets``;
real Kafka's over Jolokia)."""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.services.jolokia import JolokiaUnavailable, read_counters
from bench.services.mntr import MntrUnavailable, read_mntr

log = logging.getLogger(__name__)


def zk_sample(host: str, port: int) -> dict[str, Any] | None:
    """One ``mntr`` reading of one server as a ``samples.jsonl`` record; None if it does not answer."""
    try:
        m = read_mntr(host, port, timeout=2.0)
    except (OSError, MntrUnavailable) as exc:
        log.debug("no mntr from %s:%d: %s", host, port, exc)
        return None
    return {
        "source": "zk",
        "server": m.server,
        "mono_ns": m.mono_ns,
        "values": m.values,
        "answer_bytes": m.answer_bytes,
    }


def broker_sample(broker_id: int, stats: dict[str, Any], mono_ns: int, wall: float) -> dict[str, Any]:
    """A broker's ``broker_stats.json`` as a ``samples.jsonl`` record, read at ``mono_ns`` / ``wall``.

    Brokers rewrite their counters about once a second: the sample is dated by when the broker wrote
    it, on our monotonic clock.
    """
    written = mono_ns - int(max(0.0, wall - float(stats.get("time", wall))) * 1e9)
    info = {
        k: v
        for k, v in stats.items()
        if k
        not in (
            "apis",
            "partitions",
            "offsets_partitions_led",
            "offsets_partitions_loading",
            "offsets_partitions_following",
        )
    }
    return {
        "source": "broker",
        "broker": broker_id,
        "mono_ns": written,
        "stats": stats.get("apis", {}),
        # Per offsets partition: records and bytes appended, fsyncs, replica fetches (coordinator/stats.py).
        "partitions": stats.get("partitions", {}),
        "info": info,
    }


def jolokia_sample(broker_id: int, url: str) -> dict[str, Any] | None:
    """A real Kafka broker's counters, read over Jolokia now, as a ``samples.jsonl`` record; None if
    its agent does not answer (the broker is down)."""
    mono = time.monotonic_ns()
    try:
        stats = read_counters(url)
    except JolokiaUnavailable as exc:
        log.debug("no Jolokia reading from broker %d: %s", broker_id, exc)
        return None
    # Dated halfway through the read: the agent answers from one moment inside it.
    mono = (mono + time.monotonic_ns()) // 2
    return {
        "source": "broker",
        "broker": broker_id,
        "mono_ns": mono,
        "stats": stats,
        "info": {"via": "jolokia"},
    }

"""The topic catalog: which topics exist and how many partitions each has.

It lives under zk_mode's root as ``<root>/topics/<name>`` with JSON ``{"partitions": N}``, the way
Kafka 0.8 kept ``/brokers/topics/<name>``. ``rebalance-lab cluster up --topic NAME:N`` writes it;
members read it when they compute or check an assignment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from group_api import ConfigError

from .pipeline import gather, value

log = logging.getLogger(__name__)


def topics_path(root: str) -> str:
    return f"{root.rstrip('/')}/topics"


def write_topics(client: KazooClient, root: str, topics: Mapping[str, int]) -> None:
    """Create or update catalog entries (idempotent)."""
    base = topics_path(root)
    client.ensure_path(base)
    for name, partitions in topics.items():
        if partitions < 1:
            raise ConfigError(f"topic {name!r}: expected at least 1 partition, got {partitions}")
        data = json.dumps({"partitions": int(partitions)}).encode()
        try:
            client.create(f"{base}/{name}", data)
        except NodeExistsError:
            client.set(f"{base}/{name}", data)


def read_topics(client: KazooClient, root: str, names: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Partition counts of ``names``, read pipelined (one round trip for all)."""
    paths = [f"{topics_path(root)}/{name}" for name in names]
    answers = gather(client.get_async(path) for path in paths)
    return {
        name: _partitions(name, path, answer, root)
        for name, path, answer in zip(names, paths, answers, strict=True)
    }


def _partitions(name: str, path: str, answer: object, root: str) -> int:
    if isinstance(answer, NoNodeError):
        raise ConfigError(f"topic {name!r} is not in the catalog at {topics_path(root)}")
    raw, _ = value(answer)
    try:
        partitions = json.loads(raw)["partitions"]
        # Strictly a positive JSON integer: int() would take "5", 2.7 or true.
        if type(partitions) is not int or partitions < 1:
            raise ValueError(f"partitions must be a positive integer, got {partitions!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"catalog entry {path} is not valid ({raw[:80]!r}): {exc}") from None
    return partitions

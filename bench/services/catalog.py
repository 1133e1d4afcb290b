"""Topic provisioning: the two catalogs a run's topics must be in before any member starts.

zk mode reads its topics from ``<zk_root>/topics`` (:func:`zk_mode.catalog.write_topics`); the brokers
read theirs from their own root, as Kafka before KRaft keeps ``/brokers/topics``
(:func:`coordinator_mode.broker.controller.create_topics`). Opening a ZooKeeper client and writing either or
both is written here once, for the cluster CLI, both backends, the broker launcher and join-cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from kazoo.client import KazooClient

from coordinator_mode.broker.controller import create_topics
from zk_mode.catalog import write_topics


@contextmanager
def zk_client(hosts: str, timeout: float = 30.0) -> Iterator[KazooClient]:
    """A started client of ``hosts``, stopped and closed on the way out."""
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=timeout)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def write_catalogs(
    client: KazooClient,
    topics: Mapping[str, int],
    zk_root: str | None = None,
    broker_root: str | None = None,
) -> None:
    """Write ``topics`` (name -> partitions) into zk mode's catalog under ``zk_root`` and/or the
    brokers' under ``broker_root``; a root that is None is left alone."""
    if zk_root is not None:
        write_topics(client, zk_root, topics)
    if broker_root is not None:
        create_topics(client, topics, broker_root)


def provision_topics(
    hosts: str,
    topics: Mapping[str, int],
    zk_root: str | None = None,
    broker_root: str | None = None,
    timeout: float = 30.0,
) -> None:
    """Open a client of ``hosts`` and :func:`write_catalogs`."""
    with zk_client(hosts, timeout) as client:
        write_catalogs(client, topics, zk_root, broker_root)

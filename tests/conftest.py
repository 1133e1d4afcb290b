"""Shared test helpers: waiting on conditions (never fixed sleeps, see :mod:`bench.services.polling`), a real
ZooKeeper and running brokers; and each test's kind, from its directory.

``tests/unit``: pure, no servers, sockets or clusters (at most an offline helper process); ``tests/integration``: real ZooKeeper, brokers
or clients, one component or a few; ``tests/system``: whole runs through the runner or the CLI. Every
test gets the marker of its directory (``pytest -m unit``, what ``make test-fast`` runs).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from kafka.protocol.consumer import OffsetFetchRequest
from kazoo.client import KazooClient

from bench.services.brokers import BrokerCluster, send_request
from bench.services.kafka import KafkaCluster
from bench.services.polling import wait_until as wait_until  # tests import it from here
from bench.services.zookeeper import ZooKeeperEnsemble

# -- test kinds -----------------------------------------------------------------------------------

TESTS_DIR = Path(__file__).parent
KINDS = ("unit", "integration", "system")  # also registered in pyproject.toml's pytest markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its kind: the directory below tests/ it lives in."""
    for item in items:
        try:
            kind = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:
            continue
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))


#: ``make test-fast`` runs the unit tests with ``--hypothesis-profile=fast``: a tenth of Hypothesis's
#: examples (``make test``, CI, keeps the default profile's full counts).
settings.register_profile("fast", max_examples=10)


# -- ZooKeeper fixtures ---------------------------------------------------------------------------
# One real standalone server for the whole session; tests isolate themselves by root znode.


class EnsembleFactory:
    """Builds ensembles for one test under its tmp_path (kept by pytest, so logs survive a failure)."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self.ensembles: list[ZooKeeperEnsemble] = []

    def __call__(self, size: int = 1, start: bool = True, **cfg_overrides: object) -> ZooKeeperEnsemble:
        ensemble = ZooKeeperEnsemble(size, base_dir=self._base / f"zk{len(self.ensembles)}", **cfg_overrides)
        self.ensembles.append(ensemble)  # registered before start: stopped even if start fails
        if start:
            ensemble.start()
        return ensemble

    def stop_all(self) -> None:
        for ensemble in reversed(self.ensembles):
            ensemble.stop()


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    """One standalone ZooKeeper for the session."""
    ensemble = ZooKeeperEnsemble(1, base_dir=tmp_path_factory.mktemp("zk-session"))
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture
def zk_ensemble_factory(tmp_path: Path) -> Iterator[EnsembleFactory]:
    """``zk_ensemble_factory(3)`` -> a started ensemble of this test's own, stopped after it."""
    factory = EnsembleFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def zk_root(zk_server: ZooKeeperEnsemble) -> str:
    """A root znode no other test uses, under the ``zkmode`` namespace."""
    return f"/zkmode/t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kazoo_client(zk_server: ZooKeeperEnsemble) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zk_server.connect_string, timeout=10.0)
    try:
        client.start(timeout=30.0)
        yield client
    finally:
        client.stop()
        client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """When a test that used ZooKeeper or real Kafka fails, attach the tail of each server's log to
    its report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    ensembles: list[ZooKeeperEnsemble] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, ZooKeeperEnsemble):
            ensembles.append(value)
        elif isinstance(value, EnsembleFactory):
            ensembles.extend(value.ensembles)
    for i, ensemble in enumerate(dict.fromkeys(ensembles)):
        report.sections.append((f"zookeeper logs ({report.when}, ensemble {i})", ensemble.log_tails(30)))
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, KafkaCluster):
            report.sections.append((f"kafka logs ({report.when}, {value.target.name})", value.log_tails(30)))


@contextlib.contextmanager
def running_brokers(zk_connect: str, size: int, base_dir: Path, **options: Any) -> Iterator[Any]:
    """Started brokers for a test or module, stopped however it ends.

    Defaults for tests: no initial rebalance delay, and a root znode of their own because the
    session's ZooKeeper is shared; ``options`` go to :class:`~bench.services.brokers.BrokerCluster`.
    """
    options = {"initial_rebalance_delay_ms": 0, "zk_root": f"/kafka-{uuid.uuid4().hex[:8]}", **options}
    cluster = BrokerCluster(zk_connect, size, base_dir, **options)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def committed_offsets(
    cluster: BrokerCluster, group: str, topic: str, partitions: int
) -> dict[int, int] | None:
    """OffsetFetch (v7) from the group's current coordinator; None while none answers (no live
    coordinator yet, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS): the caller asks again."""
    coordinator = cluster.coordinator_for(group)
    if coordinator is None or not coordinator.is_running():
        return None
    request = OffsetFetchRequest(
        version=7,
        group_id=group,
        topics=[
            OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=list(range(partitions)))
        ],
        require_stable=False,
    )
    try:
        response = send_request(coordinator.address, request, timeout=5)
    except OSError:
        return None
    if response.error_code != 0:
        return None
    return {p.partition_index: p.committed_offset for t in response.topics for p in t.partitions}

"""Group -> offsets partition on a real 3-broker cluster: FindCoordinator spreads groups over every broker.

The pure hashing tests are in tests/unit/test_hashing.py.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import pytest
from kafka.protocol.metadata import FindCoordinatorRequest

from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.broker.controller import OFFSETS_TOPIC
from coordinator_mode.hashing import partition_for
from tests.conftest import running_brokers

# -- on a real 3-broker cluster: FindCoordinator spreads groups over every broker ------------------


@pytest.fixture(scope="module")
def cluster3(
    zk_server: ZooKeeperEnsemble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerCluster]:
    with running_brokers(zk_server.connect_string, 3, tmp_path_factory.mktemp("hashing")) as c:
        yield c


def test_random_groups_spread_over_all_brokers(cluster3: BrokerCluster) -> None:
    rng = random.Random(2024)
    alphabet = string.ascii_letters + string.digits + "._-"
    groups = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(1_000)]
    view = cluster3.view()
    assert view.topics[OFFSETS_TOPIC] == 50
    # One batched FindCoordinator (v4) to any broker answers for all 1,000 groups.
    request = FindCoordinatorRequest(version=4, key_type=0, coordinator_keys=groups)
    response = send_request(cluster3.broker(2).address, request)
    by_group = {c.key: c for c in response.coordinators}
    assert set(by_group) == set(groups) and all(c.error_code == 0 for c in by_group.values())
    for group in groups:
        leader = view.leader(OFFSETS_TOPIC, partition_for(group))
        assert leader is not None and by_group[group].node_id == leader.leader
        assert by_group[group].port == cluster3.broker(leader.leader).port
    assert {c.node_id for c in by_group.values()} == {1, 2, 3}, "each broker coordinates some groups"
    # The single-key versions (v0-v3) agree.
    for group in groups[:20]:
        single = send_request(
            cluster3.broker(3).address, FindCoordinatorRequest(version=1, key=group, key_type=0)
        )
        assert single.error_code == 0 and single.node_id == by_group[group].node_id

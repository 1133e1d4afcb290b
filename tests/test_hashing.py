"""Group -> offsets partition with Java's exact String.hashCode semantics (reference test vectors)."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.protocol.metadata import FindCoordinatorRequest

from bench.services.brokers import BrokerCluster, send_request
from bench.services.zookeeper import ZooKeeperEnsemble
from coordinator_mode.controller import OFFSETS_TOPIC
from coordinator_mode.hashing import java_abs, java_string_hash, partition_for
from tests.conftest import running_brokers

#: group id, Java hashCode, partition for 50 partitions (checked against the JVM; see the reference).
VECTORS = [
    ("hello", 99162322, 22),
    ("test_group_id", -737384472, 22),
    ("my-group", -1906497762, 12),
    ("group1", -1237460590, 40),
    ("test-consumer-group", -1793216381, 31),
    ("console-consumer", -648006740, 40),
    ("", 0, 0),
    ("polygenelubricants", -(2**31), 0),
]


@pytest.mark.parametrize(("group", "hash_code", "partition"), VECTORS)
def test_reference_vectors(group: str, hash_code: int, partition: int) -> None:
    assert java_string_hash(group) == hash_code
    assert partition_for(group) == partition
    assert partition_for(group, 50) == partition


def test_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16: 0xD83D * 31 + 0xDE00.
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00
    assert java_string_hash("é") == 0xE9


def test_utils_abs_of_min_value_is_zero() -> None:
    assert java_abs(-(2**31)) == 0
    assert java_abs(-5) == 5


@given(st.text(max_size=60), st.integers(min_value=1, max_value=200))
def test_matches_the_textbook_definition(group: str, n: int) -> None:
    units = group.encode("utf-16-be", errors="surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i : i + 2], "big")) % 2**32
    signed = h - 2**32 if h >= 2**31 else h
    assert java_string_hash(group) == signed
    assert 0 <= partition_for(group, n) < n


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError):
        partition_for("g", 0)


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

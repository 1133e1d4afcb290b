"""mntr parsing and the mapping from ZooKeeper 3.8 counters to reads, writes and watch notifications,
on hand-written readings (no server; the counts on real servers are in tests/integration/test_mntr.py).

The exact numbers below were observed on Debian's ZooKeeper 3.8.0; see bench/mntr.py's docstring.
"""

from __future__ import annotations

import pytest

from bench.services.mntr import Mntr, diff, namespace_of, parse_mntr, zk_load

SAMPLE = "zk_version\t3.8.0-abc, built on x\nzk_server_state\tstandalone\nzk_avg_latency\t0.5\n"
SAMPLE += "zk_znode_count\t5\nzk_packets_received\t10\nzk_cnt_readlatency\t3\nzk_uptime\t1000\n"
SAMPLE += "not a metric line\n"


def _mntr(server: str = "127.0.0.1:1", **values: int | float | str) -> Mntr:
    return Mntr(server=server, values=dict(values), mono_ns=0)


def test_parse_keeps_types_and_skips_noise() -> None:
    values = parse_mntr(SAMPLE)
    assert values["zk_server_state"] == "standalone"
    assert values["zk_avg_latency"] == 0.5
    assert values["zk_packets_received"] == 10
    assert values["zk_version"].startswith("3.8.0")
    assert len(values) == 7


def test_diff_covers_cumulative_counters_only() -> None:
    before = _mntr(zk_packets_received=10, zk_znode_count=5, zk_avg_latency=1.0, zk_cnt_readlatency=3)
    after = _mntr(
        zk_packets_received=15,
        zk_znode_count=9,
        zk_avg_latency=2.0,
        zk_cnt_readlatency=4,
        zk_cnt_ns_read_per_namespace=2,  # appears with the first read: absent counts as 0
        zk_server_state="standalone",
    )
    assert diff(before, after) == {
        "zk_packets_received": 5.0,
        "zk_cnt_readlatency": 1.0,
        "zk_cnt_ns_read_per_namespace": 2.0,
    }


def test_namespace_is_the_top_level_component() -> None:
    assert namespace_of("/zkmode/t-1/groups") == "zkmode"
    assert namespace_of("kafka") == "kafka"
    with pytest.raises(ValueError):
        namespace_of("/")


def test_zk_load_sums_servers_takes_replicated_values_once_and_detects_restarts() -> None:
    before = [
        _mntr("a", zk_uptime=100, zk_cnt_updatelatency=1, zk_cnt_x_write_per_namespace=4, zk_znode_count=10),
        _mntr("b", zk_uptime=100, zk_cnt_updatelatency=2, zk_cnt_x_write_per_namespace=4, zk_znode_count=10),
        _mntr("c", zk_uptime=100, zk_cnt_updatelatency=5, zk_cnt_x_write_per_namespace=4, zk_znode_count=10),
    ]
    after = [
        _mntr("a", zk_uptime=200, zk_cnt_updatelatency=4, zk_cnt_x_write_per_namespace=7, zk_znode_count=12),
        _mntr("b", zk_uptime=200, zk_cnt_updatelatency=3, zk_cnt_x_write_per_namespace=7, zk_znode_count=12),
        # c restarted in between: its counters start from 0 again
        _mntr("c", zk_uptime=50, zk_cnt_updatelatency=1, zk_cnt_x_write_per_namespace=1, zk_znode_count=12),
    ]
    load = zk_load(before, after, namespace="/x/y")
    assert load.namespace == "x"
    assert load.servers == 3
    assert load.writes_incl_sessions == 3 + 1 + 1
    assert load.writes == 3  # applied on every replica: counted once
    assert load.znodes == 2

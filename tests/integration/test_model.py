"""The cost model (bench.model) against measured joins: one member into N-1, N = 4 and 16, on every
zk variant (the members' counted calls against a real ZooKeeper) and on the coordinator (group
requests at a three-broker cluster). Exact where the protocol is deterministic; where it races (a
claim's release against its new owner's probe, selfbalance's claim attempts) inside the model's
interval, widened by 10 %."""

from __future__ import annotations

import pytest

from bench.experiment.joincost import measure_coordinator_join, measure_join, parse_hosts, predicted

PARTITIONS = 8
SIZES = (4, 16)


@pytest.mark.parametrize("variant", ["chain", "herd", "selfbalance", "setpartitioner"])
def test_the_model_predicts_a_zk_join(zk_server, variant: str) -> None:
    servers = parse_hosts(zk_server.connect_string)
    for n in SIZES:
        row = measure_join(zk_server.connect_string, servers, variant, n, partitions=PARTITIONS)
        model = predicted(row, PARTITIONS)
        for key, count in (
            ("reads", model.zk_reads),
            ("writes", model.zk_writes),
            ("watch_events", model.zk_watch_events),
        ):
            measured = row.client.get(key, 0)
            assert count.holds(measured), f"{variant} N={n} {key}: measured {measured}, model {count}"


def test_the_model_predicts_a_coordinator_join(zk_server) -> None:
    servers = parse_hosts(zk_server.connect_string)
    for n in SIZES:
        row = measure_coordinator_join(zk_server.connect_string, servers, n, PARTITIONS)
        (coordinator,) = [e for e in row.ledger if e["service"] == "group_coordinator"]
        model = predicted(row, PARTITIONS)
        measured = (coordinator["requests"], coordinator["durable_writes"])
        expected = (model.coordinator_requests, model.offsets_records)
        assert all(c.holds(m) for m, c in zip(measured, expected, strict=True)), (n, measured, expected)

"""The cost model's pure parts: intervals, the assignor's moves, the critical paths, the RTT fit."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.analysis.slopes import fit, slopes
from bench.model import Count, Workload, critical_path, moves, predict


def test_a_count_is_exact_or_an_interval_widened_by_the_tolerance() -> None:
    assert Count.exact(10).holds(10) and not Count.exact(10).holds(11)
    racing = Count(10, 20)
    assert racing.holds(9) and racing.holds(22) and not racing.holds(8.9)
    assert racing.residual(25) == 5 and racing.residual(15) == 0 and racing.residual(7) == -3


def test_moves_come_from_the_assignor() -> None:
    # range, 3 -> 4 members over 16 partitions: 0-5|6-10|11-15 -> 0-3|4-7|8-11|12-15
    m = moves(["m0", "m1", "m2"], ["m0", "m1", "m2", "m3"], 16)
    assert m.gained == {"m0": 0, "m1": 2, "m2": 3, "m3": 4} and m.moved == 9
    assert m.lost == {"m0": 2, "m1": 3, "m2": 4, "m3": 0}
    # sticky moves only what balance needs
    assert moves(["a", "b", "c"], ["a", "b", "c", "d"], 16, assignor="sticky").moved == 4


def test_a_chain_join_grows_linearly_and_a_herd_join_quadratically() -> None:
    def reads(variant: str, n: int) -> float:
        return predict("zk", variant, "join", Workload(members=n, partitions=64)).zk_reads.low

    assert reads("chain", 64) - reads("chain", 32) < 2 * 64
    assert reads("herd", 64) > 3 * reads("herd", 32)


def test_every_design_documents_its_critical_path_per_event() -> None:
    for mode, variant in (("zk", "chain"), ("zk", "herd"), ("zk", "selfbalance"), ("coordinator", "classic")):
        for event in ("join", "leave", "crash", "cold_start"):
            assert (critical_path(mode, variant, event) or 0) > 0, (mode, variant, event)
    with pytest.raises(ValueError, match="event"):
        predict("zk", "chain", "reboot", Workload(members=4, partitions=8))


def test_the_slope_of_a_round_trip_sweep_is_its_round_trips(tmp_path: Path) -> None:
    assert fit([(0, 100), (10, 150), (20, 200)]) == (100, 5)
    run = tmp_path / "rtt-sweep-rtt_ms-0" / "zk-chain" / "rep-1"
    run.mkdir(parents=True)
    with (run / "rebalances.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["mode", "variant", "action", "outcome", "rtt_ms", "convergence_ms"])
        w.writeheader()
        for rtt in (0, 5, 20):
            w.writerow(
                dict(
                    mode="zk",
                    variant="chain",
                    action="add_members",
                    outcome="converged",
                    rtt_ms=rtt,
                    convergence_ms=200 + 12 * rtt,
                )
            )
        w.writerow(
            dict(
                mode="zk",
                variant="chain",
                action="add_members",
                outcome="not_converged",
                rtt_ms=1,
                convergence_ms="",
            )
        )
    (slope,) = slopes(tmp_path)
    assert (slope.points, round(slope.intercept_ms), round(slope.round_trips, 6)) == (3, 200, 12)

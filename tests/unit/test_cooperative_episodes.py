"""The episode columns that separate eager from incremental rebalancing (revoked, moved, rounds),
on one join written both ways: 6 partitions, a and b own 3 each, c joins at 10 s and takes o-2 and
o-5 (the sticky plan)."""

from __future__ import annotations

import json

import pytest

from bench.analysis.checker import check
from bench.analysis.metrics.episodes import episodes
from bench.analysis.replay import RunHistory

S = 1_000_000_000


def event(
    kind: str, member: str, t: float, generation: int | None = None, parts: list[int] | None = None
) -> str:
    return json.dumps(
        {
            "event": kind,
            "member": member,
            "group": "g0",
            "mode": "coordinator",
            "variant": "cooperative",
            "generation": generation,
            "partitions": None if parts is None else [["o", p] for p in parts],
            "mono_ns": int(t * S),
            "wall": 1_700_000_000 + t,
            "leader": "a",
        }
    )


def action(name: str, phase: str, step: int, t: float, **params: object) -> str:
    return json.dumps(
        {
            "event": "action",
            "action": name,
            "phase": phase,
            "step": step,
            "group": None,
            "targets": [],
            "params": params,
            "mono_ns": int(t * S),
            "wall": 1_700_000_000 + t,
        }
    )


RUN_END = json.dumps(
    {
        "event": "run",
        "phase": "end",
        "groups": {"g0": {"topics": {"o": 6}, "mode": "coordinator", "variant": "cooperative"}},
        "partitions": {"g0": [["o", p] for p in range(6)]},
        "mono_ns": 30 * S,
        "wall": 1_700_000_030.0,
    }
)

START = [
    action("start_members", "start", 0, 0.0, count=2),
    action("start_members", "end", 0, 0.05, count=2),
    event("assigned", "a", 1.0, 1, [0, 1, 2]),
    event("assigned", "b", 1.1, 1, [3, 4, 5]),
    action("add_members", "start", 1, 10.0, count=1),
    action("add_members", "end", 1, 10.05, count=1),
]
END = [action("stop", "start", 2, 20.0), RUN_END]

COOPERATIVE = [
    # round 1 (generation 2): o-2 and o-5 are withheld; their owners revoke only those and rejoin
    event("revoked", "a", 11.0, 2, [2]),
    event("assigned", "a", 11.0, 2, [0, 1]),
    event("revoked", "b", 11.1, 2, [5]),
    event("assigned", "b", 11.1, 2, [3, 4]),
    event("assigned", "c", 11.1, 2, []),
    # round 2 (generation 3): handed over
    event("assigned", "a", 12.0, 3, [0, 1]),
    event("assigned", "b", 12.0, 3, [3, 4]),
    event("assigned", "c", 12.1, 3, [2, 5]),
]
EAGER = [
    event("revoked", "a", 11.0, 1, [0, 1, 2]),
    event("revoked", "b", 11.0, 1, [3, 4, 5]),
    event("assigned", "a", 11.5, 2, [0, 1]),
    event("assigned", "b", 11.5, 2, [3, 4]),
    event("assigned", "c", 11.5, 2, [2, 5]),
]


def join_episode(lines: list[str]):
    history = RunHistory.from_lines([*START, *lines, *END])
    assert check(history).passed
    (join,) = [e for e in episodes(history) if e.action == "add_members"]
    return join


def test_a_cooperative_join_revokes_what_moves_over_two_rounds() -> None:
    join = join_episode(COOPERATIVE)
    assert (join.partitions_revoked, join.partitions_moved, join.generations) == (2, 2, 2)
    # [11.0, 11.1): o-2 unowned; [11.1, 12.1): o-2 and o-5
    assert join.unowned_partition_s == pytest.approx(0.1 + 2 * 1.0, abs=1e-9)


def test_an_eager_join_revokes_everything_in_one_round() -> None:
    join = join_episode(EAGER)
    assert (join.partitions_revoked, join.partitions_moved, join.generations) == (6, 2, 1)
    assert join.unowned_partition_s == pytest.approx(6 * 0.5, abs=1e-9)

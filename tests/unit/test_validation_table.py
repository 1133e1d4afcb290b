"""The validation table's computation from hand-made medians: ratios ours/real, the 15 % flag, and
what a side that did not count a figure shows."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.report.validation import NOT_COUNTED, compare, format_table, ratio


def medians(rows: list[tuple[str, int, str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"situation": s, "members": n, "target": t, "metric": m, "value": v, "episodes": 3}
            for s, n, t, m, v in rows
        ]
    )


def test_ratios_and_flags_of_each_pair_with_the_same_members() -> None:
    table = compare(
        medians(
            [
                ("kill_leader", 4, "coordinator/classic", "convergence_s", 6.6),
                ("kill_leader", 4, "kafka/3.9-classic", "convergence_s", 6.0),  # 1.10: not flagged
                ("kill_leader", 4, "coordinator/classic", "JoinGroup", 6),
                ("kill_leader", 4, "kafka/3.9-classic", "JoinGroup", 4),  # 1.5: flagged
                ("kill_leader", 4, "coordinator/java", "JoinGroup", 3),
                ("kill_leader", 4, "kafka/3.9-java", "JoinGroup", 4),  # 0.75: flagged
                ("kill_leader", 4, "coordinator/classic", "zk writes", 0),
                ("kill_leader", 4, "kafka/3.9-classic", "zk writes", 0),  # both none: 1, not flagged
                ("kill_leader", 4, "coordinator/classic", "LeaveGroup", 2),
                ("kill_leader", 4, "kafka/3.9-classic", "LeaveGroup", 0),  # only ours: infinite
            ]
        )
    )
    got = {(r.clients, r.metric): (r.ratio, r.flag) for r in table.itertuples()}
    r, flag = got[("classic", "convergence_s")]
    assert math.isclose(r, 6.6 / 6.0) and not flag
    assert got[("classic", "JoinGroup")] == (1.5, True)
    assert got[("java", "JoinGroup")] == (0.75, True)
    assert got[("classic", "zk writes")] == (1.0, False)
    assert got[("classic", "LeaveGroup")] == (math.inf, True)
    assert set(table["members"]) == {4} and set(table["situation"]) == {"kill_leader"}


def test_a_figure_one_side_did_not_count_has_no_ratio_and_no_flag() -> None:
    table = compare(
        medians(
            [
                ("add_members", 16, "coordinator/classic", "offsets records appended", None),
                ("add_members", 16, "kafka/3.9-classic", "offsets records appended", 37),
            ]
        )
    )
    (row,) = table.itertuples()
    assert row.ours is None and row.real == 37 and row.ratio is None and not row.flag
    assert NOT_COUNTED in format_table(table)


def test_ratio_of_missing_figures_is_none() -> None:
    assert ratio(None, 3) is None and ratio(3, None) is None and ratio(float("nan"), 1) is None
    assert ratio(0, 0) == 1.0 and ratio(2, 4) == 0.5

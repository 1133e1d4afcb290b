"""Metrics on hand-written histories whose answers are known exactly (tests/data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.analysis.metrics.episodes import Outcome, episodes
from bench.analysis.metrics.stats import describe, median_ci
from bench.analysis.metrics.tables import analyze, analyze_command
from bench.analysis.replay import RunHistory
from bench.experiment.history import RunState, RunStatus

DATA = Path(__file__).parents[1] / "data"


def run_dir(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def test_member_crash_unowned_partition_seconds_are_exact() -> None:
    # 6 partitions, a/b/c own 2 each from 3.0/3.1/3.2 s. c is killed at 10 s; a and b revoke at
    # 55.0/55.1 s and take 3 each at 55.5/55.6 s.
    cold, crash = episodes(RunHistory.read(DATA / "run-member-crash/events.jsonl"))

    assert (cold.action, cold.outcome) == ("start_members", Outcome.CONVERGED)
    # [0, 3.0) 6 unowned, [3.0, 3.1) 4, [3.1, 3.2) 2
    assert cold.unowned_partition_s == pytest.approx(6 * 3.0 + 4 * 0.1 + 2 * 0.1, abs=1e-9)
    assert (cold.convergence_ns - cold.trigger_ns) / 1e6 == pytest.approx(3200)

    assert (crash.action, crash.outcome, crash.targets) == ("kill_member", Outcome.CONVERGED, ("c",))
    # [10, 55.0) 2 unowned, [55.0, 55.1) 4, [55.1, 55.5) 6, [55.5, 55.6) 3
    assert crash.unowned_partition_s == pytest.approx(2 * 45.0 + 4 * 0.1 + 6 * 0.4 + 3 * 0.1, abs=1e-9)
    assert crash.unowned_partition_s == pytest.approx(93.1, abs=1e-9)
    assert (crash.detection_ns - crash.trigger_ns) / 1e6 == pytest.approx(45_000)
    assert crash.detected_by == "a" and crash.detection_event == "revoked"
    assert (crash.convergence_ns - crash.trigger_ns) / 1e6 == pytest.approx(45_600)
    assert (crash.generation_before, crash.generation_after, crash.generations) == (1, 2, 1)
    assert (crash.members_before, crash.members_after, crash.members_involved) == (3, 2, 3)
    # eager: a and b revoke all 4 of theirs; o2 (b -> a), o4 and o5 (c -> b) change owner
    assert (crash.partitions_revoked, crash.partitions_moved) == (4, 3)
    assert (cold.partitions_revoked, cold.partitions_moved) == (0, 0)


def test_a_pause_splits_into_the_pause_and_the_resume() -> None:
    # b is frozen 10-20 s; a owns both partitions from 15 s; after b's session_lost and rejoin both
    # hold generation 3 at 21.2 s, with p-1 unowned between a's revoke (21.0) and b's assignment.
    cold, pause, resume = episodes(RunHistory.read(DATA / "pause.jsonl"))
    assert (pause.action, pause.phase, resume.phase) == ("pause_member", "start", "end")
    assert (pause.convergence_ns - pause.trigger_ns) / 1e6 == pytest.approx(5_000)
    assert pause.unowned_partition_s == pytest.approx(5.0, abs=1e-9), "b's partition while it is frozen"
    assert pause.members_after == 1 and pause.generation_after == 2, "converged without the frozen b"
    assert (resume.convergence_ns - resume.trigger_ns) / 1e6 == pytest.approx(1_200)
    assert resume.unowned_partition_s == pytest.approx(0.2, abs=1e-9)
    assert (resume.generation_before, resume.generation_after) == (2, 3)


def test_a_failover_without_a_rebalance_is_not_a_convergence() -> None:
    _, failover = episodes(RunHistory.read(DATA / "offsets_lost.jsonl"))
    assert failover.action == "kill_coordinator"
    assert failover.outcome == Outcome.NO_REBALANCE
    assert failover.convergence_ns is None and failover.detection_ns is None
    assert failover.unowned_partition_s == 0.0


def test_convergence_waits_for_every_started_member() -> None:
    # Two members asked for; the first assignment alone (a owns t-0, t-1 at 1.0 s) is not complete,
    # and convergence is the moment both hold generation 1.
    cold, join = episodes(RunHistory.read(DATA / "double_ownership.jsonl"))
    assert (cold.convergence_ns - cold.trigger_ns) / 1e6 == pytest.approx(1_000)
    assert (join.convergence_ns - join.trigger_ns) / 1e6 == pytest.approx(1_600)
    assert join.members_after == 3


def test_analyze_writes_tidy_tables_and_a_summary(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "run-scale-out-chain")
    summary = analyze(d)
    for name in ("rebalances.csv", "zk_load.csv", "broker_load.csv", "summary.json"):
        assert (d / name).exists(), name
    rebalances = pd.read_csv(d / "rebalances.csv")
    join = rebalances[rebalances["action"] == "add_members"].iloc[0]
    # mntr brackets the join with the readings at 5.0 s and 7.0 s: 5 + 7 reads, 1 + 2 writes.
    assert (join["zk_namespace"], join["zk_reads"], join["zk_writes"]) == ("zkmode", 12, 3)
    assert join["zk_reads_incl_pings"] == 12 + 2, "two seconds of pings on top"
    assert join["convergence_ms"] == 1600.0
    assert join["scenario"] == "scale-out-by-one" and join["scenario_members"] == 2

    zk = pd.read_csv(d / "zk_load.csv")
    assert set(zk["kind"]) == {"episode", "steady", "run"}
    steady = summary["steady_state"]
    assert steady and all(s["reads_per_s"] == 0 and s["reads_incl_pings_per_s"] == 1.0 for s in steady)

    # The history holds a double ownership: the summary says so, with its details.
    assert summary["checks"]["passed"] is False
    (failure,) = summary["checks"]["failures"]
    assert (failure["check"], failure["duration_s"]) == ("double_ownership", 0.5)
    assert json.loads((d / "summary.json").read_text())["checks"]["failure_counts"] == {"double_ownership": 1}


def test_coordinator_mode_counts_broker_requests_and_no_zookeeper_writes(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "run-member-crash")
    summary = analyze(d)
    rebalances = pd.read_csv(d / "rebalances.csv")
    crash = rebalances[rebalances["action"] == "kill_member"].iloc[0]
    assert crash["zk_namespace"] == "kafka" and crash["zk_writes"] == 0
    broker = pd.read_csv(d / "broker_load.csv")
    in_crash = broker[(broker["kind"] == "episode") & (broker["action"] == "kill_member")]
    by_api = in_crash.set_index("api")["requests"].to_dict()
    assert by_api["JoinGroup"] == 2 and by_api["SyncGroup"] == 2
    assert crash["broker_requests"] == sum(by_api.values())
    assert summary["outcomes"] == {"converged": 2}
    assert summary["checks"]["passed"] is True


def test_median_ci_from_order_statistics() -> None:
    low, high, coverage = median_ci(list(range(1, 11)))
    assert (low, high) == (2, 9)  # x(2), x(9): 1 - 2 P(Bin(10, .5) <= 1) = 0.979
    assert coverage == pytest.approx(0.978515625)
    low, high, coverage = median_ci([5, 1, 4, 2, 3])
    assert (low, high) == (1, 5) and coverage == pytest.approx(0.9375)


def test_describe_warns_on_few_or_disagreeing_values() -> None:
    steady = describe([100, 101, 99, 100, 102, 98])
    assert steady.median == 100 and steady.warnings == ()
    few = describe([100, 101])
    assert any("only 2 value(s)" in w for w in few.warnings)
    noisy = describe([10, 100, 20, 300, 15, 40])
    assert any("CV" in w for w in noisy.warnings)
    assert describe([None, float("nan")]).n == 0


def test_analyze_command_exits_non_zero_on_check_failures(tmp_path: Path) -> None:
    result = CliRunner().invoke(analyze_command, [str(run_dir(tmp_path, "run-scale-out-chain"))])
    assert result.exit_code == 1
    assert "double_ownership: t-0 owned by a, c" in result.output
    result = CliRunner().invoke(analyze_command, [str(run_dir(tmp_path, "run-member-crash"))])
    assert result.exit_code == 0 and "checks passed" in result.output


def joined(row: pd.Series) -> tuple[int, float, float, float]:
    return tuple(row[c] for c in ("joins", "join_ms_median", "join_ms_max", "join_span_ms"))


def test_join_times_from_the_join_start_to_the_first_assignment(tmp_path: Path) -> None:
    # zk: a and b join at 0.2/0.3 s and are assigned at 1.0 s; c joins at 5.2 s, assigned at 6.0 s.
    analyze(d := run_dir(tmp_path, "run-scale-out-chain"))
    rows = pd.read_csv(d / "rebalances.csv").set_index("action")
    assert joined(rows.loc["start_members"]) == (2, 750, 800, 800)
    assert joined(rows.loc["add_members"]) == (1, 800, 800, 800)

    # coordinator: the clock starts at join_started_ns (0.05 s), when the first JoinGroup went out, not
    # at the `joined` event (0.1 s); assigned at 3.0/3.1/3.2 s. The crash's rejoins are no new joins.
    analyze(d := run_dir(tmp_path, "run-member-crash"))
    rows = pd.read_csv(d / "rebalances.csv").set_index("action")
    assert joined(rows.loc["start_members"]) == (3, 3050, 3150, 3150)
    crash = rows.loc["kill_member"]
    assert crash["joins"] == 0 and pd.isna(crash["join_ms_median"]) and pd.isna(crash["join_span_ms"])


def test_a_failed_or_aborted_run_is_no_measurement(tmp_path: Path) -> None:
    failed = run_dir(tmp_path, "run-member-crash")
    RunStatus(
        RunState.FAILED, "member-crash [coordinator/classic #1]: step 1 (kill_member): not stable"
    ).write(failed, "Traceback ...")
    summary = analyze(failed)
    assert summary["status"] == {
        "state": "failed",
        "reason": "member-crash [coordinator/classic #1]: step 1 (kill_member): not stable",
    }
    result = CliRunner().invoke(analyze_command, [str(failed)])
    assert result.exit_code == 2, "a failed run is not a measurement, whatever its checks say"
    assert "FAILED RUN, not measured: member-crash" in result.output

    aborted = run_dir(tmp_path / "b", "run-member-crash")
    RunStatus(RunState.ABORTED, "aborted by the user (Ctrl-C) during step 1 (kill_member)").write(aborted)
    assert analyze(aborted)["status"]["state"] == "aborted"
    result = CliRunner().invoke(analyze_command, [str(aborted)])
    assert result.exit_code == 2 and "ABORTED RUN" in result.output


def test_an_old_error_file_and_an_empty_history_count_as_failed(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "run-member-crash")
    (d / "error.txt").write_text("member-crash [coordinator/classic #1]: boom\n\nTraceback ...\n")
    assert analyze(d)["status"] == {
        "state": "failed",
        "reason": "member-crash [coordinator/classic #1]: boom",
    }

    empty = run_dir(tmp_path / "e", "run-member-crash")
    lines = (empty / "events.jsonl").read_text().splitlines()
    (empty / "events.jsonl").write_text("".join(line + "\n" for line in lines if '"event":"action"' in line))
    assert analyze(empty)["status"]["reason"].startswith("no member events")

    cut = run_dir(tmp_path / "c", "run-member-crash")
    kept = [line for line in lines if '"event":"run","phase":"end"' not in line]
    (cut / "events.jsonl").write_text("".join(line + "\n" for line in kept))
    assert "no run end record" in analyze(cut)["status"]["reason"]


def test_analyze_finds_the_runs_below_a_directory_and_separates_its_exit_codes(tmp_path: Path) -> None:
    root = tmp_path / "results"
    run_dir(root / "s" / "coordinator-classic", "run-member-crash")
    run_dir(root / "s" / "zk-chain", "run-scale-out-chain")
    result = CliRunner().invoke(analyze_command, [str(root)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, "a check failed in one of the two runs below"
    assert "run-member-crash: 2 episodes, checks passed" in result.output
    assert "run-scale-out-chain: 2 episodes, 1 CHECK FAILURE(S)" in result.output

    nothing = tmp_path / "nothing"
    nothing.mkdir()
    result = CliRunner().invoke(analyze_command, [str(nothing)])
    assert result.exit_code == 2 and "could not analyse: no run directory" in result.output

    broken = run_dir(tmp_path / "x", "run-member-crash")
    (broken / "events.jsonl").unlink()
    (broken / "events.jsonl").mkdir()  # found, but unreadable
    result = CliRunner().invoke(analyze_command, [str(broken.parent)])
    assert result.exit_code == 2 and "could not analyse: IsADirectoryError" in result.output


def test_the_run_id_comes_from_the_run_not_its_directory_name(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "run-member-crash")
    env = json.loads((d / "environment.json").read_text())
    (d / "environment.json").write_text(json.dumps({**env, "run_id": "member-crash/x@20240101T000000-ab"}))
    analyze(d)
    assert set(pd.read_csv(d / "rebalances.csv")["run_id"]) == {"member-crash/x@20240101T000000-ab"}

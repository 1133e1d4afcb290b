"""The report from tiny canned run directories: HTML with embedded figures, Markdown with figure files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bench.analysis.metrics.tables import find_runs
from bench.analysis.report.document import build_report, report
from bench.analysis.report.figures import latency_canvas
from bench.analysis.report.load import load_results
from bench.analysis.report.style import log_limits, with_triggers
from bench.analysis.report.tables import IDLE, summary_table
from bench.experiment.demo import headline, latency_headline
from bench.experiment.history import RunState, RunStatus

DATA = Path(__file__).parents[1] / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def canned(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "results"
    for name in names:
        shutil.copytree(DATA / name, root / name)
    return root


def as_sweep_point(run_dir: Path, members: int) -> None:
    """Turn a copy of the chain run into one point of a group-size sweep."""
    scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text())
    scenario["name"] = f"size-sweep-members-{members}"
    scenario["groups"]["members"] = members
    scenario["sweep_point"] = {"scenario": "size-sweep", "values": {"groups.members": members}}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario))


def as_rtt_point(run_dir: Path, rtt_ms: int) -> None:
    """Turn a copy of the chain run into one point of a round-trip sweep: a set_delay step before
    the join, so the join's episode is measured at ``rtt_ms``."""
    scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text())
    scenario["name"] = f"rtt-sweep-rtt-{rtt_ms}"
    scenario["timeline"].insert(1, {"action": "set_delay", "target": "all", "rtt_ms": rtt_ms})
    scenario["sweep_point"] = {"scenario": "rtt-sweep", "values": {"timeline[1].rtt_ms": rtt_ms}}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    for e in events:
        if e["event"] == "action" and e["step"] >= 1:
            e["step"] += 1
    delay = {"event": "action", "action": "set_delay", "step": 1, "group": None, "targets": ["all"]}
    delay["params"] = {"rtt_ms": rtt_ms, "jitter_ms": 0, "target": "all"}
    at = next(i for i, e in enumerate(events) if e.get("action") == "add_members")
    for offset, phase in enumerate(("start", "end")):
        mono_ns = 3_000_000_000 + offset * 10_000_000
        events.insert(
            at + offset, {**delay, "phase": phase, "mono_ns": mono_ns, "wall": 1.7e9 + mono_ns / 1e9}
        )
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_report_from_canned_runs(tmp_path: Path) -> None:
    root = canned(tmp_path, "run-member-crash", "run-scale-out-chain")
    files = build_report([root], tmp_path / "report")

    names = sorted(p.name for p in files.figures)
    assert names == [
        "coordination-ledger.png",
        "latency-member-crash.png",
        "latency-scale-out-by-one.png",
        "steady-zk-load.png",
        "unowned-partition-seconds.png",
    ]
    for path in files.figures:
        assert path.read_bytes().startswith(PNG_MAGIC)

    page = files.html.read_text()
    assert page.count('src="data:image/png;base64,') == len(files.figures), "every figure embedded"
    assert not re.search(r'src="(?!data:)', page), "nothing loaded from outside the file"
    assert "FAILED: 1 check failure(s) in 1 run(s)" in page
    assert "t-0 owned by a, c at once for 0.500 s" in page

    md = files.markdown.read_text()
    for path in files.figures:
        assert f"](figures/{path.name})" in md
    # Figures without data are named with the reason, not drawn empty.
    assert "- Latency against group size: no scenario family with two or more group sizes" in md
    assert "- Comparison of several result sets: one result directory given" in md
    assert (
        "| member-crash | member crash | coordinator/classic | 1 | 1 | 1/1 | 45 / 3 / 5 | 45.00 | 1.00 | 45.60 [45.60, 45.60] | 93.10 |"
        in md
    )


def test_sweeps_and_several_result_sets_get_their_figures(tmp_path: Path) -> None:
    first = canned(tmp_path, "run-scale-out-chain")
    shutil.copytree(first / "run-scale-out-chain", first / "run-4")
    as_sweep_point(first / "run-scale-out-chain", 2)
    as_sweep_point(first / "run-4", 4)
    second = tmp_path / "other"
    shutil.copytree(DATA / "run-member-crash", second / "a")
    shutil.copytree(DATA / "run-member-crash", second / "b")
    shutil.copytree(DATA / "run-member-crash", first / "c")

    files = build_report([first, second], tmp_path / "report")
    names = {p.name for p in files.figures}
    assert {"latency-vs-size-size-sweep.png", "zk-ops-vs-size-size-sweep.png", "comparison.png"} <= names
    md = files.markdown.read_text()
    assert "chain N + T + 6 + M" in md and "herd N² + 2N" in md, "the caption states the model's counts"
    assert "### Sweep points" in md


def test_an_rtt_sweep_gets_its_latency_against_round_trip_figure(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for rtt_ms in (0, 50):
        shutil.copytree(DATA / "run-scale-out-chain", root / f"rtt-{rtt_ms}")
        as_rtt_point(root / f"rtt-{rtt_ms}", rtt_ms)
    files = build_report([root], tmp_path / "report")
    (figure,) = [p for p in files.figures if p.name == "latency-vs-rtt-rtt-sweep.png"]
    assert figure.read_bytes().startswith(PNG_MAGIC)
    md = files.markdown.read_text()
    assert "](figures/latency-vs-rtt-rtt-sweep.png)" in md
    assert "rtt-sweep: latency against round-trip time" in md
    assert "no scenario family with two or more injected round-trip times" not in md
    assert "rtt-sweep: latency against round-trip time" in files.html.read_text()


def test_report_command(tmp_path: Path) -> None:
    root = canned(tmp_path, "run-member-crash")
    assert [run for _, run in find_runs([root])] == [root / "run-member-crash"]
    result = CliRunner().invoke(report, [str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "report" / "report.html").exists() and (root / "report" / "report.md").exists()
    assert "Checks" in (root / "report" / "report.md").read_text()
    RunStatus(RunState.FAILED, "boom").write(root / "run-member-crash")
    result = CliRunner().invoke(report, [str(root), "--include-failed", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "INCLUDED in the figures" in (tmp_path / "r" / "report.md").read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(report, [str(empty)])
    assert result.exit_code == 2
    assert "no run directories" in result.output


def test_failed_and_aborted_runs_come_first_and_count_in_no_statistic(tmp_path: Path) -> None:
    root = canned(tmp_path, "run-member-crash", "run-scale-out-chain")
    RunStatus(
        RunState.FAILED, "scale-out-by-one [zk/chain #1]: step 1 (add_members): not stable after 1s"
    ).write(root / "run-scale-out-chain")
    shutil.copytree(DATA / "run-member-crash", root / "aborted")
    RunStatus(RunState.ABORTED, "aborted by the user (Ctrl-C) during step 1 (kill_member)").write(
        root / "aborted"
    )

    md = build_report([root], tmp_path / "report").markdown.read_text()
    assert "1 completed run, 2 failed or aborted" in md
    assert md.index("## Runs that did not complete") < md.index("## Checks") < md.index("## Summary")
    assert "| aborted | aborted by the user (Ctrl-C) during step 1 (kill_member) |" in md
    assert "| failed | scale-out-by-one [zk/chain #1]: step 1 (add_members): not stable after 1s |" in md
    assert "left out of every figure, statistic and check" in md
    # Only the completed run is measured and checked: the failed run's double ownership is not counted.
    assert "All 1 run passed the checks" in md
    summary = md[md.index("## Summary") :]
    assert "scale-out-by-one" not in summary
    assert "| member-crash | member crash | coordinator/classic | 1 | 1 | 1/1 |" in summary, (
        "one run, not two"
    )

    md = build_report([root], tmp_path / "with", include_failed=True).markdown.read_text()
    assert "INCLUDED in the figures and statistics" in md
    assert "FAILED: 1 check failure(s) in 1 run(s)" in md
    summary = md[md.index("## Summary") :]
    assert "| member-crash | member crash | coordinator/classic | 2 | 1 | 2 |" in summary, "2 runs, 1 aborted"
    assert "| scale-out-by-one |" in summary


def test_a_run_without_member_events_is_no_pass(tmp_path: Path) -> None:
    root = canned(tmp_path, "run-member-crash")
    events = root / "run-member-crash" / "events.jsonl"
    events.write_text(
        "".join(line + "\n" for line in events.read_text().splitlines() if '"event":"run"' in line)
    )
    md = build_report([root], tmp_path / "report").markdown.read_text()
    assert "0 completed runs, 1 failed or aborted" in md
    assert "no member events in the history" in md
    assert "No completed run: nothing was measured or checked." in md
    assert "passed the checks" not in md


def test_one_scale_per_latency_figure_and_the_smallest_value_readable(tmp_path: Path) -> None:
    assert log_limits([0.29, 7.0]) == pytest.approx((0.2, 10.0))
    assert log_limits([1.0, 45.6]) == pytest.approx((0.5, 50.0))
    # Detection spans 0.05-45 s (log scale on its own), convergence 3.2-45.6 s (linear on its own).
    res = load_results([canned(tmp_path, "run-member-crash")])
    frame = with_triggers(res.rebalances)
    axes = latency_canvas("member-crash", frame).axes
    assert [ax.get_yscale() for ax in axes] == ["log", "log"], "one scale for both panels"
    smallest = frame["detection_ms"].min() / 1e3
    for ax in axes:
        low, high = ax.get_ylim()
        assert low <= smallest and high >= frame["convergence_ms"].max() / 1e3
        ticks = [t for t in ax.get_yticks() if low <= t <= high]
        assert min(ticks) <= smallest, "a labelled tick at or below the smallest value"


def test_the_summary_table_puts_both_designs_durable_writes_side_by_side(tmp_path: Path) -> None:
    res = load_results([canned(tmp_path, "run-member-crash", "run-scale-out-chain")])
    assert set(res.ledger["service"]) == {"zookeeper", "group_coordinator", "offsets_replicas"}
    table = summary_table(res).set_index(["trigger", "mode/variant"])
    # The chain's joins write znodes; these canned coordinator-mode samples predate the brokers'
    # per-partition counters, so their appends are not known (0), never guessed.
    assert int(table.loc[("scale out", "zk/chain"), "durable writes"]) > 0
    assert table.loc[("member crash", "coordinator/classic"), "durable writes"] == "0"


def test_the_demo_s_headline_is_the_ledger_per_rebalance_and_per_idle_second(tmp_path: Path) -> None:
    res = load_results([canned(tmp_path, "run-member-crash", "run-scale-out-chain")])
    table = headline(res).set_index(["trigger", "mode/variant"])
    assert {"requests", "bytes in", "durable writes", "fsyncs", "repl msgs", "n"} <= set(table.columns)
    # Every service of a design summed: the coordinator's group APIs and ZooKeeper's namespace.
    ledger = res.ledger
    crash = ledger[(ledger["kind"] == "episode") & (ledger["action"] == "kill_member")]
    assert int(table.loc[("member crash", "coordinator/classic"), "requests"]) == crash["requests"].sum()
    assert int(table.loc[("scale out", "zk/chain"), "durable writes"]) > 0
    idle = table.loc[IDLE]
    assert not idle.empty, "a row per design's steady windows, as rates"
    assert (idle["n"] >= 1).all()


def test_the_demo_s_latency_table_speaks_the_report_s_names_and_units(tmp_path: Path) -> None:
    res = load_results([canned(tmp_path, "run-member-crash", "run-scale-out-chain")])
    table = latency_headline(res)
    report_columns = list(summary_table(res).columns)
    assert set(table.columns) <= set(report_columns)
    assert {"detection (s)", "convergence (s) [95% CI]", "unowned (partition·s)"} <= set(table.columns)
    assert set(table["trigger"]) == {"cold start", "scale out", "member crash"}
    crash = table[table["trigger"] == "member crash"].iloc[0]
    assert crash["detection (s)"] == "45.00", "seconds, as in the report"
    # Beside the figures: what the members ran with, and detection in sessions of that timing.
    assert crash["timing (session / heartbeat / commit s)"] == "45 / 3 / 5"
    assert crash["detection (× session)"] == "1.00"
    scale_out = table[table["trigger"] == "scale out"].iloc[0]
    assert scale_out["timing (session / heartbeat / commit s)"] == "–", "a run that recorded no timing"
    assert "join median / max / span (ms)" in report_columns


def test_the_timing_label_says_when_nothing_is_committed() -> None:
    from bench.analysis.report.load import timing_label

    timing = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000, "auto_commit_interval_ms": 1000}
    assert timing_label(timing) == "6 / 2 / 1"
    assert timing_label({**timing, "offsets": "none"}) == "6 / 2 / no commits"
    assert timing_label({}) == "–"

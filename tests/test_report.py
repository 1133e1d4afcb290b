"""The report from tiny canned run directories: HTML with embedded figures, Markdown with figure files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from bench.report import build_report, find_runs, report

DATA = Path(__file__).parent / "data"
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
        "| member-crash | member crash | coordinator/classic | 1 | 1 | 1/1 | 45.00 | 45.60 [45.60, 45.60] | 93.10 |"
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
    assert "chain ∝ N" in md and "herd ∝ N²" in md, "the caption states the expected growth"
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

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(report, [str(empty)])
    assert result.exit_code != 0
    assert "no run directories" in result.output

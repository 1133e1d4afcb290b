"""The checker on hand-written histories (tests/data/*.jsonl): each failure kind is found, with details."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.analysis.checker import Check, check, harness_problems
from bench.analysis.replay import Replay, RunHistory

DATA = Path(__file__).parents[1] / "data"


def history(name: str) -> RunHistory:
    return RunHistory.read(DATA / name)


def test_double_ownership_is_flagged_with_its_duration() -> None:
    # c is assigned t-0 at 6.0 s while a still owns it; a revokes it at 6.5 s.
    report = check(history("double_ownership.jsonl"))
    assert not report.passed
    (overlap,) = report.of(Check.DOUBLE_OWNERSHIP)
    assert overlap.group == "g0"
    assert overlap.details["partition"] == ["t", 0]
    assert overlap.details["members"] == ["a", "c"]
    assert overlap.details["start_s"] == 6.0
    assert overlap.details["duration_s"] == 0.5
    assert overlap.details["open_at_end"] is False
    assert "0.500 s" in overlap.message
    assert report.failures == (overlap,), "nothing else is wrong in that history"


def test_a_clean_crash_and_recovery_passes() -> None:
    report = check(history("run-member-crash/events.jsonl"))
    assert report.passed, report.to_dict()
    assert report.examined["stable_points"] >= 2, "stability was actually examined"
    assert report.examined["generations_with_leader_claims"] == 2


def test_a_paused_member_owns_nothing_until_it_reports_after_waking() -> None:
    # b is frozen 10-20 s and still "owns" p-1 by its last report while a takes p-1 at 15 s;
    # after the resume b first reports session_lost: no overlap.
    assert check(history("pause.jsonl")).passed


def test_a_woken_member_acting_on_its_old_assignment_is_a_double_owner() -> None:
    # Same, but b's first report after waking re-asserts p-1 (20.2 s) until its session_lost (20.5 s).
    report = check(history("pause_stale.jsonl"))
    (overlap,) = report.of(Check.DOUBLE_OWNERSHIP)
    assert overlap.details["partition"] == ["p", 1]
    assert overlap.details["members"] == ["a", "b"]
    assert overlap.details["start_s"] == 20.2
    assert overlap.details["duration_s"] == 0.3


def test_two_leaders_in_a_generation_and_an_unowned_partition_when_stable() -> None:
    report = check(history("two_leaders.jsonl"))
    (leaders,) = report.of(Check.MULTIPLE_LEADERS)
    assert leaders.details["generation"] == 1
    assert leaders.details["leaders"] == {"a": ["a"], "b": ["b"]}
    (unowned,) = report.of(Check.UNOWNED_WHEN_STABLE)
    assert unowned.details["partitions"] == [["q", 2]]
    assert unowned.details["generation"] == 1


def test_a_lost_commit_across_a_coordinator_failover() -> None:
    report = check(history("offsets_lost.jsonl"))
    (lost,) = report.of(Check.OFFSET_LOST)
    assert lost.details["partition"] == ["o", 0]
    assert (lost.details["committed"], lost.details["fetched"]) == (42, 40)
    assert lost.details["across_failover"] is True
    assert report.examined["offset_fetches"] == 1
    assert len(report.failures) == 1, "o-1 came back as committed"


def test_events_after_a_kill_and_an_open_overlap_are_reported(tmp_path: Path) -> None:
    lines = (DATA / "run-member-crash/events.jsonl").read_text().splitlines()
    # c keeps reporting after its kill at 10 s, and a and b end the run owning o-0 twice.
    late = {
        "event": "assigned",
        "member": "c",
        "group": "g0",
        "mode": "coordinator",
        "variant": "classic",
        "generation": 1,
        "partitions": [["o", 4]],
        "mono_ns": 20_000_000_000,
        "wall": 0.0,
    }
    twice = {
        **late,
        "member": "b",
        "generation": 2,
        "partitions": [["o", 0], ["o", 3], ["o", 4], ["o", 5]],
        "mono_ns": 57_000_000_000,
    }
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*lines, json.dumps(late), json.dumps(twice)]) + "\n")
    report = check(RunHistory.read(path))
    (late_event,) = report.of(Check.LATE_EVENT)
    assert late_event.details["member"] == "c"
    (overlap,) = report.of(Check.DOUBLE_OWNERSHIP)
    assert overlap.details["open_at_end"] is True
    assert overlap.details["duration_s"] == 3.0, "until the stop action at 60 s"


def test_failures_serialise_for_summary_json() -> None:
    as_dict = check(history("double_ownership.jsonl")).to_dict()
    assert as_dict["passed"] is False
    assert as_dict["failure_counts"] == {"double_ownership": 1}
    assert json.loads(json.dumps(as_dict))["failures"][0]["check"] == "double_ownership"


def test_unreadable_lines_are_kept_as_problems(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "joined"}\nnot json\n')
    h = RunHistory.read(path)
    assert len(h.problems) == 3  # two bad lines, and no run start record
    assert any("line 2" in p for p in h.problems)


def test_a_kill_phase_record_ends_ownership_without_a_kill_action(tmp_path: Path) -> None:
    # A rolling restart with SIGKILL records each kill as phase "kill" of its own action.
    lines = [json.loads(line) for line in (DATA / "run-member-crash/events.jsonl").read_text().splitlines()]
    for d in lines:
        if d.get("action") == "kill_member":
            d["action"] = "rolling_restart"
            d["phase"] = "kill" if d["phase"] == "start" else "end"
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    replay = Replay(RunHistory.read(path))
    for item in replay.items():
        if item.mono_ns > 20_000_000_000:
            break
        replay.apply(item)
    state = replay.groups["g0"]
    assert not state.members["c"].live and state.members["c"].counted == frozenset()
    assert state.unowned == 2, "c's two partitions"


def _escalation_history(tmp_path: Path, *, recorded: bool) -> RunHistory:
    """a owns t-0 and t-1, b t-2 and t-3. A graceful leave of a at 5 s: a ignores SIGTERM, and at
    45 s the harness kills it; only once a's session expired (51 s) does b take a's partitions."""
    g = {"g0": {"topics": {"t": 4}, "mode": "coordinator", "variant": "classic"}}
    parts = {"g0": [["t", p] for p in range(4)]}

    def ev(
        kind: str, member: str, s: float, generation: int | None, partitions: Any = None
    ) -> dict[str, Any]:
        return {
            "event": kind,
            "member": member,
            "group": "g0",
            "mode": "coordinator",
            "variant": "classic",
            "generation": generation,
            "partitions": partitions,
            "mono_ns": int(s * 1e9),
            "leader": "b",
        }

    def act(action: str, phase: str, s: float, targets: list[str], **params: Any) -> dict[str, Any]:
        return {
            "event": "action",
            "action": action,
            "phase": phase,
            "step": 1,
            "group": "g0",
            "targets": targets,
            "params": params,
            "mono_ns": int(s * 1e9),
        }

    lines = [
        {"event": "run", "phase": "start", "groups": g, "partitions": parts, "mono_ns": 0},
        ev("joined", "a", 0.2, 1),
        ev("joined", "b", 0.2, 1),
        ev("assigned", "a", 1.0, 1, [["t", 0], ["t", 1]]),
        ev("assigned", "b", 1.0, 1, [["t", 2], ["t", 3]]),
        act("leave_members", "start", 5.0, ["a"]),
        *(
            [act("leave_members", "kill", 45.0, ["a"], escalated=True, pid=4242, ignored_sigterm_s=40.0)]
            if recorded
            else []
        ),
        act("leave_members", "end", 45.1, ["a"]),
        ev("revoked", "b", 51.0, 1, [["t", 2], ["t", 3]]),
        ev("joined", "b", 51.1, 2),
        ev("assigned", "b", 51.2, 2, [["t", p] for p in range(4)]),
        {
            "event": "action",
            "action": "stop",
            "phase": "start",
            "step": 2,
            "group": None,
            "targets": [],
            "params": {},
            "mono_ns": int(60e9),
        },
        {"event": "run", "phase": "end", "groups": g, "partitions": parts, "mono_ns": int(61e9)},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    return RunHistory.read(path)


def test_an_escalated_stop_is_a_kill_and_a_harness_problem_not_double_ownership(tmp_path: Path) -> None:
    unrecorded = check(_escalation_history(tmp_path, recorded=False))
    assert unrecorded.of(Check.DOUBLE_OWNERSHIP), "without the kill record a looks like a live owner"

    history = _escalation_history(tmp_path, recorded=True)
    report = check(history)
    assert report.passed, report.to_dict()
    (problem,) = harness_problems(history)
    assert "a (pid 4242) ignored SIGTERM for 40.0 s during leave_members (step 1)" in problem

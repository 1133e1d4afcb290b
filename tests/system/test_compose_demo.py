"""``make compose-demo``'s scenarios on real containers (the cluster of docker-compose.yml, members as
containers, faults through the Docker API, a delay through the runner's proxies), and link cuts of
both kinds on the same setup.

Needs a Docker engine and Compose, which ``make compose-setup`` installs and starts (CI's
``.ci/run`` runs it first); without them the test is skipped and says what to run. The test
rebuilds the images first (``compose/setup.sh``; the layer cache makes that seconds), so the
containers run the sources under test. The cluster comes down with its volumes
(``docker compose down -v``) also when the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".state"
SETUP = ROOT / "compose" / "setup.sh"
DEMO = ROOT / "compose" / "demo.sh"
#: Every fault make compose-demo's scenarios inject, by action name.
FAULTS = {"kill_member", "kill_coordinator", "stop_zk", "restart_zk", "set_delay"}

pytestmark = pytest.mark.compose


def missing_prerequisite() -> str | None:
    """Why the compose demo cannot run here, or None."""
    try:
        engine = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no docker CLI or engine ({exc}): run `make compose-setup`"
    if engine.returncode != 0:
        return f"no Docker engine answers ({engine.stderr.strip()[-200:]}): run `make compose-setup`"
    return None


def compose_command() -> list[str]:
    found = subprocess.run([str(ROOT / "compose" / "engine.sh"), "compose"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("no Compose v2 (docker-compose or docker compose): run `make compose-setup`")
    return found.stdout.split()


def events(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line]


#: Link cuts of both kinds on compose: the 10 s blackhole outlasts both modes' sessions (fast: 6 s
#: and 4 s), so it costs members their sessions only if it really holds their traffic.
LINK_CUTS = """
name: compose-link-cuts
description: blackhole and reset cuts through the runner's proxies
cluster: {zk_nodes: 3, brokers: 3}
groups: {count: 1, members: 3, topics: {orders: 6}}
modes:
  - {mode: coordinator, variant: classic}
  - {mode: zk, variant: chain}
profile: fast
repetitions: 1
timeline:
  - action: start_members
  - {action: cut_link, target: zk-0, how: reset, wait: 2}
  - {action: heal_link, target: zk-0}
  - {action: cut_link, target: all, how: blackhole, wait: 10}
  - {action: heal_link, target: all}
  - action: stop
"""


def run_demo(tmp_path: Path, scenarios: str | None = None) -> tuple[str, dict[Path, dict[str, Any]]]:
    """compose/demo.sh (after compose/setup.sh) into ``tmp_path/demo`` on a project of its own;
    the project is brought down with its volumes whatever happens. Returns the output and every
    run's summary, by run directory."""
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(reason)
    setup = subprocess.run([str(SETUP)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-4000:]
    project = f"rl-test-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "COMPOSE_PROJECT": project, "RESULTS_DIR": str(tmp_path), "OUT": "demo"}
    if scenarios is not None:
        env["SCENARIOS"] = scenarios
    down = [*compose_command(), "--env-file", str(STATE_DIR / "compose.env"), "-p", project]
    try:
        result = subprocess.run([str(DEMO)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    finally:
        subprocess.run(
            [*down, "--profile", "bench", "--profile", "members", "down", "-v", "--remove-orphans"],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "CHECK FAILED" not in output and "RUN FAILED" not in output, output[-4000:]
    # Nothing of the project is left behind.
    left = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert left.stdout.strip() == ""
    summaries = {
        p.parent: json.loads(p.read_text()) for p in sorted((tmp_path / "demo").glob("**/summary.json"))
    }
    for run_dir, summary in summaries.items():
        assert summary["status"]["state"] == "completed", run_dir
        assert summary["checks"]["passed"], (run_dir, summary["checks"]["failure_counts"])
        # The figures come from containers: the run says so and names the images it ran.
        target = json.loads((run_dir / "environment.json").read_text())["target"]
        assert target["name"] == "compose" and target["project"] == project, target
        assert {"zk1", "zk2", "zk3"} <= set(target["containers"]), target
        assert all(c["image"] and c["image_id"] for c in target["containers"].values()), target
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    return output, summaries


def injected(run_dir: Path) -> set[str]:
    return {
        str(e["action"]) for e in events(run_dir) if e.get("event") == "action" and e.get("phase") == "end"
    }


@pytest.mark.timeout(1200)
def test_the_compose_demo_runs_on_containers_and_passes_its_checks(tmp_path: Path) -> None:
    _, summaries = run_demo(tmp_path)
    designs = {(s["scenario"], s["mode"], s["variant"]) for s in summaries.values()}
    assert designs == {
        ("compose-demo", "coordinator", "classic"),
        ("compose-demo", "zk", "chain"),
        ("compose-demo-failover", "coordinator", "classic"),
    }
    assert all(s["episodes"] > 0 for s in summaries.values())
    assert set().union(*map(injected, summaries)) >= FAULTS


@pytest.mark.timeout(1200)
def test_link_cuts_hold_and_reset_member_traffic_on_compose(tmp_path: Path) -> None:
    (tmp_path / "link-cuts.yaml").write_text(LINK_CUTS)
    _, summaries = run_demo(tmp_path, "/results/link-cuts.yaml")
    assert {(s["mode"], s["variant"]) for s in summaries.values()} == {
        ("coordinator", "classic"),
        ("zk", "chain"),
    }
    for run_dir in summaries:
        assert injected(run_dir) >= {"cut_link", "heal_link"}
        lost = [e for e in events(run_dir) if e.get("event") == "session_lost"]
        assert lost, f"{run_dir}: a 10 s blackhole of every link cost no member its session"

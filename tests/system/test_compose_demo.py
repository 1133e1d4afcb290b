"""``make compose-demo``'s scenarios on real containers: the cluster of docker-compose.yml, members as
containers, faults through the Docker API and link faults through the runner's proxies.

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


@pytest.mark.timeout(1200)
def test_the_compose_demo_runs_on_containers_and_passes_its_checks(tmp_path: Path) -> None:
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(reason)
    project = f"rl-test-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "COMPOSE_PROJECT": project, "RESULTS_DIR": str(tmp_path), "OUT": "demo"}
    down = [*compose_command(), "--env-file", str(STATE_DIR / "compose.env"), "-p", project]
    setup = subprocess.run([str(SETUP)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-4000:]
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

    summaries = {
        path.parent: json.loads(path.read_text())
        for path in sorted((tmp_path / "demo").glob("**/summary.json"))
    }
    designs = {(s["scenario"], s["mode"], s["variant"]) for s in summaries.values()}
    assert designs == {
        ("compose-demo", "coordinator", "classic"),
        ("compose-demo", "zk", "chain"),
        ("compose-demo-failover", "coordinator", "classic"),
    }
    injected: set[str] = set()
    for run_dir, summary in summaries.items():
        assert summary["status"]["state"] == "completed", run_dir
        assert summary["checks"]["passed"], (run_dir, summary["checks"]["failure_counts"])
        assert summary["episodes"] > 0, run_dir
        # The figures come from containers: the run says so and names the images it ran.
        target = json.loads((run_dir / "environment.json").read_text())["target"]
        assert target["name"] == "compose" and target["project"] == project, target
        assert {"zk1", "zk2", "zk3"} <= set(target["containers"]), target
        assert all(c["image"] and c["image_id"] for c in target["containers"].values()), target
        injected |= {
            str(e["action"])
            for e in events(run_dir)
            if e.get("event") == "action" and e.get("phase") == "end"
        }
    assert injected >= FAULTS, sorted(FAULTS - injected)
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    # Nothing of the project is left behind.
    left = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert left.stdout.strip() == ""

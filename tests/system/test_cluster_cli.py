"""``rebalance-lab cluster up|down`` as a user runs it: separate processes, servers that outlive `up`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from kazoo.client import KazooClient

from bench.services.cluster import STATE_DIR_ENV, cluster, load_state, stop_services
from bench.services.process import pid_alive
from bench.services.zookeeper import ZooKeeperEnsemble
from zk_mode.catalog import read_topics


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("rebalance-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bench"]


def _run(
    *args: str, timeout: float = 120, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_cli(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose servers are stopped after the test, also when `cluster down` never ran."""
    path = tmp_path / "cluster"
    try:
        yield path
    finally:
        state = load_state(path)
        if state is not None:
            stop_services(state)


def test_up_serves_the_catalog_and_down_stops_every_server(state_dir: Path) -> None:
    up = _run(
        "cluster",
        "up",
        "--zk",
        "3",
        "--topic",
        "orders:6",
        "--topic",
        "audit:2",
        "--state-dir",
        str(state_dir),
    )
    assert up.returncode == 0, up.stderr
    lines = up.stdout.strip().splitlines()
    assert len(lines) == 1, up.stdout
    info = json.loads(lines[0])
    assert info["topics"] == {"orders": 6, "audit": 2}
    assert Path(info["state_dir"]) == state_dir.resolve()
    assert len(info["zk"].split(",")) == 3

    state = load_state(state_dir)
    assert state is not None and state["zk"] == info["zk"]
    pids = [(s["pid"], s["match"]) for s in state["services"]]
    assert len(pids) == 3
    assert all(pid_alive(pid, match) for pid, match in pids)  # `up` has exited; the servers run on

    client = KazooClient(hosts=info["zk"], timeout=10.0)
    try:
        client.start(timeout=30)
        assert read_topics(client, "/zkmode", ["orders", "audit"]) == {"orders": 6, "audit": 2}
    finally:
        client.stop()
        client.close()

    again = _run("cluster", "up", "--state-dir", str(state_dir))
    assert again.returncode != 0
    assert "already running" in again.stderr

    down = _run("cluster", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not any(pid_alive(pid, match) for pid, match in pids)
    assert not state_dir.exists()

    nothing = _run("cluster", "down", "--state-dir", str(state_dir))
    assert nothing.returncode == 0
    assert "nothing to stop" in nothing.stdout


def test_down_from_another_directory_finds_the_cluster_up_started(tmp_path: Path) -> None:
    # The default state dir is per user ($XDG_STATE_HOME/rebalance-lab/cluster), whatever the cwd.
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    state_dir = tmp_path / "xdg" / "rebalance-lab" / "cluster"
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    try:
        up = _run("cluster", "up", cwd=here, env=env)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["state_dir"] == str(state_dir)
        services = load_state(state_dir)["services"]
        assert not (here / ".state").exists()
        down = _run("cluster", "down", cwd=elsewhere, env=env)
        assert down.returncode == 0, down.stderr
        assert "stopped zk-" in down.stdout
        assert not any(pid_alive(s["pid"], s["match"]) for s in services)
    finally:
        state = load_state(state_dir)
        if state is not None:
            stop_services(state)


def test_down_with_nothing_recorded_says_where_it_looked_and_how_to_point_elsewhere(tmp_path: Path) -> None:
    result = CliRunner().invoke(cluster, ["down"], env={STATE_DIR_ENV: str(tmp_path / "mine")})
    assert result.exit_code == 0
    assert f"no cluster recorded in {tmp_path / 'mine'}; nothing to stop" in result.output
    assert "--state-dir DIR" in result.output and STATE_DIR_ENV in result.output
    result = CliRunner().invoke(cluster, ["down"], env={STATE_DIR_ENV: None, "XDG_STATE_HOME": str(tmp_path)})
    assert f"no cluster recorded in {tmp_path / 'rebalance-lab' / 'cluster'}" in result.output


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("orders", "expected NAME:PARTITIONS"),
        ("orders:six", "must be a whole number"),
        ("orders:0", "must be at least 1"),
        ("orders:-2", "must be at least 1"),
        (":3", "topic name"),
    ],
)
def test_bad_topic_is_refused_before_anything_starts(tmp_path: Path, topic: str, message: str) -> None:
    result = CliRunner().invoke(cluster, ["up", "--topic", topic, "--state-dir", str(tmp_path / "st")])
    assert result.exit_code == 2
    assert "--topic" in result.output and message in result.output
    assert not (tmp_path / "st").exists()


def test_up_without_zookeeper_says_how_to_get_it(tmp_path: Path) -> None:
    env = {"ZOOKEEPER_CLASSPATH": str(tmp_path / "nowhere.jar")}
    result = CliRunner().invoke(cluster, ["up", "--state-dir", str(tmp_path / "st")], env=env)
    assert result.exit_code == 1
    assert "make setup" in result.output


def test_down_of_a_stale_record_cleans_up(tmp_path: Path) -> None:
    state_dir = tmp_path / "st"
    data = state_dir / "zookeeper" / "zk-1"
    data.mkdir(parents=True)
    no_such_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    service = {"kind": "zookeeper", "name": "zk-1", "pid": no_such_pid, "match": "zoo.cfg", "dir": str(data)}
    record = {"services": [service], "dirs": [str(data.parent)]}
    (state_dir / "cluster.json").write_text(json.dumps(record))
    result = CliRunner().invoke(cluster, ["down", "--state-dir", str(state_dir)])
    assert result.exit_code == 0
    assert "was not running" in result.output
    assert not state_dir.exists()


def test_down_stops_servers_an_interrupted_up_left_without_a_record(state_dir: Path) -> None:
    ensemble = ZooKeeperEnsemble(1, base_dir=state_dir / "zookeeper")
    try:
        ensemble.start()
        ensemble.detach()  # as if `up` died before writing cluster.json
        server = ensemble.servers[0]
        pid = server.pid
        assert pid is not None
        result = CliRunner().invoke(cluster, ["down", "--state-dir", str(state_dir)])
        assert result.exit_code == 0
        assert "left behind" in result.output
        assert not pid_alive(pid, str(server.cfg_path))
    finally:
        ensemble.stop()


def test_up_refuses_to_wipe_a_directory_it_did_not_make(tmp_path: Path) -> None:
    foreign = tmp_path / "zookeeper"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cluster, ["up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "was not made by `cluster up`" in result.output
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_up_with_brokers_serves_kafka_clients_and_down_stops_them(state_dir: Path) -> None:
    from kafka import KafkaAdminClient

    up = _run("cluster", "up", "--brokers", "2", "--topic", "orders:4", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout.strip().splitlines()[-1])
    assert len(info["bootstrap"].split(",")) == 2
    brokers = [s for s in load_state(state_dir)["services"] if s["kind"] == "broker"]
    assert len(brokers) == 2 and all(pid_alive(s["pid"], s["match"]) for s in brokers)

    admin = KafkaAdminClient(bootstrap_servers=info["bootstrap"], request_timeout_ms=10_000)
    try:
        assert len(admin.describe_cluster()["brokers"]) == 2
    finally:
        admin.close()

    down = _run("cluster", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(s["pid"], s["match"]) for s in brokers)


def test_topics_go_into_both_catalogs_of_a_running_cluster(
    zk_server: ZooKeeperEnsemble, zk_root: str
) -> None:
    from coordinator_mode.broker.controller import read_view

    broker_root = zk_root + "-kafka"
    args = ["topics", "--zk", zk_server.connect_string, "--topic", "orders:6", "--topic", "payments:2"]
    result = CliRunner().invoke(cluster, [*args, "--zk-root", zk_root, "--broker-root", broker_root])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["topics"] == {"orders": 6, "payments": 2}
    client = KazooClient(hosts=zk_server.connect_string)
    client.start(timeout=30)
    try:
        assert read_topics(client, zk_root, ["orders", "payments"]) == {"orders": 6, "payments": 2}
        assert read_view(client, broker_root).topics == {"orders": 6, "payments": 2}
    finally:
        client.stop()
        client.close()

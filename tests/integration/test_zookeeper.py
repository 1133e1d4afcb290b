"""The ZooKeeper launcher against the real server: standalone, a 3-node ensemble, faults, classpath."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError
from kazoo.retry import KazooRetry

from bench.services.ports import free_ports
from bench.services.process import pid_alive
from bench.services.zookeeper import ZooKeeperEnsemble, ZooKeeperNotFound, zookeeper_classpath
from tests.conftest import EnsembleFactory, wait_until


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_session_server_is_standalone_and_serves(
    zk_server: ZooKeeperEnsemble, kazoo_client: KazooClient
) -> None:
    server = zk_server.servers[0]
    assert server.four_letter("ruok") == "imok"
    assert server.mode() == "standalone"
    (reading,) = zk_server.mntr()
    assert reading.state == "standalone"
    assert reading.server == server.address
    assert kazoo_client.exists("/") is not None


def test_standalone_lifecycle(tmp_path: Path) -> None:
    ensemble = ZooKeeperEnsemble(1)  # temp dir of its own, removed by stop()
    server = ensemble.servers[0]
    try:
        ensemble.start()
        assert server.is_running()
        assert server.mode() == "standalone"
        assert (server.data_dir / "myid").read_text().strip() == "1"
        assert int(server.pid_path.read_text()) == server.pid
        pid = server.pid
        assert pid is not None

        server.pause()
        with pytest.raises(OSError):  # the kernel accepts, the frozen JVM never answers
            server.four_letter("ruok", timeout=0.5)
        server.resume()
        wait_until(lambda: server.mode() == "standalone", timeout=30, what="server to answer after SIGCONT")
    finally:
        ensemble.stop()
    assert not server.is_running()
    assert not pid_alive(pid)
    assert not ensemble.base_dir.exists()
    ensemble.stop()  # idempotent
    with pytest.raises(OSError):
        server.four_letter("ruok", timeout=1.0)


def test_kill_is_seen_as_not_running(zk_ensemble_factory: EnsembleFactory) -> None:
    ensemble = zk_ensemble_factory(1)
    server = ensemble.servers[0]
    server.kill()
    assert not server.is_running()
    assert ensemble.mntr() == []  # one reading per running server


def test_three_nodes_elect_a_leader_survive_a_stop_and_rejoin(zk_ensemble_factory: EnsembleFactory) -> None:
    ensemble = zk_ensemble_factory(3)
    modes = sorted(s.mode() or "" for s in ensemble.servers)
    assert modes == ["follower", "follower", "leader"]
    assert ensemble.connect_string == ",".join(f"127.0.0.1:{s.client_port}" for s in ensemble.servers)

    client = KazooClient(hosts=ensemble.connect_string, timeout=10.0)
    retry = KazooRetry(max_tries=-1, deadline=30, ignore_expire=False)
    try:
        client.start(timeout=30)
        client.create("/survive", b"before")

        leader = ensemble.leader()
        assert leader is not None
        stopped = ensemble.servers.index(leader)
        ensemble.stop_server(stopped)
        assert not leader.is_running()
        ensemble.wait_for_quorum(timeout=60)
        new_modes = sorted(s.mode() or "" for s in ensemble.servers if s.is_running())
        assert new_modes == ["follower", "leader"]

        # The session survives (10 s timeout); the client reconnects to a live server and writes.
        retry(client.set, "/survive", b"during")
        assert retry(client.get, "/survive")[0] == b"during"

        ensemble.restart_server(stopped, timeout=60)
        assert leader.is_running()
        assert leader.mode() == "follower"  # the new leader keeps leading; the old one rejoins
        direct = KazooClient(hosts=leader.address, timeout=10.0)
        try:
            direct.start(timeout=30)
            direct.sync("/survive")
            assert direct.get("/survive")[0] == b"during"  # it caught up with what it missed
        finally:
            direct.stop()
            direct.close()
    except (ConnectionLoss, SessionExpiredError):
        pytest.fail(f"client lost its session: {ensemble.log_tails(20)}")
    finally:
        client.stop()
        client.close()


def test_classpath_from_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/usr/share/java/zookeeper.jar").is_file():
        pytest.skip("Debian's zookeeper package is not installed")
    monkeypatch.delenv("ZOOKEEPER_CLASSPATH", raising=False)
    monkeypatch.delenv("ZOOKEEPER_HOME", raising=False)
    entries = zookeeper_classpath().split(":")
    assert entries[0] == "/usr/share/java/zookeeper.jar"
    assert "/usr/share/java/slf4j-simple.jar" in entries


def test_classpath_pointing_nowhere_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOOKEEPER_CLASSPATH", str(tmp_path / "nowhere" / "zookeeper.jar"))
    with pytest.raises(ZooKeeperNotFound, match=r"make setup.*ZOOKEEPER_HOME"):
        zookeeper_classpath()
    ensemble = ZooKeeperEnsemble(1, base_dir=tmp_path / "zk")
    with pytest.raises(ZooKeeperNotFound):
        ensemble.start()
    assert not any(s.is_running() for s in ensemble.servers)

    monkeypatch.delenv("ZOOKEEPER_CLASSPATH")
    monkeypatch.setenv("ZOOKEEPER_HOME", str(tmp_path))
    with pytest.raises(ZooKeeperNotFound, match="ZOOKEEPER_HOME"):
        zookeeper_classpath()


def test_start_moves_to_new_ports_when_one_was_taken(zk_ensemble_factory: EnsembleFactory) -> None:
    ensemble = zk_ensemble_factory(1, start=False)
    taken = ensemble.servers[0].client_port
    with socket.socket() as blocker:  # another process grabbed the port after free_ports chose it
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        ensemble.start(timeout=60)
        assert ensemble.servers[0].client_port != taken
        assert ensemble.servers[0].mode() == "standalone"

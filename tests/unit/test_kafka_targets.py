"""The real-Kafka targets offline: a profile's knobs become Kafka's properties, scenarios name the
targets and refuse what does not apply, the Java cache is located and its absence explained."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.analysis.checker import LEADER_VARIANTS
from bench.backends import ClusterSpec
from bench.backends.compose import ComposeBackend, ComposeError
from bench.experiment.loading import load_scenario
from bench.experiment.scenario import PROFILES, ScenarioError, member_mode
from bench.services.java import ROOT, java_module
from bench.services.kafka_config import KAFKA_TARGETS, KafkaSettings, kafka_target, server_properties

SCENARIO: dict[str, Any] = {
    "name": "probe",
    "cluster": {"zk_nodes": 1, "brokers": 2},
    "groups": {"members": 3, "topics": {"orders": 6}},
    "modes": [{"mode": "kafka", "variant": "3.9-classic"}],
    "profile": "fast",
    "timeline": [{"action": "start_members"}, {"action": "kill_coordinator"}, {"action": "stop"}],
}


def scenario(tmp_path: Path, **top: Any) -> Any:
    raw = copy.deepcopy(SCENARIO) | top
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_scenario(path)


def props(target: str, size: int = 3, **settings: int) -> dict[str, str]:
    return server_properties(
        kafka_target(target),
        2,
        size,
        9092,
        19092,
        9093,
        Path("/data"),
        KafkaSettings(**settings),
        zk_connect="127.0.0.1:2181/realkafka/x",
        controller_ports={1: 9101, 2: 9102, 3: 9103},
    )


def test_the_profile_knobs_become_kafkas_properties() -> None:
    p = props("3.9-classic", initial_rebalance_delay_ms=PROFILES["fast"].group_initial_rebalance_delay_ms)
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["group.min.session.timeout.ms"] == "6000"
    assert p["zookeeper.connect"] == "127.0.0.1:2181/realkafka/x"
    assert p["zookeeper.session.timeout.ms"] == str(KafkaSettings().zk_session_timeout_ms)
    assert p["offsets.topic.num.partitions"] == "50"
    assert p["broker.id"] == "2" and "process.roles" not in p


def test_replication_of_the_internal_topics_is_capped_by_the_cluster() -> None:
    assert props("3.9-classic", size=1)["offsets.topic.replication.factor"] == "1"
    assert props("3.9-classic", size=5)["offsets.topic.replication.factor"] == "3"  # Kafka's default


def test_kraft_brokers_are_combined_voters_with_the_targets_protocols() -> None:
    p = props("4.0-consumer")
    assert p["process.roles"] == "broker,controller"
    assert p["node.id"] == "2"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert "CONTROLLER://127.0.0.1:9102" in p["listeners"]
    assert p["group.coordinator.rebalance.protocols"] == "classic,consumer"
    assert props("4.0-classic")["group.coordinator.rebalance.protocols"] == "classic"
    assert p["broker.session.timeout.ms"] == str(KafkaSettings().zk_session_timeout_ms)
    assert "zookeeper.connect" not in p


def test_clients_are_told_the_proxy_and_brokers_replicate_beside_it() -> None:
    p = props("3.9-classic")
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,INTERNAL://127.0.0.1:9093"
    assert p["inter.broker.listener.name"] == "INTERNAL"


def test_a_kafka_mode_runs_our_members_of_its_protocol(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        modes=[{"mode": "kafka", "variant": "all"}, {"mode": "coordinator"}],
        cluster={"zk_nodes": 1, "brokers": 3},
    )
    assert [str(m) for m in s.modes] == ["kafka/3.9-classic", "kafka/4.0-classic", "coordinator/classic"]
    assert member_mode("kafka", "3.9-classic") == ("coordinator", "classic")
    assert s.profile.session_timeout_ms("kafka") == s.profile.coordinator_session_timeout_ms


def test_a_kafka_variant_names_its_members_and_an_unknown_one_is_refused_naming_them(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        modes=[{"mode": "kafka", "variant": v} for v in ("3.9-java", "4.0-consumer")],
        cluster={"zk_nodes": 1, "brokers": 3},
    )
    assert [str(m) for m in s.modes] == ["kafka/3.9-java", "kafka/4.0-consumer"]
    assert member_mode("kafka", "3.9-java") == ("coordinator", "java")
    assert member_mode("kafka", "4.0-consumer") == ("coordinator", "java")
    # KIP-848's protocol is the Java member's option on top of the profile's, and only there
    assert s.profile.member_settings("kafka", "4.0-consumer")["options"]["protocol"] == "consumer"
    assert "protocol" not in s.profile.member_settings("kafka", "4.0-java")["options"]
    assert "protocol" not in s.profile.member_settings("kafka", "3.9-classic")["options"]
    with pytest.raises(ScenarioError, match=r"modes\[0\].variant: expected one of 3.9-classic, 3.9-java, "):
        scenario(tmp_path, modes=[{"mode": "kafka", "variant": "2.8"}])


def test_the_checker_expects_a_leader_on_classic_targets_only() -> None:
    assert ("kafka", "3.9-java") in LEADER_VARIANTS and ("kafka", "4.0-classic") in LEADER_VARIANTS
    assert ("kafka", "4.0-consumer") not in LEADER_VARIANTS


def test_stop_zk_is_refused_on_kraft_and_allowed_on_zookeeper_mode(tmp_path: Path) -> None:
    timeline = [{"action": "start_members"}, {"action": "stop_zk", "server": 0}, {"action": "stop"}]
    assert scenario(tmp_path, timeline=timeline).timeline[1].param("server") == 0
    with pytest.raises(ScenarioError, match="KRaft brokers keep their metadata without ZooKeeper"):
        scenario(tmp_path, timeline=timeline, modes=[{"mode": "kafka", "variant": "4.0-classic"}])


def test_a_kafka_mode_needs_brokers(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cluster.brokers: expected at least 1 broker"):
        scenario(tmp_path, cluster={"zk_nodes": 1, "brokers": 0})


def test_compose_refuses_a_real_kafka_target() -> None:
    spec = ClusterSpec(1, 1, Path("/tmp"), {"orders": 1}, "/zkmode/x", 0, False, kafka="3.9-classic")
    with pytest.raises(ComposeError, match="--target local"):
        ComposeBackend(spec, client=object())


def test_every_target_has_a_maven_module() -> None:
    for target in KAFKA_TARGETS.values():
        assert (ROOT / "java" / target.module / "pom.xml").is_file()
    assert (ROOT / "java" / "jolokia" / "pom.xml").is_file()


def test_an_unbuilt_or_unknown_module_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBALANCE_LAB_JAVA_CACHE", str(tmp_path))
    if shutil.which("java") is not None:  # with Java present, the reason is the missing build
        assert "make setup" in str(java_module("kafka-3.9").reason)
        assert "java/nonexistent/pom.xml" in str(java_module("nonexistent").reason)
    assert not java_module("kafka-3.9").available


def test_setup_without_java_and_maven_says_so_and_succeeds(tmp_path: Path) -> None:
    """java/setup.sh on a PATH with the shell tools but no java or mvn."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "basename", "cat", "sed", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    done = subprocess.run(
        ["/bin/bash", str(ROOT / "java" / "setup.sh")],
        env={**os.environ, "PATH": str(bin_dir), "REBALANCE_LAB_JAVA_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "Java 17 and Maven not found: the real-Kafka targets and the Java members are skipped" in done.stdout
    )
    assert not (tmp_path / "cache").exists()


def test_a_coordinator_kill_on_kraft_needs_a_quorum_that_survives_it(tmp_path: Path) -> None:
    kraft = [{"mode": "kafka", "variant": "4.0-classic"}]
    with pytest.raises(ScenarioError, match="needs cluster.brokers >= 3"):
        scenario(tmp_path, modes=kraft)
    assert scenario(tmp_path, modes=kraft, cluster={"zk_nodes": 1, "brokers": 3}).cluster.brokers == 3


def test_run_leaves_out_unbuilt_kafka_targets_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.experiment.runner import without_unbuilt_kafka

    monkeypatch.setenv("REBALANCE_LAB_JAVA_CACHE", str(tmp_path / "empty"))
    s = scenario(tmp_path, modes=[{"mode": "kafka", "variant": "3.9-classic"}, {"mode": "coordinator"}])
    said: list[str] = []
    plan = without_unbuilt_kafka([(s, [("kafka", "3.9-classic"), ("coordinator", "classic")])], said.append)
    assert plan == [(s, [("coordinator", "classic")])]
    assert len(said) == 1 and said[0].startswith("skipping probe [kafka/3.9-classic]: ")
    assert without_unbuilt_kafka([(s, [("kafka", "3.9-classic")])], said.append) == []

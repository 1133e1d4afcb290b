"""docker-compose.yml, without a Docker engine: the Compose spec's schema, and what no schema knows.

The schema check runs check-jsonschema's vendored copy of the Compose specification (offline). The
rest holds the file to the code: its commands are real ``rebalance-lab`` subcommands with real
flags, the variables it sets for our services are read by our options, the ZooKeeper ensemble is
consistent, and the services are what :class:`bench.backends.compose.ComposeLayout` expects.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from bench.backends.compose import ComposeLayout
from bench.cli import main
from bench.services.zookeeper import FOUR_LETTER_WHITELIST
from coordinator_mode.broker.cli import config_from_args
from coordinator_mode.broker.config import BrokerConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OUR_IMAGE = "rebalance-lab:latest"
ZK_IMAGE = "zookeeper:3.8"
ZK_ENTRYPOINT = ROOT / "compose" / "zookeeper" / "entrypoint.sh"
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and << merges


def interpolated(value: str) -> str:
    """A value as compose runs it when the variable is unset: ``${VAR:-default}`` -> default."""
    return _DEFAULTED.sub(lambda m: m.group(2), value)


def ours(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if s.get("image") == OUR_IMAGE}


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_file_follows_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version" not in compose()  # obsolete in the Compose specification


def test_the_schema_check_does_catch_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    service = "  zk1:\n    <<: *zookeeper\n"
    assert service in text
    broken.write_text(text.replace(service, service + "    restart_policy: always\n"))
    result = check_jsonschema(broken)
    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def resolve_command(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The click command ``rebalance-lab ARGV`` runs and the arguments it gets; ``main``'s own options parsed."""
    assert argv[0] == "rebalance-lab", argv
    ctx = main.make_context("rebalance-lab", [interpolated(a) for a in argv[1:]], resilient_parsing=True)
    command: click.Command = main
    with warnings.catch_warnings():  # Click 9 folds protected_args (the subcommand) into args
        warnings.simplefilter("ignore", DeprecationWarning)
        args = [*ctx.protected_args, *ctx.args]
    while isinstance(command, click.Group):
        name, *args = args
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`{name}` is not a subcommand of `{command.name}` in {argv}"
        command = sub
    return command, args


def test_every_command_is_a_real_subcommand_with_real_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    services = ours(compose()["services"])
    assert set(services) == {"broker1", "broker2", "broker3", "topics", "member", "bench"}
    for name, service in services.items():
        command, args = resolve_command(service["command"])
        with monkeypatch.context() as env:
            for key, value in (service.get("environment") or {}).items():
                env.setenv(key, interpolated(str(value)))
            # Parsing for real: unknown flags, bad values and missing required options fail here.
            with command.make_context(command.name or name, args):
                pass
    commands = {name: s["command"] for name, s in services.items()}
    # The member service takes everything from its environment.
    assert commands["member"] == ["rebalance-lab", "member"]


def member_envvars() -> set[str]:
    names: set[str] = set()
    for command in _walk(main):
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def _walk(command: click.Command) -> list[click.Command]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        subs = [command.get_command(ctx, name) for name in command.list_commands(ctx)]
        return [command, *(c for sub in subs if sub is not None for c in _walk(sub))]
    return [command]


def test_every_variable_set_for_our_services_is_read_by_an_option() -> None:
    read = member_envvars()
    for name, service in ours(compose()["services"]).items():
        unread = set(service.get("environment") or {}) - read
        assert not unread, f"{name} sets variables no option reads: {sorted(unread)}"
    member = compose()["services"]["member"]
    assert {"REBALANCE_LAB_MODE", "REBALANCE_LAB_GROUP", "REBALANCE_LAB_TOPICS"} <= set(member["environment"])
    assert {"REBALANCE_LAB_ZK", "REBALANCE_LAB_BOOTSTRAP"} <= set(member["environment"])


def test_the_member_service_is_defined_once_by_an_anchor() -> None:
    text = COMPOSE_FILE.read_text()
    assert re.search(r"^x-member: &member$", text, re.MULTILINE)
    assert re.search(r"^  member: \*member$", text, re.MULTILINE)
    assert compose()["services"]["member"] == compose()["x-member"]


def brokers() -> dict[str, BrokerConfig]:
    services = compose()["services"]
    configs = {}
    for name in ComposeLayout().broker_services:
        command, args = resolve_command(services[name]["command"])
        assert command.name == "broker"
        configs[name] = config_from_args(args)
    return configs


def test_zookeeper_servers_match_the_services_and_their_ids() -> None:
    services = compose()["services"]
    layout = ComposeLayout()
    zk = {name: s for name, s in services.items() if ZK_IMAGE in str(s.get("image", ""))}
    assert sorted(zk) == sorted(layout.zk_services)
    # The official image unless compose/setup.sh chose the one it built (compose.env's ZK_IMAGE).
    assert {s["image"] for s in zk.values()} == {"${ZK_IMAGE:-zookeeper:3.8}"}
    ids = {name: int(s["environment"]["ZOO_MY_ID"]) for name, s in zk.items()}
    assert len(set(ids.values())) == len(ids)
    for name, s in zk.items():
        servers = dict(entry.split("=", 1) for entry in s["environment"]["ZOO_SERVERS"].split())
        # server.<id>=<service>:<quorum port>:<election port>;<client port>, for every node
        assert servers == {
            f"server.{ids[n]}": f"{n}:2888:3888;{layout.zk_client_port}" for n in layout.zk_services
        }, name
        assert s.get("restart") == "no", name  # the harness, not Docker, restarts a stopped server


def test_the_four_letter_words_the_harness_reads_are_whitelisted() -> None:
    for name in ComposeLayout().zk_services:
        s = compose()["services"][name]
        whitelist = set(s["environment"]["ZOO_4LW_COMMANDS_WHITELIST"].split(","))
        assert {"mntr", "srvr", "ruok"} <= whitelist
        assert set(FOUR_LETTER_WHITELIST.split(",")) <= whitelist  # as the local launcher's
        check = " ".join(s["healthcheck"]["test"])
        # The healthcheck proves quorum membership with srvr (whitelisted), not just an answer.
        assert "srvr" in check and "leader|follower" in check


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's named volumes and plain bind mounts: source -> path in the container (a source
    given by a variable, whose default holds a colon, is left out)."""
    return {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", []) if not v.startswith("${")}


def test_brokers_advertise_their_service_and_each_has_a_volume_of_its_own() -> None:
    services = compose()["services"]
    configs = brokers()
    layout = ComposeLayout()
    assert sorted(c.broker_id for c in configs.values()) == [1, 2, 3]
    bench = mounts(services["bench"])
    for name, config in configs.items():
        assert config.host == "0.0.0.0"
        assert config.advertised == (name, config.port)
        assert config.zk_connect == "zk1:2181,zk2:2181,zk3:2181" == layout.zk_connect
        # The healthcheck watches the counters this broker writes.
        assert str(config.stats_dir / "broker_stats.json") in services[name]["healthcheck"]["test"]
        own = mounts(services[name])[name]  # the volume named after the broker
        assert config.stats_dir.is_relative_to(own)
        # bench reads the counters at the path the broker's command names (ComposeBackend does).
        assert bench[name] == own
        # Its replicas of __consumer_offsets are its own too: no log directory is shared.
        assert config.log_dir.is_relative_to(own)
    assert len({mounts(services[n])[n] for n in configs}) == len(configs)
    assert set(compose()["volumes"]) == set(configs)
    # bench drives faults through the socket and writes results where compose/demo.sh says.
    assert bench["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert "${RESULTS_DIR:-./results}:/results" in services["bench"]["volumes"]


def test_services_reach_only_each_other() -> None:
    """No published port, and the project network has no route out of the machine."""
    file = compose()
    assert all("ports" not in s and "network_mode" not in s for s in file["services"].values())
    assert file["networks"]["default"]["internal"] is True
    # Without a DNS server outside, a stopped service's name would take Docker's 10 s to fail.
    assert all(s["dns_opt"] == ["timeout:1", "attempts:1"] for s in file["services"].values())


def test_the_local_zookeeper_image_reads_every_zoo_setting_the_file_sets() -> None:
    """compose/zookeeper/entrypoint.sh writes zoo.cfg from the official image's variables; a
    variable it does not read would silently fall back to a default there."""
    read = set(re.findall(r"\$\{?(ZOO_\w+)", ZK_ENTRYPOINT.read_text()))
    for name in ComposeLayout().zk_services:
        unread = set(compose()["services"][name]["environment"]) - read
        assert not unread, f"{name}: the entrypoint ignores {sorted(unread)}"


@pytest.mark.parametrize("service", ["member", "bench", "topics"])
def test_members_and_bench_run_the_brokers_image(service: str) -> None:
    services = compose()["services"]
    assert services[service]["image"] == services["broker1"]["image"] == OUR_IMAGE
    assert services[service]["build"]["context"] == "."
    # The official Python image unless compose/setup.sh builds on the local Debian base.
    assert services[service]["build"]["args"] == {"BASE_IMAGE": "${BASE_IMAGE:-python:3.11-slim}"}


def test_bench_runs_against_compose_and_members_know_every_server() -> None:
    services = compose()["services"]
    command, args = resolve_command(services["bench"]["command"])
    assert command.name == "run"
    with command.make_context("run", args) as ctx:
        assert ctx.params["target"] == "compose"
    env = services["member"]["environment"]
    assert env["REBALANCE_LAB_ZK"] == ComposeLayout().zk_connect
    assert env["REBALANCE_LAB_BOOTSTRAP"] == ",".join(
        "{}:{}".format(*c.advertised) for c in brokers().values()
    )


def test_the_image_holds_every_package_the_project_installs() -> None:
    """The Dockerfile copies each top-level package of pyproject's package list (a package missing
    from the image fails only when a container starts)."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages and packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"

"""Graceful leaves always finish: many SIGTERMs to member processes that host many members, timed so
that they land on heartbeats and offset commits in flight, and members whose servers are gone.

A member's leave is bounded (:data:`group_api.LEAVE_BOUND_S` plus, in coordinator mode, one
request timeout): every process must exit 0 within it, with a ``left`` event from each of its
members. Before the fix a cancelled routine whose answer arrived in the same loop iteration went on
forever (``asyncio.wait_for`` on Python 3.11 returns the answer instead of raising the
cancellation), so a process sometimes ignored SIGTERM until it was killed.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest

from bench.experiment.history import History
from bench.services.members import MemberProcess
from coordinator_mode.waiting import wait_within
from group_api import LEAVE_BOUND_S, EventKind
from tests.conftest import running_brokers, wait_until

TOPIC = "orders"
PARTITIONS = 8
REQUEST_TIMEOUT_MS = 3_000
#: Our members' leave bound in coordinator mode: the routines' grace plus one LeaveGroup.
COORDINATOR_BOUND_S = LEAVE_BOUND_S + REQUEST_TIMEOUT_MS / 1000


def spawn(history: History, log: Path, *args: str) -> MemberProcess:
    return MemberProcess(["member", "--topic", TOPIC, *args], history, log)


def terminate_within(proc: MemberProcess, bound_s: float) -> int:
    """SIGTERM and wait: the exit code, or a test failure naming what the member last logged."""
    proc.proc.terminate()
    try:
        return proc.proc.wait(bound_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        tail = proc.log_path.read_text()[-2000:] if proc.log_path else ""
        pytest.fail(f"member process {proc.pid} ignored SIGTERM for {bound_s:.1f} s; its log:\n{tail}")


def left_members(history: History) -> set[str]:
    return {e.member for e in history.snapshot() if e.kind is EventKind.LEFT}


def test_coordinator_leaves_finish_under_heartbeats_and_commits(zk_server, tmp_path: Path) -> None:
    """Six rounds of three processes of eight members each, with heartbeats and commits every 40 ms
    so that most SIGTERMs find a request in flight; every process exits 0 within the bound."""
    with running_brokers(zk_server.connect_string, 1, tmp_path / "brokers", topics={TOPIC: PARTITIONS}) as c:
        history = History()
        common = [
            "--mode",
            "coordinator",
            "--bootstrap",
            c.bootstrap,
            "--session-timeout-ms",
            "6000",
            "--heartbeat-interval-ms",
            "40",
            "--option",
            "auto_commit_interval_ms=40",
            "--option",
            f"request_timeout_ms={REQUEST_TIMEOUT_MS}",
            "--count",
            "8",
        ]
        for round_ in range(6):
            group = f"leave-{round_}"
            procs = [
                spawn(
                    history,
                    tmp_path / f"{group}-{i}.log",
                    "--group",
                    group,
                    "--name",
                    f"{group}-p{i}",
                    *common,
                )
                for i in range(3)
            ]
            try:
                wait_until(
                    lambda g=group, ps=procs: (
                        all(len(p.member_ids) == 8 for p in ps)
                        and any(
                            e.kind is EventKind.OFFSETS_COMMITTED and e.group == g for e in history.snapshot()
                        )
                    ),
                    60,
                    what=f"{group}: every member started, and a commit",
                )
                codes = [terminate_within(p, COORDINATOR_BOUND_S) for p in procs]
            finally:
                for p in procs:
                    p.close()
            assert codes == [0, 0, 0]
            members = {m for p in procs for m in p.member_ids}
            assert len(members) == 24
            # The processes are gone; their last lines may still be on the way through the readers.
            wait_until(lambda m=members: m <= left_members(history), 10, what=f"{group}: 'left' from all")
            assert members <= left_members(history), (
                f"{group}: no 'left' from {members - left_members(history)}"
            )


@pytest.mark.parametrize("mode", ["zk", "coordinator"])
def test_member_whose_servers_are_gone_exits_promptly(mode: str, zk_ensemble_factory, tmp_path: Path) -> None:
    """The servers stop under a running member: SIGTERM still ends it within the bound, and its log
    says what it could not do."""
    ensemble = zk_ensemble_factory(1)
    history = History()
    log = tmp_path / "member.log"
    with running_brokers(ensemble.connect_string, 1, tmp_path / "brokers", topics={TOPIC: PARTITIONS}) as c:
        if mode == "zk":
            from kazoo.client import KazooClient

            from zk_mode.catalog import write_topics

            client = KazooClient(hosts=ensemble.connect_string)
            client.start(10)
            try:
                write_topics(client, "/zkmode", {TOPIC: PARTITIONS})
            finally:
                client.stop()
                client.close()
            args = ["--mode", "zk", "--zk", ensemble.connect_string, "--session-timeout-ms", "6000"]
        else:
            args = [
                "--mode",
                "coordinator",
                "--bootstrap",
                c.bootstrap,
                "--option",
                "request_timeout_ms=3000",
            ]
        proc = spawn(history, log, "--group", "g", *args)
        try:
            wait_until(
                lambda: any(e.kind is EventKind.ASSIGNED for e in history.snapshot()), 60, what="assigned"
            )
            c.stop()
            ensemble.stop()
            code = terminate_within(proc, LEAVE_BOUND_S + 3.0)
        finally:
            proc.close()
    assert code == 0, log.read_text()[-2000:]
    assert proc.member_ids and set(proc.member_ids) <= left_members(history)
    text = log.read_text()
    expected = "ZooKeeper" if mode == "zk" else "LeaveGroup"
    assert expected in text and "unreachable" in text, text[-2000:]


@pytest.mark.parametrize("completes_with", ["result", "exception"])
def test_a_cancelled_wait_raises_even_when_its_answer_arrives_in_the_same_iteration(
    completes_with: str,
) -> None:
    """The root cause, without IO: the answer lands and the leave cancels the waiting routine in one
    loop iteration. ``asyncio.wait_for`` on Python 3.11 returns the answer (or raises its error)
    here, so the routine ran on; :func:`wait_within` must raise the cancellation."""

    async def scenario() -> None:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(wait_within(future, 10))
        await asyncio.sleep(0)  # the task now waits on the future
        if completes_with == "result":
            future.set_result("answer")
        else:
            future.set_exception(ConnectionError("closed by the leave"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_coordinator_member_without_brokers_says_so_and_gives_up_as_told(tmp_path: Path) -> None:
    """Nothing listens at the bootstrap address: the member warns on stderr once
    ``bootstrap_warn_ms`` passed, and with ``bootstrap_give_up_ms`` it gives up and exits 1."""
    with socket.socket() as probe:  # a port that was free a moment ago and nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "member.log"
    proc = spawn(
        History(),
        log,
        "--group",
        "g",
        "--mode",
        "coordinator",
        "--bootstrap",
        f"127.0.0.1:{port}",
        "--option",
        "bootstrap_warn_ms=500",
        "--option",
        "bootstrap_give_up_ms=3000",
    )
    try:
        code = proc.proc.wait(60)
    finally:
        proc.close()
    text = log.read_text()
    assert code == 1, text[-2000:]
    assert f"cannot reach any broker of 127.0.0.1:{port}" in text and "still retrying" in text
    assert "every member gave up" in text

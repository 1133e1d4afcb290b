"""The one launcher of the harness's child processes, and stopping processes by pid.

:class:`ChildProcess` is what ZooKeeper servers, brokers and member hosts have in common: a child in
its own session (so Ctrl-C of our terminal does not reach it behind our back), output to a log or a
pipe, and the faults a run injects: SIGTERM with a SIGKILL after a grace period, SIGKILL, SIGSTOP
that returns once every thread is frozen, SIGCONT.

The functions below stop processes by pid, for services that outlive the command that started them.
``rebalance-lab cluster up`` leaves its servers running and records their pids; ``cluster down`` (a
different process, maybe much later) stops them. A pid may have been reused by then, so every call
takes a ``match`` string that must occur in the process's command line (e.g. its config file path)
before we signal it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _state(stat_path: Path) -> str | None:
    try:
        stat = stat_path.read_text()
    except OSError:
        return None
    # The state follows the parenthesised command name, which may itself contain spaces or ')'.
    return stat[stat.rfind(")") + 2 :][:1] or None


def _is_zombie(pid: int) -> bool:
    return _state(Path(f"/proc/{pid}/stat")) == "Z"


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (SIGSTOP is delivered asynchronously, thread by thread)."""
    # A thread that exits meanwhile has no state any more: skip it.
    states = [st for task in Path(f"/proc/{pid}/task").glob("*") if (st := _state(task / "stat"))]
    return bool(states) and all(st in ("T", "t") for st in states)


def freeze(pid: int, timeout: float = 10.0) -> None:
    """SIGSTOP ``pid`` and return once every thread has stopped (until then it could still act)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and not all_threads_stopped(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} did not stop within {timeout:.0f}s of SIGSTOP")
        time.sleep(0.005)


def pid_alive(pid: int, match: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``match`` is given, its command line contains it."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else; the match below decides
    # An orphan we killed may linger as a zombie until its new parent reaps it: it is gone for us.
    if _is_zombie(pid):
        return False
    if match is None:
        return True
    cmdline = _cmdline(pid)
    return cmdline is not None and match in cmdline


def signal_pid(pid: int, sig: int, match: str | None = None) -> bool:
    """Send ``sig`` if the process is alive (and matches); False when there was nothing to signal."""
    if not pid_alive(pid, match):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_pid_gone(pid: int, timeout: float, match: str | None = None) -> bool:
    """Poll until the process is gone; True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid, match):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate_pid(pid: int, match: str | None = None, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds. True if the process was running."""
    if not signal_pid(pid, signal.SIGTERM, match):
        return False
    # A paused (SIGSTOPped) process cannot act on SIGTERM until it is continued.
    signal_pid(pid, signal.SIGCONT, match)
    if not wait_pid_gone(pid, grace, match):
        log.warning("pid %d did not exit %.0fs after SIGTERM; sending SIGKILL", pid, grace)
        signal_pid(pid, signal.SIGKILL, match)
        wait_pid_gone(pid, 10.0, match)
    return True


class ChildProcess:
    """One child process of ours, in its own session; ``name`` is how log lines call it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def spawn(
        self,
        command: Sequence[str],
        stdout: IO[Any] | int | None,
        stderr: IO[Any] | int | None = subprocess.STDOUT,
        cwd: Path | None = None,
        text: bool = False,
    ) -> subprocess.Popen[Any]:
        self.proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=text,
            start_new_session=True,  # Ctrl-C of our terminal must not kill it behind our back
        )
        return self.proc

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: int) -> None:
        """Signal the child if it runs."""
        if self.proc is not None and self.running():
            self.proc.send_signal(sig)

    def terminate(
        self, grace: float, on_escalate: Callable[[], None] | None = None, wake: bool = True
    ) -> int | None:
        """SIGTERM (and SIGCONT, so a paused child can act on it, unless not ``wake``); SIGKILL when it
        has not exited after ``grace`` seconds (``on_escalate`` runs just before). Its exit code."""
        if self.proc is None:
            return None
        if self.running():
            self.proc.terminate()
            if wake:
                self.proc.send_signal(signal.SIGCONT)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %.0fs; killing it", self.name, grace)
            if on_escalate is not None:
                on_escalate()
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> int | None:
        """SIGKILL and reap: a crash, no clean shutdown."""
        if self.proc is None:
            return None
        if self.running():
            self.proc.kill()
        return self.proc.wait()

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP, returning once every thread has stopped (until then it could still act)."""
        if self.proc is not None and self.running():
            freeze(self.proc.pid, timeout)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def forget(self) -> None:
        """Drop the handle, leaving the child running (Popen's finaliser would warn about it)."""
        if self.proc is not None:
            self.proc.returncode = 0
            self.proc = None

"""Member processes: ``rebalance-lab member`` run as a child whose JSON events are collected.

Each child is its own process (own session, own pid) so faults are real: SIGKILL, SIGSTOP/SIGCONT,
SIGTERM for a graceful leave. A reader thread turns its stdout into :class:`~group_api.Event`s
and appends them to a shared :class:`~bench.experiment.history.History`; stderr goes to a log file.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.experiment.history import History
from bench.services.process import ChildProcess
from group_api import read_events

log = logging.getLogger(__name__)


class MemberProcess:
    """One ``rebalance-lab member`` child process."""

    def __init__(self, args: Sequence[str], history: History, log_path: Path | None = None) -> None:
        self.args = list(args)
        self.history = history
        self.log_path = log_path
        self.member_ids: list[str] = []  # learned from their events, in order of appearance
        self._stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self._child = ChildProcess("member process")
        self.proc = self._child.spawn(
            [sys.executable, "-m", "bench", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._child.name = f"member process {self.proc.pid}"
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"member-{self.proc.pid}")
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def member_id(self) -> str | None:
        """The first member this process reported (the only one unless it runs ``--count`` > 1)."""
        return self.member_ids[0] if self.member_ids else None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for event in read_events(self.proc.stdout):
            if event.member not in self.member_ids:
                self.member_ids.append(event.member)
            self.history.append(event)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 30.0, on_escalate: Callable[[], None] | None = None) -> int:
        """Graceful leave: SIGTERM, wait for exit; SIGKILL if it hangs (``on_escalate`` runs just
        before, so the history can say when the members died). Returns the exit code."""
        code = self._child.terminate(timeout, on_escalate)
        self._reader.join(5)
        assert code is not None
        return code

    def kill(self) -> None:
        self._child.kill()
        self._reader.join(5)

    def pause(self) -> None:
        """SIGSTOP; returns once the process is frozen, as ``docker pause`` does."""
        self._child.pause()

    def resume(self) -> None:
        self._child.resume()

    def close(self) -> None:
        """Make sure the process is gone (used in finally blocks)."""
        if self.alive():
            self.kill()
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()

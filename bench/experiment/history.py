"""A run's history, and folding its member events into the group's state, event by event.

:class:`History` collects member events from many processes (and, in a run, the harness's own
records of actions) and appends each as one JSON line to ``events.jsonl`` when given a path.

Who owns what, which generation each member is in and whether the live members have converged is
folded from these events by :class:`bench.analysis.ownership.GroupOwnership`, for the runner, the
contract tests and the checker alike.

:class:`RunStatus` is how a run ended, as its directory's ``error.txt`` records it (no file: it
completed), so the runner that writes it and the analysis that reads it agree on one format.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from group_api import Event

#: Present in a run directory when the run did not complete; its first line is ``status: <state>``.
ERROR_FILE = "error.txt"
_STATUS_PREFIX = "status: "


class RunState(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"  # stopped by the user (Ctrl-C)


@dataclass(frozen=True)
class RunStatus:
    """How a run ended; anything but ``completed`` keeps its numbers out of the statistics."""

    state: RunState
    reason: str = ""

    @property
    def completed(self) -> bool:
        return self.state == RunState.COMPLETED

    def write(self, run_dir: Path, detail: str = "") -> None:
        """``error.txt``: the state, the reason on the second line, then any detail (a traceback)."""
        text = f"{_STATUS_PREFIX}{self.state}\n{self.reason}\n"
        (run_dir / ERROR_FILE).write_text(text + (f"\n{detail}" if detail else ""))

    @classmethod
    def read(cls, run_dir: Path) -> RunStatus:
        """From ``error.txt``; one without a status line (older runs) is a failure whose reason is
        its first line."""
        path = run_dir / ERROR_FILE
        if not path.exists():
            return cls(RunState.COMPLETED)
        lines = path.read_text(errors="replace").splitlines()
        first = lines[0].strip() if lines else ""
        if first.startswith(_STATUS_PREFIX) and first[len(_STATUS_PREFIX) :] in RunState._value2member_map_:
            state = RunState(first[len(_STATUS_PREFIX) :])
            reason = lines[1].strip() if len(lines) > 1 else ""
        else:
            state, reason = RunState.FAILED, first
        if state == RunState.COMPLETED:  # an error file says the run did not complete, whatever it holds
            state = RunState.FAILED
        return cls(state, reason or f"{ERROR_FILE} gives no reason")


class History:
    """Member events in arrival order, plus harness records; thread-safe.

    With a ``path``, every event and record is also appended to that file as one JSON line.
    ``snapshot()`` returns the member events sorted by their monotonic clock.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._events: list[Event] = []
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a") if path else None  # noqa: SIM115

    def _write(self, obj: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self._file.flush()

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            self._write(event.to_dict())

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append a harness record (``{"event": kind, ...}``) stamped with both clocks."""
        obj = {"event": kind, **fields, "mono_ns": time.monotonic_ns(), "wall": time.time()}
        with self._lock:
            self.records.append(obj)
            self._write(obj)
        return obj

    def snapshot(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.mono_ns)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

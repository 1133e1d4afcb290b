"""Waiting for a condition: poll a predicate until it holds, then return what it returned.

The one wait loop of the harness and the tests; a wait names what it waits for, so a timeout says
which condition never held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
    error: type[Exception] = TimeoutError,
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; raise ``error`` naming
    ``what`` once ``timeout`` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)

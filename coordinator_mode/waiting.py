"""Waiting with a time limit without swallowing a cancellation, for our consumer and the broker alike.

On Python 3.11 ``asyncio.wait_for`` returns the inner result (or raises its error) when the caller's
cancellation arrives in the loop iteration that completes the inner future (CPython gh-86296, fixed
in 3.12). A member's routine cancelled by a leave as its answer or wake-up came in then ran on, and
the leave waited for it forever; a broker's connection handler could likewise outlive its
cancellation. :func:`wait_within` waits with ``asyncio.wait``, which times out with a timer of its
own and never cancels the caller, so a cancellation always propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Wait until ``future`` is done or ``seconds`` passed; whether it is done (see the module)."""
    done, _ = await asyncio.wait({future}, timeout=max(seconds, 0.001))
    return bool(done)


async def run_within(awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable``'s result, or ``TimeoutError`` after ``seconds``; it is cancelled either way
    if still running (also when the caller is)."""
    task = asyncio.ensure_future(awaitable)
    try:
        if not await wait_within(task, seconds):
            raise TimeoutError(f"not done within {seconds:.1f} s")
    finally:
        task.cancel()  # a no-op once it is done
    return task.result()


async def sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``event`` is set."""
    with contextlib.suppress(TimeoutError):
        await run_within(event.wait(), seconds)

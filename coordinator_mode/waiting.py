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
from typing import Any


async def wait_within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Wait until ``future`` is done or ``seconds`` passed; whether it is done (see the module)."""
    done, _ = await asyncio.wait({future}, timeout=max(seconds, 0.001))
    return bool(done)


async def read_within(reader: asyncio.StreamReader, n: int, seconds: float) -> bytes:
    """``reader.readexactly(n)``, raising ``TimeoutError`` after ``seconds``."""
    read = asyncio.ensure_future(reader.readexactly(n))
    try:
        if not await wait_within(read, seconds):
            raise TimeoutError(f"no {n} bytes within {seconds:.1f} s")
    finally:
        read.cancel()  # a no-op once it is done
    return read.result()

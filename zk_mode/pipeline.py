"""Pipelined ZooKeeper calls: many requests in flight on one session, one round trip for all.

ZooKeeper answers a session's requests in the order they were sent (its FIFO client order), so a
member may send every read or write of a step at once with kazoo's ``*_async`` calls and collect the
answers afterwards: the step costs one round trip instead of one per call. :func:`gather` collects
them; an answer that is a ZooKeeper error (a znode gone, a claim still held) is returned in place of
the value for the caller to judge, while a lost connection or session is raised as a synchronous
call would raise it, so the worker's recovery is the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult

#: Interruptions of the session, raised by :func:`gather` rather than returned.
INTERRUPTIONS = (ConnectionLoss, SessionExpiredError, KazooTimeoutError)


def gather(pending: Iterable[IAsyncResult]) -> list[Any]:
    """The answers of pipelined calls in order: each call's value, or the ZooKeeper error it got."""
    out: list[Any] = []
    for result in list(pending):
        try:
            out.append(result.get())
        except INTERRUPTIONS:
            raise
        except KazooException as exc:
            out.append(exc)
    return out


def value(answer: Any) -> Any:
    """An answer from :func:`gather` that must not be an error: the value, or the error raised."""
    if isinstance(answer, Exception):
        raise answer
    return answer

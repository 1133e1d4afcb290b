"""A KazooClient that counts what it asks of ZooKeeper, by kind.

Every request passes through ``KazooClient._call``, so counting there sees the recipes' calls
(kazoo's ``SetPartitioner``, ``Lock``, ``ensure_path``) as well as ours, synchronous or pipelined
(``*_async``). ``requests`` counts what went on the wire, one per call: a ``multi`` is one request
(one round trip). Reads are get, get_children and exists; writes are create, set and delete, and a
``multi`` counts each of its operations under its kind (``check`` included, as the server counts
every op of a multi), so ``writes`` are the znode changes asked for whether they went one by one or
in one transaction; ``multi`` and ``multi_ops`` count the transactions and their operations. A
request that carries a watcher sets a watch; a watcher's callback firing is a watch event received.
Pings and session setup do not pass through ``_call`` and are not counted here: the server's
``mntr`` readings carry those.

"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol import serialization as s

_READS = (s.GetData, s.GetChildren, s.GetChildren2, s.Exists)
_KIND = {
    s.GetData: "get",
    s.GetChildren: "get_children",
    s.GetChildren2: "get_children",
    s.Exists: "exists",
    s.Create: "create",
    s.Create2: "create",
    s.SetData: "set",
    s.Delete: "delete",
    s.CheckVersion: "check",
}


class CountingKazooClient(KazooClient):
    """KazooClient with per-kind call counters (``counts()``), safe across kazoo's threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        # One wrapper per original watcher, so kazoo's per-path watcher sets still de-duplicate.
        self._wrapped: dict[Callable[..., Any], Callable[..., Any]] = {}

    def _call(self, request: Any, async_object: Any) -> Any:
        is_multi = isinstance(request, s.Transaction)
        if is_multi or type(request) in _KIND:
            with self._count_lock:
                self._counts["requests"] += 1
                if is_multi:
                    self._counts["multi"] += 1
                    self._counts["multi_ops"] += len(request.operations)
                for op in request.operations if is_multi else (request,):
                    self._count_op(op)
                watcher = getattr(request, "watcher", None)
                if watcher is not None:
                    self._counts["watches_set"] += 1
                    request = request._replace(watcher=self._wrap(watcher))
        return super()._call(request, async_object)

    def _count_op(self, op: Any) -> None:
        kind = _KIND.get(type(op))
        if kind is not None:
            self._counts[kind] += 1
            self._counts["reads" if isinstance(op, _READS) else "writes"] += 1

    def _wrap(self, watcher: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = self._wrapped.get(watcher)
        if wrapped is None:

            def wrapped(event: Any, _watcher: Callable[..., Any] = watcher) -> Any:
                with self._count_lock:
                    self._counts["watch_events"] += 1
                return _watcher(event)

            self._wrapped[watcher] = wrapped
        return wrapped

    def counts(self) -> dict[str, int]:
        """Cumulative counts: requests, reads, writes, watches_set, watch_events and per kind."""
        with self._count_lock:
            out = {k: 0 for k in ("requests", "reads", "writes", "watches_set", "watch_events")}
            out.update(self._counts)
            return out

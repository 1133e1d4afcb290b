"""Reading ZooKeeper's ``mntr`` counters and turning two readings into the load a run put on ZooKeeper.

Verified on Debian's ZooKeeper 3.8.0 (standalone and a 3-node ensemble, kazoo 2.11 clients, see
``tests/integration/test_mntr.py``). Counts per client request, on the server the client is connected to unless
said otherwise:

``zk_cnt_updatelatency``
    +1 per request that carries a transaction: create, delete, setData, a whole ``multi`` (+1, not +1 per
    op), createSession (connect) and closeSession (``stop()``), and failed writes too (create of an
    existing node). Local to the client's server; the ensemble total is the sum over servers.
``zk_cnt_readlatency``
    +1 per request without a transaction: getData, exists (also on a missing node), getChildren, sync,
    setWatches, **and every ping** (kazoo pings after ~1/3 of the session timeout when idle).
``zk_cnt_<ns>_read_per_namespace``
    +1 per getData / getChildren / exists **on an existing node** whose path's top-level component is
    ``<ns>``; exists on a missing node does not count; pings never count. Only on the serving server.
    The key appears only after the first such read (absent = 0). ``zk_sum_`` of it is bytes.
``zk_cnt_<ns>_write_per_namespace``
    +1 per znode change applied to the data tree: each op of a ``multi``, and the deletes of ephemerals
    when their session closes or expires; failed writes do not count. Applied, so recorded on **every**
    replica: we take the maximum over servers, not the sum.
``zk_sum_node_{created,deleted,changed,children}_watch_count``
    watchers notified (one-shot watches fire once), on the server holding the watch; the matching
    ``zk_cnt_`` counts triggering events that fired at least one watcher. Sum over servers.
``zk_packets_received`` / ``zk_packets_sent`` / ``zk_bytes_received_count``
    all client traffic incl. pings and watch notifications (a notification is a sent packet), and the
    four-letter commands themselves: a ``mntr`` adds 1 packet and 4 bytes received, and its answer
    goes out as about ceil(bytes / 8192) packets (2 for a fresh standalone server's ~16 KB, more as
    per-namespace keys accumulate). :func:`zk_load` subtracts the reading that closes the interval's
    request and the answer to the reading that opens it; other 4lw commands in the window (``srvr``,
    ``ruok``) stay in. ``zk_packets_sent`` is only good to about one packet per server and reading:
    the server sometimes counts the last chunk of a ``mntr`` answer after the next reading (in 200
    back-to-back readings, 10 were one low and the next one high); received counts are exact.
``zk_global_sessions`` / ``zk_znode_count``
    gauges; we report their change. In quorum mode every server reports the ensemble's session count
    (a connect to one follower moved it on all three), so we take the change on one server, as for
    znodes.
``zk_connection_request_count``
    +1 per client connection accepted on that server (new sessions and reconnects). Sum over servers.

All ``zk_cnt_*`` / ``zk_sum_*`` and plain counters are cumulative since the server started (or ``srst``);
a server that restarted between two readings starts again from 0, which :func:`zk_load` detects via
``zk_uptime`` and then counts from zero.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Gauges and statistics that are not cumulative counters (prefix or exact key).
_NON_CUMULATIVE_PREFIXES = ("zk_avg_", "zk_min_", "zk_max_", "zk_p50_", "zk_p95_", "zk_p99_", "zk_p999_")
_GAUGES = frozenset(
    {
        "zk_server_state",
        "zk_version",
        "zk_uptime",
        "zk_ephemerals_count",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_global_sessions",
        "zk_local_sessions",
        "zk_watch_count",
        "zk_approximate_data_size",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_last_client_response_size",
        "zk_min_client_response_size",
        "zk_max_client_response_size",
        "zk_connection_drop_probability",
        "zk_outstanding_tls_handshake",
        "zk_non_mtls_remote_conn_count",
        "zk_non_mtls_local_conn_count",
        "zk_watch_bytes",
        "zk_avg_latency",
        "zk_min_latency",
        "zk_max_latency",
        "zk_followers",
        "zk_synced_followers",
        "zk_synced_non_voting_followers",
        "zk_synced_observers",
        "zk_pending_syncs",
        "zk_last_proposal_size",
        "zk_min_proposal_size",
        "zk_max_proposal_size",
        "zk_peer_state",
        "zk_quorum_size",
        "zk_learners",
        "zk_observers",
        "zk_auth_failed_count",  # cumulative, but kept out: not load
    }
)

#: What one ``mntr`` request adds to its own server's counters (verified on 3.8.0); its answer adds
#: ceil(answer bytes / MNTR_ANSWER_CHUNK) to ``zk_packets_sent``.
MNTR_OWN_REQUEST = {"zk_packets_received": 1, "zk_bytes_received_count": 4}
MNTR_ANSWER_CHUNK = 8192

_WATCH_KINDS = ("created", "deleted", "changed", "children")


class MntrUnavailable(RuntimeError):
    """The server answered but not with metrics (not serving yet, or ``mntr`` not whitelisted)."""


def _four_letter_bytes(host: str, port: int, cmd: str, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(cmd.encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def four_letter(host: str, port: int, cmd: str, timeout: float = 5.0) -> str:
    """Send a four-letter command and return the whole answer (the server closes when done)."""
    return _four_letter_bytes(host, port, cmd, timeout).decode("utf-8", errors="replace")


def _parse_value(raw: str) -> int | float | str:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class Mntr:
    """One ``mntr`` reading of one server; ``values`` keep ZooKeeper's key names (``zk_...``)."""

    server: str
    values: dict[str, int | float | str]
    mono_ns: int
    #: size of the answer, which the server counts in ``zk_packets_sent`` after taking this reading
    answer_bytes: int = 0

    def get(self, key: str, default: int | float = 0) -> int | float:
        value = self.values.get(key, default)
        return value if isinstance(value, int | float) else default

    @property
    def state(self) -> str | None:
        value = self.values.get("zk_server_state")
        return value if isinstance(value, str) else None


def parse_mntr(text: str) -> dict[str, int | float | str]:
    values: dict[str, int | float | str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("\t")
        if sep and key.startswith("zk_"):
            values[key] = _parse_value(raw.strip())
    return values


def read_mntr(host: str, port: int, timeout: float = 5.0) -> Mntr:
    """Read ``mntr`` from one server; :class:`MntrUnavailable` if it answers without metrics."""
    raw = _four_letter_bytes(host, port, "mntr", timeout)
    mono_ns = time.monotonic_ns()
    text = raw.decode("utf-8", errors="replace")
    values = parse_mntr(text)
    if not values:
        raise MntrUnavailable(f"{host}:{port} answered mntr with {text.strip()[:200]!r}")
    return Mntr(server=f"{host}:{port}", values=values, mono_ns=mono_ns, answer_bytes=len(raw))


def is_cumulative(key: str) -> bool:
    return key not in _GAUGES and not key.startswith(_NON_CUMULATIVE_PREFIXES)


def diff(before: Mntr, after: Mntr) -> dict[str, float]:
    """``after - before`` for every numeric cumulative counter of one server (absent before = 0)."""
    out: dict[str, float] = {}
    for key, value in after.values.items():
        if isinstance(value, str) or not is_cumulative(key):
            continue
        out[key] = float(value) - float(before.get(key, 0))
    return out


def namespace_of(path_or_name: str) -> str:
    """The namespace ZooKeeper counts a path under: its top-level component (``/zkmode/x`` -> zkmode)."""
    name = path_or_name.strip("/").split("/", 1)[0]
    if not name:
        raise ValueError(f"no namespace in {path_or_name!r}")
    return name


@dataclass(frozen=True)
class ZkLoad:
    """The load a time window put on a ZooKeeper ensemble (summed over its servers).

    ``reads`` and ``writes`` are the namespace's counts when a namespace was given, else the
    ensemble-wide request counts (which include pings and session create/close); the ``_incl_`` fields
    always hold the latter.
    """

    namespace: str | None
    servers: int
    reads: int
    writes: int
    watch_notifications: int
    watch_events: int
    sessions: int
    znodes: int
    connections: int
    reads_incl_pings: int
    writes_incl_sessions: int
    bytes_received: int
    packets_received: int
    packets_sent: int

    def as_dict(self) -> dict[str, int | str | None]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _pairs(before: Sequence[Mntr], after: Sequence[Mntr]) -> list[tuple[Mntr | None, Mntr]]:
    """Match readings by server; a server that restarted in between (uptime went down) counts from 0."""
    by_server: Mapping[str, Mntr] = {m.server: m for m in before}
    pairs: list[tuple[Mntr | None, Mntr]] = []
    for a in after:
        b = by_server.get(a.server)
        if b is not None and a.get("zk_uptime") < b.get("zk_uptime"):
            b = None
        pairs.append((b, a))
    return pairs


def _delta(b: Mntr | None, a: Mntr, key: str) -> float:
    return a.get(key) - (b.get(key) if b is not None else 0)


def zk_load(before: Sequence[Mntr], after: Sequence[Mntr], namespace: str | None = None) -> ZkLoad:
    """Load between two sets of readings (one per server each), see the module docstring for the keys.

    ``namespace`` may be a name (``zkmode``) or a path (``/zkmode/g1``): its top-level component is used.
    Servers missing from ``after`` are left out; servers missing from ``before`` count from zero.
    """
    ns = namespace_of(namespace) if namespace is not None else None
    pairs = _pairs(before, after)

    def total(key: str) -> int:
        return int(sum(_delta(b, a, key) for b, a in pairs))

    def on_one(key: str) -> int:
        # Replicated values: prefer a server that was up through the whole window.
        for b, a in pairs:
            if b is not None:
                return int(_delta(b, a, key))
        return 0

    def traffic(key: str) -> int:
        # Leave out our own readings: the closing one's request, the opening one's answer.
        out = 0.0
        for b, a in pairs:
            own = MNTR_OWN_REQUEST.get(key, 0)
            if key == "zk_packets_sent" and b is not None:
                own = math.ceil(b.answer_bytes / MNTR_ANSWER_CHUNK)
            out += max(0.0, _delta(b, a, key) - own)
        return int(out)

    reads_all = total("zk_cnt_readlatency")
    writes_all = total("zk_cnt_updatelatency")
    if ns is not None:
        reads = total(f"zk_cnt_{ns}_read_per_namespace")
        writes_key = f"zk_cnt_{ns}_write_per_namespace"
        writes = int(max((_delta(b, a, writes_key) for b, a in pairs), default=0))
    else:
        reads, writes = reads_all, writes_all
    return ZkLoad(
        namespace=ns,
        servers=len(pairs),
        reads=reads,
        writes=writes,
        watch_notifications=sum(total(f"zk_sum_node_{kind}_watch_count") for kind in _WATCH_KINDS),
        watch_events=sum(total(f"zk_cnt_node_{kind}_watch_count") for kind in _WATCH_KINDS),
        sessions=on_one("zk_global_sessions"),
        znodes=on_one("zk_znode_count"),
        connections=total("zk_connection_request_count"),
        reads_incl_pings=reads_all,
        writes_incl_sessions=writes_all,
        bytes_received=traffic("zk_bytes_received_count"),
        packets_received=traffic("zk_packets_received"),
        packets_sent=traffic("zk_packets_sent"),
    )


def read_all(servers: Sequence[tuple[str, int]]) -> list[Mntr]:
    """One reading of every server, in order."""
    return [read_mntr(host, port) for host, port in servers]


def wait_quiet(
    servers: Sequence[tuple[str, int]], namespace: str, quiet_s: float, timeout: float
) -> list[Mntr]:
    """Read mntr until the namespace's read/write counters hold still for ``quiet_s``; the last
    readings. Pings do not move them, so idle sessions do not count."""
    keys = (f"zk_cnt_{namespace}_read_per_namespace", f"zk_cnt_{namespace}_write_per_namespace")
    deadline = time.monotonic() + timeout
    last = read_all(servers)
    while True:
        time.sleep(quiet_s)
        now = read_all(servers)
        if all(a.get(k) == b.get(k) for a, b in zip(last, now, strict=True) for k in keys):
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"ZooKeeper did not go quiet within {timeout:.0f}s")
        last = now

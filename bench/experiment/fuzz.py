"""``rebalance-lab fuzz``: structured fuzz cases against a live broker cluster while a healthy group runs.

What it does, in order:

1. starts ZooKeeper and ``--brokers`` brokers of our own (loopback, a run directory under ``--out``),
   and a healthy group: two kafka-python consumers sharing a topic, each polled on its own thread,
   counting their rebalances with a ``ConsumerRebalanceListener``;
2. asks the broker what it speaks (ApiVersions) and fuzzes every advertised API and version for which a
   request schema is known (ours in :data:`~coordinator_mode.broker.protocol.REQUEST_CLASSES`, then
   kafka-python's): so an API the broker starts advertising is covered without a change here;
3. draws ``--cases`` cases with Hypothesis (:mod:`.fuzz_cases`, seeded by ``--seed``), each sent on
   a connection of its own (then half-closed), ``--concurrency`` at a time, and classifies what came
   back: an answer (with or without an error code in it), a closed connection, or nothing within
   :data:`CASE_TIMEOUT_S` (a hang); every :data:`PROBE_EVERY` cases a valid ApiVersions and Metadata
   go over one long-lived connection, timed (the broker's latency for good traffic during the fuzz);
4. reports the cases per API and mutation, the outcomes, crashes (the broker process gone or
   restarted), the healthy group's rebalances after it settled and its heartbeat response time
   (kafka-python's ``heartbeat-response-time-max``), and the broker's resident memory before and after.

A clean run has no crash, no hang, no rebalance of the healthy group and no answer with a foreign
correlation id; :meth:`FuzzReport.problems` lists what is not clean and the command exits non-zero.

Top-level time fields (``*_wait_ms``, ``*timeout_ms``) above one second are folded into one second
(session timeouts into 6-7 s, just above the brokers' minimum): a long poll or a join deadline that
the broker honours is its contract, not a fault, and would only idle the run.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from bench.services.brokers import BrokerCluster, send_request
from bench.services.polling import wait_until
from coordinator_mode.broker.protocol import REQUEST_CLASSES

from . import fuzz_cases

log = logging.getLogger(__name__)

CASE_TIMEOUT_S = 15.0  # past the broker's longest legitimate wait (a Fetch parks up to 10 s)
PROBE_EVERY = 50
TOPIC = "fuzz-healthy"
TOPIC_PARTITIONS = 4
TIME_FIELD_MAX_MS = 1_000
MIN_SESSION_TIMEOUT_MS = 6_000  # group.min.session.timeout.ms


@dataclass
class FuzzReport:
    """What one fuzz run found; ``problems()`` is empty for a clean run."""

    seed: int
    cases: int = 0
    seconds: float = 0.0
    apis: dict[str, int] = field(default_factory=dict)  # "Name vN" -> cases
    not_fuzzed: list[int] = field(default_factory=list)  # advertised api keys without a known schema
    mutations: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # answer, error_answer, closed, hang, foreign
    crashes: int = 0
    healthy_rebalances: int = 0
    healthy_alive: bool = True
    heartbeat_response_ms_max: float | None = None
    probe_ms: dict[str, float] = field(default_factory=dict)  # p50, p99, max of valid requests
    probe_failures: int = 0
    rss_kb_before: int | None = None
    rss_kb_after: int | None = None
    hangs: list[str] = field(default_factory=list)  # the first few hanging cases, as hex

    def problems(self) -> list[str]:
        found = []
        if self.crashes:
            found.append(f"{self.crashes} broker crash(es)")
        if self.outcomes.get("hang"):
            found.append(f"{self.outcomes['hang']} case(s) neither answered nor closed in {CASE_TIMEOUT_S} s")
        if self.outcomes.get("foreign"):
            found.append(f"{self.outcomes['foreign']} answer(s) with another request's correlation id")
        if self.healthy_rebalances:
            found.append(f"the healthy group rebalanced {self.healthy_rebalances} time(s)")
        if not self.healthy_alive:
            found.append("a healthy consumer stopped polling or lost its partitions")
        if self.probe_failures:
            found.append(f"{self.probe_failures} valid probe request(s) failed")
        return found


# -- what to fuzz -------------------------------------------------------------------------------------


def _request_classes() -> dict[int, Any]:
    """Every request class kafka-python knows (by api key), then ours on top."""
    import kafka.protocol
    from kafka.protocol.api_message import ApiMessage

    for module in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            continue

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    known: dict[int, Any] = {}
    for cls in subclasses(ApiMessage):
        schema = getattr(cls, "_json", None)
        if getattr(cls, "_class_version", None) is None and schema and schema.get("type") == "request":
            known.setdefault(int(cls.API_KEY), cls)
    return {**known, **{int(k): v for k, v in REQUEST_CLASSES.items()}}


def advertised(address: str) -> dict[int, tuple[int, int]]:
    response = send_request(address, ApiVersionsRequest(version=3, client_software_name="fuzz"), 10)
    return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}


def _is_time_field(name: str) -> bool:
    return name.endswith("_ms") and ("wait" in name or "timeout" in name)


def _bounded_times(request: Any) -> Any:
    """Time fields at most :data:`TIME_FIELD_MAX_MS` (see the module docstring)."""
    for name in list(type(request).fields):
        if _is_time_field(name):
            value = getattr(request, name, None)
            if isinstance(value, int) and value > TIME_FIELD_MAX_MS:
                # A session timeout above the brokers' minimum, so that some joins succeed.
                floor = MIN_SESSION_TIMEOUT_MS if "session" in name else 0
                setattr(request, name, floor + value % (TIME_FIELD_MAX_MS + 1))
    return request


def case_strategy(targets: list[tuple[int, int, Any]]) -> st.SearchStrategy[fuzz_cases.Case]:
    """Cases over ``targets`` (api key, version, request class)."""

    @st.composite
    def cases(draw: st.DrawFn) -> fuzz_cases.Case:
        key, version, cls = draw(st.sampled_from(targets))
        request = _bounded_times(draw(fuzz_cases.requests(cls, version)))
        correlation_id = draw(st.integers(0, 2**31 - 1))
        encoded = fuzz_cases.encode(request, correlation_id)
        if encoded is None:
            request = cls(version=version)  # kafka-python's defaults always encode
            encoded = fuzz_cases.encode(request, correlation_id)
            assert encoded is not None
        frame, header_size = encoded
        flexible = bool(cls.flexible_version_q(version))
        mutation, data = draw(fuzz_cases.mutations(frame, header_size, flexible))
        return fuzz_cases.Case(key, version, correlation_id, request, mutation, data)

    return cases()


# -- one case on the wire -----------------------------------------------------------------------------


def exchange(address: str, data: bytes) -> tuple[str, bytes]:
    """Send ``data`` then EOF: ("response", frame), ("closed", b"") or ("hang", b"")."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CASE_TIMEOUT_S) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                return "closed", b""
            received = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return "closed", b""
                received += chunk
                if len(received) >= 4 and len(received) >= 4 + struct.unpack(">i", received[:4])[0]:
                    return "response", received
    except TimeoutError:
        return "hang", b""
    except OSError:  # reset by the broker mid-read
        return "closed", b""


def _has_error(value: Any) -> bool:
    if isinstance(value, dict):
        return any((k == "error_code" and v) or _has_error(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_error(v) for v in value)
    return False


def classify(case: fuzz_cases.Case, outcome: str, payload: bytes) -> str:
    """answer, error_answer, undecoded (an answer kafka-python cannot read for this request: the
    mutation changed what the broker parsed), foreign (another correlation id), closed or hang."""
    if outcome != "response":
        return outcome
    if struct.unpack(">i", payload[4:8])[0] != case.correlation_id:
        return "foreign"
    try:
        response = case.request.header.get_response_class().decode(payload[4:], header=True)
    except Exception:  # any failure to decode is the outcome being classified
        return "undecoded"
    return "error_answer" if _has_error(response.to_dict()) else "answer"


# -- the healthy group ----------------------------------------------------------------------------------


class HealthyConsumer:
    """A kafka-python consumer polled on its own thread; counts the assignments it receives."""

    def __init__(self, bootstrap: str, group: str) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        owner = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            def on_partitions_assigned(self, assigned: Any) -> None:
                owner.assignments += 1

        self.assignments = 0
        self.partitions: frozenset[tuple[str, int]] = frozenset()
        self.error: BaseException | None = None
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            enable_auto_commit=True,
            auto_commit_interval_ms=1_000,
        )
        self._consumer.subscribe([TOPIC], listener=Listener())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-healthy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consumer.poll(timeout_ms=2_000)
                self.partitions = frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())
            except BaseException as exc:  # kept: alive() reports it
                self.error = exc
                return

    def settled(self) -> int | None:
        """The generation it is stable in, or None while it holds nothing or wants to rejoin (a
        kafka-python leader rejoins once after its first assignment when its metadata arrived late).
        Read from kafka-python's coordinator without its lock: a snapshot the caller polls."""
        coordinator = self._consumer._coordinator
        if not self.partitions or coordinator.need_rejoin():
            return None
        return int(coordinator._generation.generation_id)

    def alive(self) -> bool:
        return self.error is None and self._thread.is_alive()

    def close(self) -> float | None:
        """Stop polling, close; the heartbeat response time max (ms) kafka-python measured, if any."""
        self._stop.set()
        self._thread.join(30)
        metrics = self._consumer.metrics()
        self._consumer.close()
        value = metrics.get("consumer-coordinator-metrics", {}).get("heartbeat-response-time-max")
        return float(value) if isinstance(value, int | float) and value == value and value >= 0 else None


def rss_kb(pid: int | None) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the run ------------------------------------------------------------------------------------------


def run_fuzz(cluster: BrokerCluster, cases: int, seed_value: int, concurrency: int = 8) -> FuzzReport:
    """Fuzz ``cluster``'s first broker with ``cases`` cases while a healthy group runs on it.

    ``cluster`` must carry :data:`TOPIC`. About 90 lines on purpose: the phases (targets, the healthy
    group, the cases, the figures) read in order, sharing the counters the closures fill.
    """
    report = FuzzReport(seed=seed_value)
    broker = cluster.broker(1)
    pid = broker.pid
    address = broker.address
    classes = _request_classes()
    targets = []
    for key, (low, high) in sorted(advertised(address).items()):
        cls = classes.get(key)
        if cls is None:
            report.not_fuzzed.append(key)
            continue
        targets += [(key, v, cls) for v in range(low, high + 1) if cls.min_version <= v <= cls.max_version]
    group = f"fuzz-healthy-{uuid.uuid4().hex[:8]}"
    healthy = [HealthyConsumer(cluster.bootstrap, group) for _ in range(2)]
    all_partitions = {(TOPIC, p) for p in range(TOPIC_PARTITIONS)}
    try:

        def stable() -> bool:
            generations = {c.settled() for c in healthy}
            covered = set().union(*(c.partitions for c in healthy)) == all_partitions
            return covered and len(generations) == 1 and None not in generations

        wait_until(stable, 60, what="the healthy group's assignment")
        settled = [c.assignments for c in healthy]
        report.rss_kb_before = rss_kb(pid)
        apis, mutations, outcomes = Counter[str](), Counter[str](), Counter[str]()
        probes: list[float] = []
        lock = threading.Lock()
        with ThreadPoolExecutor(concurrency) as pool, _probe_connection(address) as probe:
            pending: list[Future[None]] = []

            def send(case: fuzz_cases.Case) -> None:
                outcome = classify(case, *exchange(address, case.data))
                with lock:
                    outcomes[outcome] += 1
                    if outcome == "hang" and len(report.hangs) < 5:
                        report.hangs.append(case.data[:200].hex())

            @settings(
                max_examples=cases,
                phases=[Phase.generate],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @seed(seed_value)
            @given(case_strategy(targets))
            def one(case: fuzz_cases.Case) -> None:
                apis[f"{type(case.request).__name__.removesuffix('Request')} v{case.version}"] += 1
                mutations[case.mutation] += 1
                pending.append(pool.submit(send, case))
                if len(pending) >= 4 * concurrency:
                    pending.pop(0).result()
                if sum(mutations.values()) % PROBE_EVERY == 0:
                    elapsed = probe()
                    if elapsed is None:
                        report.probe_failures += 1
                    else:
                        probes.append(elapsed)

            started = time.monotonic()
            one()
            for future in pending:
                future.result()
            report.seconds = round(time.monotonic() - started, 1)
        report.cases = sum(mutations.values())
        report.apis, report.mutations, report.outcomes = dict(apis), dict(mutations), dict(outcomes)
        if probes:
            report.probe_ms = {
                "p50": round(_percentile(probes, 0.5), 2),
                "p99": round(_percentile(probes, 0.99), 2),
                "max": round(max(probes), 2),
            }
        report.rss_kb_after = rss_kb(pid)
        report.crashes = 0 if broker.is_running() and broker.pid == pid else 1
        report.healthy_rebalances = sum(c.assignments - s for c, s in zip(healthy, settled, strict=True))
        report.healthy_alive = all(c.alive() and c.partitions for c in healthy)
    finally:
        latencies = [c.close() for c in healthy]
    known = [v for v in latencies if v is not None]
    report.heartbeat_response_ms_max = round(max(known), 2) if known else None
    return report


@contextmanager
def _probe_connection(address: str) -> Iterator[Any]:
    """A long-lived connection for valid requests; yields a function timing one ApiVersions and one
    Metadata round trip (ms), None when either failed."""
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=CASE_TIMEOUT_S)
    correlation = iter(range(1, 2**31))

    def round_trip() -> float | None:
        started = time.monotonic()
        try:
            for request in (ApiVersionsRequest(version=3), MetadataRequest(version=1, topics=[TOPIC])):
                cid = next(correlation)
                request.with_header(correlation_id=cid, client_id="fuzz-probe")
                sock.sendall(bytes(request.encode(header=True, framed=True)))
                size = struct.unpack(">i", _recv(sock, 4))[0]
                if struct.unpack(">i", _recv(sock, size)[:4])[0] != cid:
                    return None
        except OSError:
            return None
        return (time.monotonic() - started) * 1000.0

    try:
        yield round_trip
    finally:
        sock.close()


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def format_report(report: FuzzReport) -> str:
    lines = [
        f"cases {report.cases} (seed {report.seed}) in {report.seconds} s, "
        f"{len(report.apis)} api versions; not fuzzed (no schema): {report.not_fuzzed or 'none'}",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())),
        "mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(report.mutations.items())),
        f"crashes {report.crashes}; healthy group: rebalances {report.healthy_rebalances}, "
        f"alive {report.healthy_alive}, heartbeat response max {report.heartbeat_response_ms_max} ms",
        f"valid requests during the fuzz (ApiVersions + Metadata): {report.probe_ms} ms, "
        f"failures {report.probe_failures}",
        f"broker RSS: {report.rss_kb_before} kB before, {report.rss_kb_after} kB after",
    ]
    problems = report.problems()
    lines.append("problems: " + ("; ".join(problems) if problems else "none"))
    return "\n".join(lines)


@click.command("fuzz")
@click.option("--cases", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=0, show_default=True)
@click.option("--brokers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Run directory (default: a temp dir)."
)
def fuzz(cases: int, seed_value: int, brokers: int, concurrency: int, out: Path | None) -> None:
    """Fuzz a live broker cluster of our own with structured cases while a healthy group runs."""
    from bench.services.zookeeper import ZooKeeperEnsemble

    base = out or Path(tempfile.mkdtemp(prefix="rebalance-lab-fuzz-"))
    base.mkdir(parents=True, exist_ok=True)
    ensemble = ZooKeeperEnsemble(1, base_dir=base / "zookeeper")
    try:
        ensemble.start()
        cluster = BrokerCluster(
            ensemble.connect_string,
            brokers,
            base / "brokers",
            topics={TOPIC: TOPIC_PARTITIONS},
            offsets_partitions=5,
            initial_rebalance_delay_ms=0,
        )
        with cluster:
            report = run_fuzz(cluster, cases, seed_value, concurrency)
    finally:
        ensemble.stop()
    (base / "fuzz.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    click.echo(format_report(report))
    click.echo(f"run directory: {base}")
    if report.problems():
        raise SystemExit(1)

"""The cluster's metadata in ZooKeeper, as Kafka kept it before KRaft: brokers, controller, leaders.

Layout under the root (default ``/kafka``)::

    /brokers/ids/<id>        ephemeral  {"host", "port", "pid"}      one per live broker
    /controller              ephemeral  {"brokerid": id}             the elected controller
    /controller_epoch                   "<n>"                         bumped by each new controller
    /topics/<name>                      {"partitions": N}            the topic catalog
    /brokers/topics/<name>              {"partitions": {"<p>": {"leader": id, "leader_epoch": e}},
                                         "controller_epoch": n}      a data topic's leaders
    /brokers/topics/__consumer_offsets  {"version": 2, "partitions": {"<p>": [replica ids]}}
    /brokers/topics/__consumer_offsets/partitions/<p>/state
                                        {"controller_epoch", "leader", "version": 1,
                                         "leader_epoch", "isr": [ids]}   Kafka's partition state

The offsets topic ``__consumer_offsets`` is in the catalog like any topic (with its
``replication_factor``); the first broker creates its entry with its ``--offsets-partitions`` and
every broker then uses the count found there. It is the one replicated topic, in Kafka's layout:
the replica assignment in the topic znode, each partition's leader, leader epoch and ISR in its
state znode, written by the controller and, for ISR changes, by the partition's leader
(:meth:`BrokerZk.update_isr`). Data topics carry no records, so they keep one leader per partition
and no replicas.

* **Registration.** A broker creates its ephemeral id znode; after a SIGKILL the old znode lingers
  until its session expires, so a restarted broker waits for it to go.
* **Election.** Every broker watches ``/controller``; when it is absent each tries to create it and
  one wins (Kafka's ``KafkaController.elect``). The winner bumps ``/controller_epoch``.
* **The controller's duty.** It watches ``/brokers/ids`` and ``/topics``. On any change (debounced),
  and every ``leader.imbalance.check.interval.seconds``:

  - ``__consumer_offsets`` (:func:`plan_offsets_states`): created with its replica assignment once
    ``offsets.topic.replication.factor`` brokers are alive; then dead replicas leave the ISR, a
    partition without a live leader gets the first live replica in its ISR (or none: offline), and
    only the periodic check moves leaders back to their preferred replica, per broker above the
    10 % imbalance threshold — a broker joining moves nothing.
  - data topics: leaders that are alive stay put unless their broker leads more than its share;
    partitions of dead brokers, and the surplus of overloaded ones, go to the least loaded live
    brokers. They hold no data, so moving them costs nothing.

  A changed leader gets ``leader_epoch + 1``. Writes go through a ZooKeeper transaction that checks
  the controller epoch's version, so a deposed controller cannot overwrite its successor.
* **Brokers learn leadership from watches** on ``/brokers/topics/<name>`` (not from the controller's
  LeaderAndIsr requests, as Kafka does): every change reaches :class:`BrokerZk`'s ``on_view`` callback
  as a fresh :class:`ClusterView`.

Consumers never touch ZooKeeper in this mode; only brokers do.

This module is longer than most (about 890 lines) because the layout, the parsers of its znodes and
the agent that reads and writes them belong together: the launcher (:mod:`bench.services.brokers`) and the
tests read the same znodes with :func:`read_view` and the same parsers the agent uses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kazoo.client import KazooClient, KazooState, TransactionRequest
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from . import znodes as z

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
DEFAULT_ZK_ROOT = "/kafka"
NO_LEADER = -1


@dataclass(frozen=True)
class ZkPaths:
    root: str = DEFAULT_ZK_ROOT

    def _p(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def broker_ids(self) -> str:
        return self._p("brokers", "ids")

    def broker(self, broker_id: int) -> str:
        return self._p("brokers", "ids", str(broker_id))

    @property
    def controller(self) -> str:
        return self._p("controller")

    @property
    def controller_epoch(self) -> str:
        return self._p("controller_epoch")

    @property
    def topics(self) -> str:
        return self._p("topics")

    def topic(self, name: str) -> str:
        return self._p("topics", name)

    @property
    def topic_states(self) -> str:
        return self._p("brokers", "topics")

    def topic_state(self, name: str) -> str:
        return self._p("brokers", "topics", name)

    def partition_state(self, name: str, partition: int) -> str:
        """Kafka's ``/brokers/topics/<t>/partitions/<p>/state``: leader, leader epoch, ISR."""
        return self._p("brokers", "topics", name, "partitions", str(partition), "state")


@dataclass(frozen=True)
class BrokerInfo:
    broker_id: int
    host: str
    port: int


@dataclass(frozen=True)
class PartitionLeader:
    """A partition's leader and leader epoch; for the replicated offsets topic also its replicas (the
    first is the preferred leader), its ISR and the state znode's version (what an ISR update checks)."""

    leader: int
    epoch: int
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    version: int = -1


@dataclass(frozen=True)
class ClusterView:
    """One broker's picture of the cluster, rebuilt on every watch event."""

    brokers: Mapping[int, BrokerInfo] = field(default_factory=dict)
    controller_id: int = NO_LEADER
    topics: Mapping[str, int] = field(default_factory=dict)  # catalog: name -> partition count
    leaders: Mapping[str, Mapping[int, PartitionLeader]] = field(default_factory=dict)

    def leader(self, topic: str, partition: int) -> PartitionLeader | None:
        return self.leaders.get(topic, {}).get(partition)

    def live_leader(self, topic: str, partition: int) -> BrokerInfo | None:
        state = self.leader(topic, partition)
        return None if state is None else self.brokers.get(state.leader)


# -- catalog and reading helpers (also for the launcher and tests) -------------------------------


def create_topics(client: KazooClient, topics: Mapping[str, int], root: str = DEFAULT_ZK_ROOT) -> None:
    """Create or update catalog entries ``/topics/<name>`` = ``{"partitions": N}`` (idempotent)."""
    paths = ZkPaths(root)
    client.ensure_path(paths.topics)
    for name, partitions in topics.items():
        if int(partitions) < 1:
            raise ValueError(f"topic {name!r}: expected at least 1 partition, got {partitions}")
        data = json.dumps({"partitions": int(partitions)}).encode()
        try:
            client.create(paths.topic(name), data)
        except NodeExistsError:
            client.set(paths.topic(name), data)


def _parse_partitions(raw: bytes | None, path: str) -> int | None:
    """A catalog entry ``/topics/<name>``: ``{"partitions": N, ...}``."""
    return z.read(
        "topic catalog",
        path,
        raw,
        lambda d: z.integer(z.obj(d).get("partitions"), "partitions", 1, z.MAX_PARTITIONS),
        None,
    )


def _parse_state(raw: bytes | None, path: str) -> dict[int, PartitionLeader] | None:
    """A data topic's ``/brokers/topics/<name>``: ``{"partitions": {"<p>": {"leader", "leader_epoch"}}}``;
    ``{}`` when absent, None when unreadable (logged)."""

    def build(d: object) -> dict[int, PartitionLeader]:
        return {
            z.partition_index(p): PartitionLeader(
                z.integer(z.obj(s).get("leader"), "leader", NO_LEADER, z.INT32_MAX),
                z.integer(z.obj(s).get("leader_epoch"), "leader_epoch", 0, z.INT32_MAX),
            )
            for p, s in z.obj(z.obj(d).get("partitions")).items()
        }

    return {} if raw is None else z.read("topic leaders", path, raw, build, None)


def _parse_replication_factor(raw: bytes | None, path: str) -> int:
    """The offsets topic's catalog entry's ``replication_factor`` (1 when absent or unreadable)."""
    return z.read(
        "topic catalog",
        path,
        raw,
        lambda d: z.integer(
            z.obj(d).get("replication_factor", 1), "replication_factor", 1, z.MAX_REPLICATION_FACTOR
        ),
        1,
    )


def _parse_assignment(raw: bytes | None, path: str) -> dict[int, tuple[int, ...]] | None:
    """Kafka's ``/brokers/topics/<t>``: ``{"version": 1-3, "partitions": {"<p>": [replica ids]}}``;
    ``{}`` when absent, None when unreadable (logged)."""

    def build(d: object) -> dict[int, tuple[int, ...]]:
        d = z.obj(d)
        z.version(d, (1, 2, 3))  # Kafka's TopicZNode versions
        assignment = {
            z.partition_index(p): z.broker_ids(r, "replicas") for p, r in z.obj(d.get("partitions")).items()
        }
        if not all(assignment.values()):
            raise z.Unreadable("a partition without replicas")
        return assignment

    return {} if raw is None else z.read("topic assignment", path, raw, build, None)


def _encode_assignment(assignment: Mapping[int, tuple[int, ...]]) -> bytes:
    parts = {str(p): list(r) for p, r in sorted(assignment.items())}
    return json.dumps(
        {"version": 2, "partitions": parts, "adding_replicas": {}, "removing_replicas": {}}
    ).encode()


def parse_partition_state(
    raw: bytes | None, path: str, replicas: tuple[int, ...] = (), version: int = -1
) -> PartitionLeader | None:
    """Kafka's partition state znode ``{"controller_epoch", "leader", "version": 1, "leader_epoch", "isr"}``
    (``PartitionStateZNode``); None when unreadable (logged): the partition then has no state."""

    def build(d: object) -> PartitionLeader:
        d = z.obj(d)
        z.version(d, (1,))
        return PartitionLeader(
            z.integer(d.get("leader"), "leader", NO_LEADER, z.INT32_MAX),
            z.integer(d.get("leader_epoch"), "leader_epoch", 0, z.INT32_MAX),
            replicas,
            z.broker_ids(d.get("isr"), "isr"),
            version,
        )

    return z.read("partition state", path, raw, build, None)


def encode_partition_state(state: PartitionLeader, controller_epoch: int) -> bytes:
    return json.dumps(
        {
            "controller_epoch": controller_epoch,
            "leader": state.leader,
            "version": 1,
            "leader_epoch": state.epoch,
            "isr": list(state.isr),
        }
    ).encode()


def _encode_state(leaders: Mapping[int, PartitionLeader], controller_epoch: int) -> bytes:
    parts = {str(p): {"leader": s.leader, "leader_epoch": s.epoch} for p, s in sorted(leaders.items())}
    return json.dumps({"partitions": parts, "controller_epoch": controller_epoch}).encode()


def _parse_broker(broker_id: int, raw: bytes | None, path: str) -> BrokerInfo | None:
    """A registration ``/brokers/ids/<id>``: ``{"host", "port", ...}``; None: not a live broker."""

    def build(d: object) -> BrokerInfo:
        d = z.obj(d)
        host = d.get("host")
        if not isinstance(host, str) or not 0 < len(host) <= 255:
            raise z.Unreadable(f"host {host!r:.40} is not a host name")
        return BrokerInfo(broker_id, host, z.integer(d.get("port"), "port", 1, 65_535))

    return z.read("broker registration", path, raw, build, None)


def read_view(client: KazooClient, root: str = DEFAULT_ZK_ROOT) -> ClusterView:
    """A one-off snapshot of the cluster's metadata (no watches)."""
    paths = ZkPaths(root)
    brokers: dict[int, BrokerInfo] = {}
    for child in _children(client, paths.broker_ids):
        if child.isdigit():
            info = _parse_broker(int(child), _get(client, paths.broker(int(child))), paths.broker(int(child)))
            if info is not None:
                brokers[info.broker_id] = info
    topics: dict[str, int] = {}
    leaders: dict[str, dict[int, PartitionLeader]] = {}
    for name in _children(client, paths.topics):
        n = _parse_partitions(_get(client, paths.topic(name)), paths.topic(name))
        if n is not None:
            topics[name] = n
            if name == OFFSETS_TOPIC:
                leaders[name] = _read_offsets_states(client, paths)
            else:
                leaders[name] = (
                    _parse_state(_get(client, paths.topic_state(name)), paths.topic_state(name)) or {}
                )
    controller = _controller_id(_get(client, paths.controller), paths.controller)
    return ClusterView(brokers, controller, topics, leaders)


def _read_offsets_states(client: KazooClient, paths: ZkPaths) -> dict[int, PartitionLeader]:
    assignment = (
        _parse_assignment(_get(client, paths.topic_state(OFFSETS_TOPIC)), paths.topic_state(OFFSETS_TOPIC))
        or {}
    )
    states: dict[int, PartitionLeader] = {}
    for p, replicas in assignment.items():
        try:
            raw, stat = client.get(paths.partition_state(OFFSETS_TOPIC, p))
        except NoNodeError:
            continue
        state = parse_partition_state(raw, paths.partition_state(OFFSETS_TOPIC, p), replicas, stat.version)
        if state is not None:
            states[p] = state
    return states


def _children(client: KazooClient, path: str) -> list[str]:
    try:
        return client.get_children(path)
    except NoNodeError:
        return []


def _get(client: KazooClient, path: str) -> bytes | None:
    try:
        return client.get(path)[0]
    except NoNodeError:
        return None


def _controller_id(raw: bytes | None, path: str) -> int:
    """``/controller``: ``{"brokerid": id, ...}``; NO_LEADER when absent or unreadable (logged)."""
    if raw is None:
        return NO_LEADER
    return z.read(
        "controller",
        path,
        raw,
        lambda d: z.integer(z.obj(d).get("brokerid"), "brokerid", 0, z.INT32_MAX),
        NO_LEADER,
    )


def _parse_controller_epoch(raw: bytes | None, path: str) -> int | None:
    """``/controller_epoch``: a decimal integer; None when unreadable (logged)."""
    return z.read(
        "controller epoch", path, raw, lambda d: z.integer(d, "controller_epoch", 0, z.INT32_MAX), None
    )


# -- the controller's leader placement -----------------------------------------------------------


def plan_leaders(
    partitions: int,
    current: Mapping[int, PartitionLeader],
    live: list[int],
    load: Counter[int],
) -> dict[int, PartitionLeader]:
    """Leaders for one topic's ``partitions`` over ``live`` brokers, moving as few as possible.

    ``load`` counts leaderships across the topics planned so far; it breaks ties so that many
    small topics spread too. It is updated in place.
    """
    if not live:
        return {
            p: PartitionLeader(NO_LEADER, current[p].epoch + (current[p].leader != NO_LEADER))
            if p in current
            else PartitionLeader(NO_LEADER, 0)
            for p in range(partitions)
        }
    alive = set(live)
    leaders: dict[int, int | None] = {
        p: current[p].leader if p in current and current[p].leader in alive else None
        for p in range(partitions)
    }
    count: Counter[int] = Counter(b for b in leaders.values() if b is not None)
    ceiling = -(-partitions // len(live))
    for b in live:  # shed the surplus of brokers above their share (keep the lowest partitions)
        for p in sorted(p for p, lb in leaders.items() if lb == b)[ceiling:]:
            leaders[p] = None
            count[b] -= 1

    def least_loaded() -> int:
        return min(live, key=lambda b: (count[b], load[b], b))

    for p in sorted(p for p, b in leaders.items() if b is None):
        b = least_loaded()
        leaders[p] = b
        count[b] += 1
    while True:  # even out: no broker more than one above another
        most = max(live, key=lambda b: (count[b], -b))
        fewest = least_loaded()
        if count[most] - count[fewest] <= 1:
            break
        p = max(p for p, b in leaders.items() if b == most)
        leaders[p], count[most], count[fewest] = fewest, count[most] - 1, count[fewest] + 1
    plan: dict[int, PartitionLeader] = {}
    for p, b in leaders.items():
        assert b is not None
        load[b] += 1
        old = current.get(p)
        if old is not None and old.leader == b:
            plan[p] = old
        else:
            plan[p] = PartitionLeader(b, 0 if old is None else old.epoch + 1)
    return plan


# -- the controller's decisions for the replicated offsets topic -----------------------------------


def assign_replicas(
    partitions: int, brokers: list[int], replication_factor: int
) -> dict[int, tuple[int, ...]]:
    """Replicas of each partition, the first the preferred leader: Kafka's rack-unaware
    ``AdminUtils.assignReplicasToBrokers`` without its random start index and shift, so that runs
    repeat: partition ``p``'s replicas are the ``replication_factor`` brokers from the ``p``-th on."""
    ordered = sorted(brokers)
    rf = min(replication_factor, len(ordered))
    return {p: tuple(ordered[(p + i) % len(ordered)] for i in range(rf)) for p in range(partitions)}


def _without_dead(isr: tuple[int, ...], live: set[int]) -> tuple[int, ...]:
    """``ReplicaStateMachine.doRemoveReplicasFromIsr`` for each dead replica in turn: a replica is
    removed unless it is the last one, so the ISR keeps the last replica that had everything."""
    out = list(isr)
    for r in isr:
        if r not in live and len(out) > 1:
            out.remove(r)
    return tuple(out)


def plan_offsets_states(
    current: Mapping[int, PartitionLeader],
    live: set[int],
    preferred_check: bool = False,
    imbalance_percentage: int = 10,
) -> dict[int, PartitionLeader]:
    """The offsets partitions whose state the controller changes, and their new state.

    * Dead replicas leave the ISR (``KafkaController.onBrokerFailure`` → ``OfflineReplica``).
    * A partition whose leader is dead, or that has none, gets the first replica that is alive *and in
      the ISR* (``PartitionLeaderElectionAlgorithms.offlinePartitionLeaderElection`` with
      ``unclean.leader.election.enable=false``); with none it stays offline (leader -1). A live
      broker that comes back in the ISR brings such a partition back (``onBrokerStartup``).
    * With ``preferred_check`` (the periodic ``leader.imbalance.check.interval.seconds``): for each
      broker whose share of partitions led elsewhere than by it, among those it is the preferred
      leader of, exceeds ``imbalance_percentage`` %, those partitions move back to it if it is alive
      and in the ISR (``checkAndTriggerAutoLeaderRebalance``, ``preferredReplicaPartitionLeaderElection``).
      A broker joining moves nothing by itself.

    A new leader gets ``leader_epoch + 1``; an ISR change alone keeps the epoch (Kafka bumps it;
    here the leader's coordinator would otherwise reload its groups for nothing).
    """
    planned: dict[int, PartitionLeader] = {}
    for p, state in current.items():
        isr = _without_dead(state.isr, live)
        leader = state.leader
        if leader not in live:
            leader = next((r for r in state.replicas if r in live and r in isr), NO_LEADER)
        planned[p] = PartitionLeader(leader, state.epoch, state.replicas, isr, state.version)
    if preferred_check:
        preferred_of: dict[int, list[int]] = {}
        for p, state in planned.items():
            if state.replicas:
                preferred_of.setdefault(state.replicas[0], []).append(p)
        for broker, parts in preferred_of.items():
            elsewhere = [p for p in parts if planned[p].leader != broker]
            if len(elsewhere) / len(parts) <= imbalance_percentage / 100:
                continue
            for p in elsewhere:
                s = planned[p]
                if broker in live and broker in s.isr:
                    planned[p] = PartitionLeader(broker, s.epoch, s.replicas, s.isr, s.version)
    changed: dict[int, PartitionLeader] = {}
    for p, new in planned.items():
        old = current[p]
        if new.leader != old.leader:
            new = PartitionLeader(new.leader, old.epoch + 1, new.replicas, new.isr, new.version)
        if (new.leader, new.epoch, new.isr) != (old.leader, old.epoch, old.isr):
            changed[p] = new
    return changed


# -- one broker's ZooKeeper agent -----------------------------------------------------------------


class BrokerZk:
    """Registers a broker, takes part in the controller election, and watches the cluster metadata.

    ``on_view(view)`` is called from kazoo's threads after every change; ``on_session_lost()`` when
    the ZooKeeper session expired (the broker then owns nothing until it has registered again).
    """

    def __init__(
        self,
        hosts: str,
        broker_id: int,
        host: str,
        port: int,
        *,
        root: str = DEFAULT_ZK_ROOT,
        offsets_partitions: int = 50,
        offsets_replication_factor: int = 1,
        session_timeout_ms: int = 18_000,
        leader_imbalance_check_interval_s: float = 300.0,
        leader_imbalance_per_broker_percentage: int = 10,
        on_view: Callable[[ClusterView], None] = lambda view: None,
        on_session_lost: Callable[[], None] = lambda: None,
        debounce_s: float = 0.1,
    ) -> None:
        self.paths = ZkPaths(root)
        self.broker_id = broker_id
        self.host = host
        self.port = port
        self.offsets_partitions = offsets_partitions
        self.offsets_replication_factor = offsets_replication_factor
        self.leader_imbalance_check_interval_s = leader_imbalance_check_interval_s
        self.leader_imbalance_per_broker_percentage = leader_imbalance_per_broker_percentage
        self._next_imbalance_check = time.monotonic() + leader_imbalance_check_interval_s
        self.session_timeout_ms = session_timeout_ms
        self.on_view = on_view
        self.on_session_lost = on_session_lost
        self.debounce_s = debounce_s
        self.client = KazooClient(hosts=hosts, timeout=session_timeout_ms / 1000.0)
        self._lock = threading.RLock()
        self._brokers: dict[int, BrokerInfo] = {}
        self._catalog: dict[str, int] = {}
        self._leaders: dict[str, dict[int, PartitionLeader]] = {}
        self._offsets_assignment: dict[int, tuple[int, ...]] = {}
        self._offsets_states: dict[int, PartitionLeader] = {}
        self._watched_topics: set[str] = set()
        self._controller_id = NO_LEADER
        self._is_controller = False
        self._controller_epoch = -1
        self._controller_epoch_version = -1
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._worker: threading.Thread | None = None
        self._lost = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        self.client.add_listener(self._on_state)
        self.client.start(timeout=timeout)
        for path in (self.paths.broker_ids, self.paths.topics, self.paths.topic_states):
            self.client.ensure_path(path)
        self._ensure_offsets_topic()
        self._register(deadline=time.monotonic() + timeout + 2 * self.session_timeout_ms / 1000.0)
        DataWatch(self.client, self.paths.topic_state(OFFSETS_TOPIC), self._on_offsets_assignment)
        for p in range(self.offsets_partitions):
            DataWatch(
                self.client, self.paths.partition_state(OFFSETS_TOPIC, p), self._offsets_state_watcher(p)
            )
        ChildrenWatch(self.client, self.paths.broker_ids, self._on_broker_ids)
        ChildrenWatch(self.client, self.paths.topics, self._on_catalog)
        DataWatch(self.client, self.paths.controller, self._on_controller)
        self._worker = threading.Thread(target=self._controller_loop, name="controller", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        try:
            self.client.stop()
            self.client.close()
        except KazooException:
            log.debug("closing the ZooKeeper client", exc_info=True)

    @property
    def is_controller(self) -> bool:
        return self._is_controller

    def view(self) -> ClusterView:
        with self._lock:
            leaders = {t: dict(ls) for t, ls in self._leaders.items()}
            leaders[OFFSETS_TOPIC] = {
                p: PartitionLeader(s.leader, s.epoch, self._offsets_assignment.get(p, ()), s.isr, s.version)
                for p, s in self._offsets_states.items()
            }
            return ClusterView(dict(self._brokers), self._controller_id, dict(self._catalog), leaders)

    def _publish(self) -> None:
        view = self.view()
        try:
            self.on_view(view)
        except Exception:
            log.exception("on_view callback failed")

    def _ensure_offsets_topic(self) -> None:
        data = json.dumps(
            {"partitions": self.offsets_partitions, "replication_factor": self.offsets_replication_factor}
        ).encode()
        try:
            self.client.create(self.paths.topic(OFFSETS_TOPIC), data)
        except NodeExistsError:
            raw = _get(self.client, self.paths.topic(OFFSETS_TOPIC))
            self.offsets_replication_factor = _parse_replication_factor(raw, self.paths.topic(OFFSETS_TOPIC))
            found = _parse_partitions(raw, self.paths.topic(OFFSETS_TOPIC))
            if found is not None and found != self.offsets_partitions:
                log.warning(
                    "the cluster's %s has %d partitions, not %d: using %d",
                    OFFSETS_TOPIC,
                    found,
                    self.offsets_partitions,
                    found,
                )
                self.offsets_partitions = found

    def _register(self, deadline: float) -> None:
        """Create our ephemeral id znode, waiting out a stale one left by a killed predecessor."""
        path = self.paths.broker(self.broker_id)
        data = json.dumps({"host": self.host, "port": self.port, "pid": os.getpid()}).encode()
        while True:
            try:
                self.client.create(path, data, ephemeral=True, makepath=True)
                log.info("registered broker %d at %s:%d", self.broker_id, self.host, self.port)
                return
            except NodeExistsError:
                stat = self.client.exists(path)
                if stat is not None and stat.ephemeralOwner == self.client.client_id[0]:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker id {self.broker_id} is still registered by another session")
            time.sleep(0.2)

    def _on_state(self, state: KazooState) -> None:
        # Runs in kazoo's connection thread: never block here.
        if self._stopped.is_set():
            return  # our own stop() closes the session
        if state == KazooState.LOST:
            log.warning(
                "ZooKeeper session lost: broker %d owns nothing until it re-registers", self.broker_id
            )
            self._lost = True
            self._is_controller = False
            self.on_session_lost()
        elif state == KazooState.CONNECTED and self._lost and not self._stopped.is_set():
            self._lost = False
            self.client.handler.spawn(self._recover)

    def _recover(self) -> None:
        try:
            self._register(deadline=time.monotonic() + 2 * self.session_timeout_ms / 1000.0 + 5)
            self._try_elect()
            self._publish()
        except Exception:
            log.exception("could not re-register after a session loss")

    # -- watches ---------------------------------------------------------------------------------

    def _on_broker_ids(self, children: list[str]) -> bool:
        ids = {int(c) for c in children if c.isdigit()}
        with self._lock:
            for gone in set(self._brokers) - ids:
                del self._brokers[gone]
            for new in ids - set(self._brokers):
                info = _parse_broker(new, _get(self.client, self.paths.broker(new)), self.paths.broker(new))
                if info is not None:
                    self._brokers[new] = info
        log.info("live brokers: %s", sorted(ids))
        self._wake.set()
        self._publish()
        return not self._stopped.is_set()

    def _on_catalog(self, children: list[str]) -> bool:
        for name in children:
            with self._lock:
                if name in self._watched_topics:
                    continue
                self._watched_topics.add(name)
            DataWatch(self.client, self.paths.topic(name), self._catalog_watcher(name))
            if name != OFFSETS_TOPIC:  # its assignment and partition states are watched from start()
                DataWatch(self.client, self.paths.topic_state(name), self._state_watcher(name))
        return not self._stopped.is_set()

    def _catalog_watcher(self, name: str) -> Callable[[bytes | None, ZnodeStat | None], bool]:
        def watch(data: bytes | None, stat: ZnodeStat | None) -> bool:
            with self._lock:
                n = _parse_partitions(data, self.paths.topic(name)) if data is not None else None
                if n is None:
                    self._catalog.pop(name, None)
                else:
                    self._catalog[name] = n
                if data is None:
                    self._watched_topics.discard(name)
            self._wake.set()
            self._publish()
            return data is not None and not self._stopped.is_set()

        return watch

    def _state_watcher(self, name: str) -> Callable[[bytes | None, ZnodeStat | None], bool]:
        def watch(data: bytes | None, stat: ZnodeStat | None) -> bool:
            leaders = _parse_state(data, self.paths.topic_state(name))
            with self._lock:
                if data is None:
                    self._leaders.pop(name, None)
                elif leaders is not None:  # unreadable: keep what we knew; the controller rewrites it
                    self._leaders[name] = leaders
            self._publish()
            return not self._stopped.is_set()

        return watch

    def _on_offsets_assignment(self, data: bytes | None, stat: ZnodeStat | None) -> bool:
        assignment = _parse_assignment(data, self.paths.topic_state(OFFSETS_TOPIC))
        with self._lock:
            if assignment is not None:  # unreadable: keep the replicas we knew
                self._offsets_assignment = assignment
        self._publish()
        return not self._stopped.is_set()

    def _offsets_state_watcher(self, partition: int) -> Callable[[bytes | None, ZnodeStat | None], bool]:
        def watch(data: bytes | None, stat: ZnodeStat | None) -> bool:
            path = self.paths.partition_state(OFFSETS_TOPIC, partition)
            state = (
                None if data is None or stat is None else parse_partition_state(data, path, (), stat.version)
            )
            with self._lock:
                if data is None:
                    self._offsets_states.pop(partition, None)
                elif state is not None:  # unreadable: keep the leader and epoch we knew
                    self._offsets_states[partition] = state
            self._publish()
            return not self._stopped.is_set()

        return watch

    def update_isr(
        self, partition: int, state: PartitionLeader, isr: tuple[int, ...]
    ) -> PartitionLeader | None:
        """The leader records a new ISR, if the state znode is still the version it knows (Kafka before
        AlterPartition: ``Partition.updateIsr`` with ``zkClient.conditionalUpdatePath``); the new state,
        or None when the controller changed it meanwhile (the leader then waits for the new state)."""
        path = self.paths.partition_state(OFFSETS_TOPIC, partition)
        try:
            raw, stat = self.client.get(path)
            current = parse_partition_state(raw, path, state.replicas, stat.version)
            if current is None or (current.version, current.leader, current.epoch) != (
                state.version,
                state.leader,
                state.epoch,
            ):
                return None
            d = json.loads(raw)  # valid: keep the fields we do not model (controller_epoch)
            d["isr"] = list(isr)
            new_stat = self.client.set(path, json.dumps(d).encode(), version=stat.version)
        except KazooException:
            log.info("offsets partition %d: ISR update to %s refused", partition, list(isr), exc_info=True)
            return None
        return PartitionLeader(state.leader, state.epoch, state.replicas, isr, new_stat.version)

    def _on_controller(self, data: bytes | None, stat: ZnodeStat | None) -> bool:
        controller = _controller_id(data, self.paths.controller)
        if data is not None and stat is not None and controller == NO_LEADER:
            # Unreadable: the znode's session says who created it. Ours: we still control. None (a
            # persistent znode no broker wrote): absent, so remove it and elect.
            if stat.ephemeralOwner == self.client.client_id[0]:
                controller = self.broker_id
            elif stat.ephemeralOwner == 0 and not self._stopped.is_set():
                self.client.handler.spawn(self._remove_foreign_controller, stat.version)
        with self._lock:
            self._controller_id = controller
            if self._controller_id != self.broker_id:
                self._is_controller = False
        if data is None and not self._stopped.is_set():
            self.client.handler.spawn(self._try_elect)
        self._publish()
        return not self._stopped.is_set()

    # -- the controller --------------------------------------------------------------------------

    def _try_elect(self) -> None:
        data = json.dumps({"brokerid": self.broker_id, "timestamp": int(time.time() * 1000)}).encode()
        try:
            self.client.create(self.paths.controller, data, ephemeral=True)
        except NodeExistsError:
            return
        except KazooException:
            log.warning("controller election attempt failed", exc_info=True)
            return
        epoch, version = self._bump_controller_epoch()
        with self._lock:
            self._controller_epoch, self._controller_epoch_version = epoch, version
            self._is_controller = True
            self._controller_id = self.broker_id
        log.info("broker %d is the controller (epoch %d)", self.broker_id, epoch)
        self._wake.set()

    def _remove_foreign_controller(self, version: int) -> None:
        try:
            self.client.delete(self.paths.controller, version=version)
        except KazooException:
            log.info("a foreign %s changed or went first", self.paths.controller, exc_info=True)

    def _bump_controller_epoch(self) -> tuple[int, int]:
        while True:
            try:
                raw, stat = self.client.get(self.paths.controller_epoch)
            except NoNodeError:
                try:
                    self.client.create(self.paths.controller_epoch, b"1")
                    return 1, 0
                except NodeExistsError:
                    continue
            # Unreadable: go on from the last epoch we know; the version check still fences.
            found = _parse_controller_epoch(raw, self.paths.controller_epoch)
            epoch = max(found or 0, self._controller_epoch) + 1
            try:
                new_stat = self.client.set(
                    self.paths.controller_epoch, str(epoch).encode(), version=stat.version
                )
                return epoch, new_stat.version
            except KazooException:
                continue

    def _controller_loop(self) -> None:
        while not self._stopped.is_set():
            woken = self._wake.wait(timeout=max(0.0, self._next_imbalance_check - time.monotonic()))
            if self._stopped.is_set():
                return
            preferred = time.monotonic() >= self._next_imbalance_check
            if preferred:
                self._next_imbalance_check = time.monotonic() + self.leader_imbalance_check_interval_s
            if woken:
                time.sleep(self.debounce_s)  # let a burst of registrations settle into one plan
            self._wake.clear()
            if not self._is_controller:
                continue
            try:
                self._reassign(preferred)
            except Exception:
                log.exception("controller: reassignment failed; retrying")
                time.sleep(0.5)
                self._wake.set()

    def _reassign(self, preferred: bool = False) -> None:
        live = self._live_brokers()
        load: Counter[int] = Counter()
        names = sorted(self.client.get_children(self.paths.topics), key=lambda n: (n != OFFSETS_TOPIC, n))
        for name in names:
            n = _parse_partitions(_get(self.client, self.paths.topic(name)), self.paths.topic(name))
            if n is None:
                continue
            if name == OFFSETS_TOPIC:
                self._reassign_offsets(n, live, load, preferred)
                continue
            raw, stat = self._get_with_stat(self.paths.topic_state(name))
            current = _parse_state(raw, self.paths.topic_state(name)) or {}  # unreadable: replanned
            plan = plan_leaders(n, current, live, load)
            if plan == current:
                continue
            moved = sorted(p for p in plan if current.get(p) != plan[p])
            tx = self.fenced_transaction()
            data = _encode_state(plan, self._controller_epoch)
            if stat is None:
                tx.create(self.paths.topic_state(name), data)
            else:
                tx.set_data(self.paths.topic_state(name), data, version=stat.version)
            results = tx.commit()
            if any(isinstance(r, Exception) for r in results):
                log.warning("controller: writing leaders of %s failed (%s); retrying", name, results)
                if not self._still_controller():
                    return
                self._wake.set()
                continue
            log.info(
                "controller: %s leaders over brokers %s; moved partitions %s",
                name,
                live,
                moved if len(moved) < 20 else f"{len(moved)} partitions",
            )

    def fenced_transaction(self) -> TransactionRequest:
        """A transaction for the controller's writes: it first checks that ``/controller_epoch`` is
        still at the version our election left it, so once a successor bumped it every write of ours
        fails as a whole (Kafka's ``KafkaZkClient`` multi with ``CheckOp`` on the epoch's zkVersion,
        ``ControllerMovedException``)."""
        tx = self.client.transaction()
        tx.check(self.paths.controller_epoch, self._controller_epoch_version)
        return tx

    def _live_brokers(self) -> list[int]:
        """The registered brokers whose registration reads (a bogus one is no broker to lead)."""
        ids = sorted(int(c) for c in self.client.get_children(self.paths.broker_ids) if c.isdigit())
        return [
            b for b in ids if _parse_broker(b, _get(self.client, self.paths.broker(b)), self.paths.broker(b))
        ]

    def _reassign_offsets(
        self, partitions: int, live: list[int], load: Counter[int], preferred: bool
    ) -> None:
        """Create the replicated offsets topic once enough brokers are alive (Kafka fails the creation
        below ``offsets.topic.replication.factor``), then elect from the ISR as brokers come and go."""
        raw, stat = self._get_with_stat(self.paths.topic_state(OFFSETS_TOPIC))
        assignment = _parse_assignment(raw, self.paths.topic_state(OFFSETS_TOPIC))
        if assignment is None:
            # Rebuilding it would restart leader epochs at 0 under the partitions' states: leave it.
            log.error("controller: %s's assignment is unreadable; not touching it", OFFSETS_TOPIC)
            return
        tx = self.fenced_transaction()
        if not assignment:
            rf = self.offsets_replication_factor
            if len(live) < rf:
                log.info("controller: %s waits for %d live brokers (has %d)", OFFSETS_TOPIC, rf, len(live))
                return
            changes = self._create_offsets_topic(tx, assign_replicas(partitions, live, rf), stat)
            for state in changes.values():
                load[state.leader] += 1
        else:
            current: dict[int, PartitionLeader] = {}
            for p, replicas in assignment.items():
                raw_state, state_stat = self._get_with_stat(self.paths.partition_state(OFFSETS_TOPIC, p))
                state = (
                    None
                    if state_stat is None
                    else parse_partition_state(
                        raw_state, self.paths.partition_state(OFFSETS_TOPIC, p), replicas, state_stat.version
                    )
                )
                if state is not None:
                    current[p] = state
            changes = plan_offsets_states(
                current, set(live), preferred, self.leader_imbalance_per_broker_percentage
            )
            for p, new in changes.items():
                tx.set_data(
                    self.paths.partition_state(OFFSETS_TOPIC, p),
                    encode_partition_state(new, self._controller_epoch),
                    version=current[p].version,
                )
            for p, state in current.items():
                load[changes.get(p, state).leader] += 1
            if not changes:
                return
        results = tx.commit()
        if any(isinstance(r, Exception) for r in results):
            log.warning("controller: writing %s states failed (%s); retrying", OFFSETS_TOPIC, results)
            if self._still_controller():
                self._wake.set()
            return
        log.info(
            "controller: %s over brokers %s%s; changed partitions %s",
            OFFSETS_TOPIC,
            live,
            " (preferred-leader check)" if preferred else "",
            sorted(changes) if len(changes) < 20 else f"{len(changes)} partitions",
        )

    def _create_offsets_topic(
        self, tx: TransactionRequest, assignment: dict[int, tuple[int, ...]], stat: ZnodeStat | None
    ) -> dict[int, PartitionLeader]:
        """Add the topic's assignment and every partition's first state (the preferred replica leads,
        the ISR is every replica) to ``tx``; the states."""
        topic_path = self.paths.topic_state(OFFSETS_TOPIC)
        if stat is None:
            tx.create(topic_path, _encode_assignment(assignment))
        else:
            tx.set_data(topic_path, _encode_assignment(assignment), version=stat.version)
        if self.client.exists(f"{topic_path}/partitions") is None:
            tx.create(f"{topic_path}/partitions", b"")
        states = {}
        for p, replicas in assignment.items():
            states[p] = PartitionLeader(replicas[0], 0, replicas, replicas)
            if self.client.exists(f"{topic_path}/partitions/{p}") is None:
                tx.create(f"{topic_path}/partitions/{p}", b"")
            tx.create(
                self.paths.partition_state(OFFSETS_TOPIC, p),
                encode_partition_state(states[p], self._controller_epoch),
            )
        return states

    def _get_with_stat(self, path: str) -> tuple[bytes | None, ZnodeStat | None]:
        try:
            return self.client.get(path)
        except NoNodeError:
            return None, None

    def _still_controller(self) -> bool:
        """After a refused write: whether we still control. A controller epoch znode at another version
        means a successor bumped it (or someone overwrote it): we resign as Kafka's
        ``KafkaController.maybeResign`` does on ``ControllerMovedException``, deleting our ``/controller``
        so that an election follows."""
        owner = _controller_id(_get(self.client, self.paths.controller), self.paths.controller)
        _, epoch_stat = self._get_with_stat(self.paths.controller_epoch)
        if owner == self.broker_id and (
            epoch_stat is None or epoch_stat.version != self._controller_epoch_version
        ):
            log.warning(
                "broker %d: %s moved to version %s, not ours (%d): resigning",
                self.broker_id,
                self.paths.controller_epoch,
                None if epoch_stat is None else epoch_stat.version,
                self._controller_epoch_version,
            )
            self._is_controller = False
            try:
                self.client.delete(self.paths.controller)
            except KazooException:
                log.info("deleting %s on resignation", self.paths.controller, exc_info=True)
            return False
        if owner != self.broker_id:
            self._is_controller = False
        return self._is_controller

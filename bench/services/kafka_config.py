"""The real Apache Kafka targets and how a run's settings become their ``server.properties``.

A target names a Kafka release and the members that run on it, as scenarios name them
(``{mode: kafka, variant: 3.9-classic}``): ``<release>-classic`` is our members (classic protocol),
``<release>-java`` Kafka's Java consumer with the classic protocol, ``4.0-consumer`` the Java
consumer with KIP-848's consumer protocol (the one member of the harness that speaks it). The
members are part of the variant, not a field beside it, because a run is named, stored and
reported by mode/variant everywhere (run directories, labels, the report's rows):

=============  ==========================================================================
3.9-classic    Kafka 3.9.1 in ZooKeeper mode (on our ZooKeeper ensemble, its own chroot),
               the classic group coordinator (``GroupCoordinator`` in Scala); our members
3.9-java       the same brokers; Kafka's Java consumer (coordinator variant ``java``)
4.0-classic    Kafka 4.0.1 in KRaft mode (combined controller and broker), the new group
               coordinator (KIP-848's ``GroupCoordinatorService``) serving classic members; ours
4.0-java       the same brokers; the Java consumer, classic protocol
4.0-consumer   the same brokers with ``group.coordinator.rebalance.protocols=classic,consumer``;
               the Java consumer with ``group.protocol=consumer`` (KIP-848)
=============  ==========================================================================

:class:`KafkaSettings` carries the timing knobs a scenario's profile sets on our own brokers
(``BrokerConfig``), so a profile means the same thing on every target; :func:`server_properties`
maps them onto Kafka's names (``GroupCoordinatorConfig``, ``ZkConfigs``, ``KRaftConfigs`` in
Kafka's ``server`` module). Everything else keeps Kafka's defaults except what one machine of
loopback brokers needs (replication factors no larger than the cluster, few threads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator_mode.broker.config import BrokerConfig
from coordinator_mode.hashing import DEFAULT_OFFSETS_PARTITIONS


@dataclass(frozen=True)
class KafkaTarget:
    """One real-Kafka target; ``member_mode``/``member_variant``: the harness's members that run on
    it, with ``member_options`` (``rebalance-lab member --option``) on top of the profile's."""

    name: str
    release: str  # the pinned Maven version
    module: str  # java/<module>/ holds its jars
    kraft: bool  # KRaft (4.x) rather than ZooKeeper-based metadata (3.9)
    protocols: tuple[str, ...]  # group.coordinator.rebalance.protocols
    member_mode: str
    member_variant: str
    member_options: tuple[tuple[str, str], ...] = ()

    @property
    def member_protocol(self) -> str:
        """The group protocol its members speak: ``consumer`` (KIP-848) or ``classic``."""
        return dict(self.member_options).get("protocol", "classic")

    @property
    def java_members(self) -> bool:
        """Its members are Kafka's Java consumer (java/member must be built)."""
        return (self.member_mode, self.member_variant) == ("coordinator", "java")


KAFKA_TARGETS: dict[str, KafkaTarget] = {
    t.name: t
    for t in (
        KafkaTarget("3.9-classic", "3.9.1", "kafka-3.9", False, ("classic",), "coordinator", "classic"),
        KafkaTarget("3.9-java", "3.9.1", "kafka-3.9", False, ("classic",), "coordinator", "java"),
        KafkaTarget("4.0-classic", "4.0.1", "kafka-4.0", True, ("classic",), "coordinator", "classic"),
        KafkaTarget("4.0-java", "4.0.1", "kafka-4.0", True, ("classic",), "coordinator", "java"),
        KafkaTarget(
            "4.0-consumer",
            "4.0.1",
            "kafka-4.0",
            True,
            ("classic", "consumer"),
            "coordinator",
            "java",
            (("protocol", "consumer"),),
        ),
    )
}
#: ``{mode: kafka, variant: all}``: the targets with our members, which run wherever the project
#: does (the Java ones need java/member, so a scenario names them, as ``coordinator/java``).
OUR_MEMBERS_TARGETS = tuple(n for n, t in KAFKA_TARGETS.items() if t.member_variant == "classic")
#: The scenario mode whose variants are :data:`KAFKA_TARGETS`.
KAFKA_MODE = "kafka"
#: Top-level znode of the 3.9 brokers' chroots, so their ZooKeeper load shows up under its own
#: namespace in ``mntr``-based tables (our brokers' is ``kafka``).
ZK_CHROOT_BASE = "/realkafka"


def kafka_target(name: str) -> KafkaTarget:
    if name not in KAFKA_TARGETS:
        raise ValueError(f"unknown Kafka target {name!r}; expected one of {', '.join(KAFKA_TARGETS)}")
    return KAFKA_TARGETS[name]


@dataclass(frozen=True)
class KafkaSettings:
    """The knobs a run sets on its brokers, whichever brokers they are (defaults: ``BrokerConfig``'s)."""

    #: group.initial.rebalance.delay.ms (the profile's ``group_initial_rebalance_delay_ms``)
    initial_rebalance_delay_ms: int = BrokerConfig.initial_rebalance_delay_ms
    #: group.min.session.timeout.ms / group.max.session.timeout.ms (classic groups)
    min_session_timeout_ms: int = BrokerConfig.min_session_timeout_ms
    max_session_timeout_ms: int = BrokerConfig.max_session_timeout_ms
    #: how fast a dead broker is noticed, as ours: zookeeper.session.timeout.ms (3.9),
    #: broker.session.timeout.ms (KRaft)
    zk_session_timeout_ms: int = BrokerConfig.zk_session_timeout_ms
    #: offsets.topic.num.partitions
    offsets_partitions: int = DEFAULT_OFFSETS_PARTITIONS
    #: KIP-848 groups (KRaft targets): group.consumer.session.timeout.ms and
    #: group.consumer.heartbeat.interval.ms
    consumer_session_timeout_ms: int = BrokerConfig.consumer_session_timeout_ms
    consumer_heartbeat_interval_ms: int = BrokerConfig.consumer_heartbeat_interval_ms


def _bool(value: bool) -> str:
    return "true" if value else "false"


def server_properties(
    target: KafkaTarget,
    broker_id: int,
    size: int,
    port: int,
    advertised_port: int,
    internal_port: int,
    log_dir: Path,
    settings: KafkaSettings,
    zk_connect: str | None = None,
    controller_ports: dict[int, int] | None = None,
) -> dict[str, str]:
    """``server.properties`` of broker ``broker_id`` of ``size``: ZooKeeper mode (``zk_connect``, with
    its chroot) or KRaft combined mode (``controller_ports``: every voter's controller port).

    Clients reach the ``PLAINTEXT`` listener on ``port`` and are told ``advertised_port`` (a proxy's,
    when the run injects link faults); the brokers replicate over their own ``INTERNAL`` listener on
    ``internal_port``, so a member's link fault does not delay replication.
    """
    replication = min(3, size)  # Kafka's default of 3 for its internal topics, capped by the cluster
    props = {
        "broker.id" if not target.kraft else "node.id": str(broker_id),
        "log.dirs": str(log_dir),
        "offsets.topic.num.partitions": str(settings.offsets_partitions),
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": str(settings.initial_rebalance_delay_ms),
        "group.min.session.timeout.ms": str(settings.min_session_timeout_ms),
        "group.max.session.timeout.ms": str(settings.max_session_timeout_ms),
        "auto.create.topics.enable": _bool(False),  # the harness creates its topics, as for ours
        # Two cores for everything: fewer threads than Kafka's defaults, no change of semantics.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
    }
    listeners = f"PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}"
    protocol_map = "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT"
    if target.kraft:
        if controller_ports is None:
            raise ValueError("a KRaft broker needs every voter's controller port")
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in sorted(controller_ports.items()))
        props |= {
            "process.roles": "broker,controller",
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_ports[broker_id]}",
            "listener.security.protocol.map": f"{protocol_map},CONTROLLER:PLAINTEXT",
            "group.coordinator.rebalance.protocols": ",".join(target.protocols),
            # KRaft's counterpart of the ZooKeeper session: how long the controller waits for a
            # silent broker's heartbeat before fencing it and moving its leaders (KRaftConfigs).
            "broker.session.timeout.ms": str(settings.zk_session_timeout_ms),
            # KIP-848 groups, as ours: Kafka's minimums (45 s, 5 s) are lowered only when a profile
            # asks for less (GroupCoordinatorConfig's CONSUMER_GROUP_MIN_* bound the values).
            "group.consumer.session.timeout.ms": str(settings.consumer_session_timeout_ms),
            "group.consumer.min.session.timeout.ms": str(min(45_000, settings.consumer_session_timeout_ms)),
            "group.consumer.heartbeat.interval.ms": str(settings.consumer_heartbeat_interval_ms),
            "group.consumer.min.heartbeat.interval.ms": str(
                min(5_000, settings.consumer_heartbeat_interval_ms)
            ),
        }
    else:
        if zk_connect is None:
            raise ValueError("a ZooKeeper-mode broker needs zookeeper.connect")
        props |= {
            "zookeeper.connect": zk_connect,
            "zookeeper.session.timeout.ms": str(settings.zk_session_timeout_ms),
            # Only the harness's final SIGTERMs shut brokers down: the last one has nowhere to move
            # its leaders and would retry ControlledShutdown three times 5 s apart.
            "controlled.shutdown.retry.backoff.ms": "500",
            "listeners": listeners,
            "listener.security.protocol.map": protocol_map,
        }
    props["inter.broker.listener.name"] = "INTERNAL"
    props["advertised.listeners"] = (
        f"PLAINTEXT://127.0.0.1:{advertised_port},INTERNAL://127.0.0.1:{internal_port}"
    )
    return props


def render(props: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in props.items())

"""One broker process's settings (:class:`BrokerConfig`); the ``rebalance-lab broker`` options are its fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..group.config import CoordinatorConfig
from ..hashing import DEFAULT_OFFSETS_PARTITIONS
from .controller import DEFAULT_ZK_ROOT
from .data_log import DEFAULT_RETENTION_BYTES, DEFAULT_SEGMENT_BYTES
from .replication import ReplicationConfig


@dataclass(frozen=True)
class BrokerConfig:
    """Everything one broker process needs; every default is declared here."""

    broker_id: int
    zk_connect: str
    port: int
    log_dir: Path  # this broker's own log.dirs: its replicas of the offsets partitions
    host: str = "127.0.0.1"  # where to listen
    # What brokers register in ZooKeeper and clients get in Metadata/FindCoordinator (Kafka's
    # advertised.listeners): a container's service name, or a proxy's port. None: the listen address.
    advertised_host: str | None = None
    advertised_port: int | None = None
    zk_root: str = DEFAULT_ZK_ROOT
    offsets_partitions: int = DEFAULT_OFFSETS_PARTITIONS  # offsets.topic.num.partitions
    # offsets.topic.replication.factor: the topic is created once this many brokers are alive (the
    # launchers pass min(3, brokers)).
    offsets_replication_factor: int = 3
    offsets_commit_timeout_ms: int = ReplicationConfig.offsets_commit_timeout_ms
    replica_lag_time_max_ms: int = ReplicationConfig.replica_lag_time_max_ms
    # log.flush.interval.messages; None is Kafka's default (Long.MAX_VALUE): no fsync per append.
    log_flush_interval_messages: int | None = None
    leader_imbalance_check_interval_s: float = 300.0  # leader.imbalance.check.interval.seconds
    leader_imbalance_per_broker_percentage: int = 10  # leader.imbalance.per.broker.percentage
    initial_rebalance_delay_ms: int = CoordinatorConfig.initial_rebalance_delay_ms
    min_session_timeout_ms: int = CoordinatorConfig.min_session_timeout_ms
    max_session_timeout_ms: int = CoordinatorConfig.max_session_timeout_ms
    consumer_session_timeout_ms: int = CoordinatorConfig.consumer_session_timeout_ms
    consumer_heartbeat_interval_ms: int = CoordinatorConfig.consumer_heartbeat_interval_ms
    segment_bytes: int = DEFAULT_SEGMENT_BYTES  # segment.bytes of data topics
    retention_bytes: int = DEFAULT_RETENTION_BYTES  # retention.bytes of data topics, per partition
    zk_session_timeout_ms: int = 18_000  # zookeeper.session.timeout.ms (Kafka's default)
    max_frame_bytes: int = 100 * 1024 * 1024  # socket.request.max.bytes
    idle_timeout_s: float = 600.0  # connections.max.idle.ms
    state_dir: Path | None = None  # broker_stats.json; default <log_dir>/broker-<id>
    stats_interval_s: float = 1.0

    @property
    def stats_dir(self) -> Path:
        return (
            self.state_dir if self.state_dir is not None else Path(self.log_dir) / f"broker-{self.broker_id}"
        )

    @property
    def advertised(self) -> tuple[str, int]:
        return (self.advertised_host or self.host, self.advertised_port or self.port)

    def replication_config(self) -> ReplicationConfig:
        return ReplicationConfig(
            replica_lag_time_max_ms=self.replica_lag_time_max_ms,
            offsets_commit_timeout_ms=self.offsets_commit_timeout_ms,
        )

    def coordinator_config(self) -> CoordinatorConfig:
        return CoordinatorConfig(
            min_session_timeout_ms=self.min_session_timeout_ms,
            max_session_timeout_ms=self.max_session_timeout_ms,
            initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
            consumer_session_timeout_ms=self.consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms=self.consumer_heartbeat_interval_ms,
        )

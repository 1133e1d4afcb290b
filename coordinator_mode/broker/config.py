"""One broker process's settings (:class:`BrokerConfig`); the ``rebalance-lab broker`` options are its fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..group.config import CoordinatorConfig
from ..hashing import DEFAULT_OFFSETS_PARTITIONS
from .controller import DEFAULT_ZK_ROOT


@dataclass(frozen=True)
class BrokerConfig:
    """Everything one broker process needs; every default is declared here."""

    broker_id: int
    zk_connect: str
    port: int
    log_dir: Path
    host: str = "127.0.0.1"  # where to listen
    # What brokers register in ZooKeeper and clients get in Metadata/FindCoordinator (Kafka's
    # advertised.listeners): a container's service name, or a proxy's port. None: the listen address.
    advertised_host: str | None = None
    advertised_port: int | None = None
    zk_root: str = DEFAULT_ZK_ROOT
    offsets_partitions: int = DEFAULT_OFFSETS_PARTITIONS  # offsets.topic.num.partitions
    initial_rebalance_delay_ms: int = CoordinatorConfig.initial_rebalance_delay_ms
    min_session_timeout_ms: int = CoordinatorConfig.min_session_timeout_ms
    max_session_timeout_ms: int = CoordinatorConfig.max_session_timeout_ms
    # Kafka's zookeeper.session.timeout.ms is 18 s; brokers here fail over faster by default.
    zk_session_timeout_ms: int = 6_000
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

    def coordinator_config(self) -> CoordinatorConfig:
        return CoordinatorConfig(
            min_session_timeout_ms=self.min_session_timeout_ms,
            max_session_timeout_ms=self.max_session_timeout_ms,
            initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
        )

"""The servers one run uses on this machine: a ZooKeeper ensemble, brokers, and network proxies.

``LocalTopology`` is what the runner talks to; its fault methods (kill a broker, stop a ZooKeeper
node, delay or cut links) are the local backend of the fault interface. With ``proxied`` set,
members reach every ZooKeeper server and broker through a :mod:`bench.services.proxy` proxy of ours, so a
scenario can add delay and jitter or cut links without root or ``tc``. A broker's proxy is started
before the broker, which advertises the proxy's port (``--advertised-port``): the coordinator a
member finds through Metadata and FindCoordinator is then reached through the proxy too.

With ``spec.kafka`` set the brokers are real Apache Kafka (:mod:`bench.services.kafka`): 3.9 on
this ensemble under a chroot of its own, 4.0 in KRaft mode; the same proxies, faults and samples
(read over the Jolokia agent) apply, as the ZooKeeper ensemble's ``mntr`` does.

Link names are ``zk-<i>`` and ``broker-<i>``, ``i`` an index into the servers (broker ``i`` has id
``i + 1``), as scenarios name link targets.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.backends import ClusterSpec, pick_zk
from bench.backends.samples import broker_sample, jolokia_sample, zk_sample
from bench.experiment.history import History
from bench.services.kafka_config import KAFKA_MODE, KafkaSettings, kafka_target
from bench.services.members import MemberProcess
from bench.services.mntr import namespace_of, wait_quiet
from bench.services.proxy import links_meant
from bench.services.zookeeper import ZooKeeperEnsemble


class LocalTopology:
    """The local :class:`~bench.backends.Backend`: servers and members are processes on this machine."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.zk_nodes = spec.zk_nodes
        self.brokers = spec.brokers
        self.base_dir = Path(spec.base_dir)
        self.topics = spec.topics
        self.zk_root = spec.zk_root
        self.initial_rebalance_delay_ms = spec.initial_rebalance_delay_ms
        self.broker_zk_session_timeout_ms = spec.broker_zk_session_timeout_ms
        self.proxied = spec.proxied
        self.kafka = None if spec.kafka is None else kafka_target(spec.kafka)
        self.ensemble = ZooKeeperEnsemble(self.zk_nodes, base_dir=self.base_dir / "zk")
        self.broker_cluster: Any = None
        self._zk_proxies: list[Any] = []
        self._broker_proxies: dict[int, Any] = {}  # broker id -> its proxy
        self._stopped_zk: list[int] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.ensemble.start()
            self._write_catalog()
            if self.proxied:
                self._start_zk_proxies()
            if self.brokers and self.kafka is not None:
                self._start_kafka()
            elif self.brokers:
                from bench.services.brokers import BrokerCluster

                self.broker_cluster = BrokerCluster(
                    self.ensemble.connect_string,
                    self.brokers,
                    self.base_dir / "brokers",
                    topics=self.topics,
                    initial_rebalance_delay_ms=self.initial_rebalance_delay_ms,
                    zk_session_timeout_ms=self.broker_zk_session_timeout_ms,
                    advertise=self._broker_proxy if self.proxied else None,
                )
                self.broker_cluster.start()
            if self.brokers:
                self._wait_brokers_quiet()
        except BaseException:
            self.stop()
            raise

    def _wait_brokers_quiet(self, timeout: float = 30.0) -> None:
        """Until the brokers' own start-up in ZooKeeper is over (our controller re-reads the
        cluster's metadata after the last registration settles): the run's first episode measures
        the group's cold start, not the cluster's, on our brokers as on Kafka's."""
        if self.kafka is not None and self.kafka.kraft:
            return  # no ZooKeeper
        root = self.broker_cluster.chroot if self.kafka is not None else self.broker_cluster.zk_root
        servers = [("127.0.0.1", s.client_port) for s in self.ensemble.servers]
        wait_quiet(servers, namespace_of(root), quiet_s=0.5, timeout=timeout)

    def _start_kafka(self) -> None:
        from bench.services.kafka import KafkaCluster

        assert self.kafka is not None
        self.broker_cluster = KafkaCluster(
            self.kafka,
            self.brokers,
            self.base_dir / "kafka",
            KafkaSettings(initial_rebalance_delay_ms=self.initial_rebalance_delay_ms),
            zk_connect=None if self.kafka.kraft else self.ensemble.connect_string,
            topics=self.topics,
            advertise=self._broker_proxy if self.proxied else None,
        )
        self.broker_cluster.start()

    def _write_catalog(self) -> None:
        from bench.services.catalog import provision_topics

        provision_topics(self.ensemble.connect_string, self.topics, zk_root=self.zk_root)

    def _start_zk_proxies(self) -> None:
        from bench.services.proxy import Proxy

        for i, server in enumerate(self.ensemble.servers):
            proxy = Proxy(("127.0.0.1", server.client_port), name=f"zk-{i}")
            self._zk_proxies.append(proxy)
            proxy.start()

    def _broker_proxy(self, broker_id: int, port: int) -> int:
        """BrokerCluster's ``advertise`` hook: a proxy to the broker's port, whose port it advertises."""
        from bench.services.proxy import Proxy

        proxy = Proxy(("127.0.0.1", port), name=f"broker-{broker_id - 1}")
        self._broker_proxies[broker_id] = proxy
        proxy.start()
        return proxy.port

    def stop(self) -> None:
        for proxy in [*self._zk_proxies, *self._broker_proxies.values()]:
            proxy.stop()
        self._zk_proxies.clear()
        self._broker_proxies.clear()
        if self.broker_cluster is not None:
            self.broker_cluster.stop()
        self.ensemble.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "name": "local",
            "zk_connect": self.ensemble.connect_string,
            "brokers": self.brokers,
            "proxied": self.proxied,
        }

    # -- what members connect to ---------------------------------------------------------------

    @property
    def zk_connect(self) -> str:
        if self._zk_proxies:
            return ",".join(f"127.0.0.1:{p.port}" for p in self._zk_proxies)
        return self.ensemble.connect_string

    def spawn_member(self, args: list[str], history: History, log_path: Path) -> MemberProcess:
        return MemberProcess(args, history, log_path)

    @property
    def bootstrap(self) -> str:
        if self._broker_proxies:
            return ",".join(f"127.0.0.1:{p.port}" for _, p in sorted(self._broker_proxies.items()))
        return self.broker_cluster.bootstrap

    def member_args(self, mode: str) -> list[str]:
        if mode in ("coordinator", KAFKA_MODE):
            return ["--bootstrap", self.bootstrap]
        return ["--zk", self.zk_connect, "--zk-root", self.zk_root]

    # -- samples -------------------------------------------------------------------------------

    def samples(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, server in enumerate(self.ensemble.servers):
            if i not in self._stopped_zk and server.is_running():
                sample = zk_sample("127.0.0.1", server.client_port)
                if sample is not None:
                    out.append(sample)
        if self.kafka is not None and self.broker_cluster is not None:
            for broker in self.broker_cluster.brokers:
                if broker.is_running() and (sample := jolokia_sample(broker.id, broker.jolokia_url)):
                    out.append(sample)
        elif self.broker_cluster is not None:
            mono, wall = time.monotonic_ns(), time.time()
            for broker_id, stats in self.broker_cluster.stats(fresh=True).items():
                if stats:
                    out.append(broker_sample(broker_id, stats, mono, wall))
        return out

    # -- faults (the local backend) --------------------------------------------------------------

    def coordinator_for(self, group: str) -> int:
        # FindCoordinator, on our brokers as on Kafka's: no ZooKeeper reads of the harness's own in
        # the brokers' namespace (a ZooKeeper view of the cluster is about 60 reads).
        broker = self.broker_cluster.find_coordinator(group)
        if broker is None:
            raise RuntimeError(f"group {group} has no live coordinator")
        return broker.id

    def kill_broker(self, broker_id: int) -> None:
        next(b for b in self.broker_cluster.brokers if b.id == broker_id).kill()

    def zk_index(self, node: int | str) -> int:
        return pick_zk([s.mode() if s.is_running() else None for s in self.ensemble.servers], node)

    def stop_zk(self, index: int) -> None:
        self.ensemble.stop_server(index)
        self._stopped_zk.append(index)

    def stopped_zk(self) -> list[int]:
        return list(self._stopped_zk)

    def restart_zk(self, index: int) -> None:
        self.ensemble.restart_server(index)
        self._stopped_zk.remove(index)

    def links(self, target: str) -> list[str]:
        """Names of the member links a target means: ``all``, ``zk``, ``brokers``, ``zk-<i>``, ``broker-<i>``."""
        return [name for name, _ in self._proxies(target)]

    def _proxies(self, target: str) -> list[tuple[str, Any]]:
        zk = [(p.name, p) for p in self._zk_proxies]
        brokers = [(p.name, p) for _, p in sorted(self._broker_proxies.items())]
        return links_meant(target, zk, brokers)

    def set_rtt(self, target: str, rtt_ms: float, jitter_ms: float) -> None:
        for _, proxy in self._proxies(target):
            proxy.set_rtt(rtt_ms, jitter_ms)

    def cut(self, target: str, reset: bool) -> None:
        for _, proxy in self._proxies(target):
            if reset:
                proxy.cut()
            else:
                proxy.blackhole()

    def heal(self, target: str) -> None:
        for _, proxy in self._proxies(target):
            proxy.heal()

"""Coordinator mode: a Kafka-wire-compatible broker cluster whose group coordinator elects leaders.

:mod:`.broker` is a broker process: it keeps its metadata in ZooKeeper (:mod:`.broker.controller`),
as Kafka did before KRaft, coordinates the groups that hash (:mod:`.hashing`) to the offsets
partitions it leads with the classic group protocol (:mod:`.group`, a pure state machine) and
persists group state and committed offsets in ``__consumer_offsets``, replicated between the brokers
(:mod:`.broker.replication`), each keeping its replicas in its own log directory (:mod:`.broker.offsets_log`).
:mod:`.client` is our consumer; :mod:`.subscription` is the consumer protocol's embedded format that
both sides read. The harness starts a cluster of broker processes with :mod:`bench.services.brokers`.
"""

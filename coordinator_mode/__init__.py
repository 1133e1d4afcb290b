"""Coordinator mode: a Kafka-wire-compatible broker cluster whose group coordinator elects leaders.

Brokers (:mod:`.broker`) keep their metadata in ZooKeeper (:mod:`.controller`), as Kafka did before
KRaft; each broker coordinates the groups that hash (:mod:`.hashing`) to the offsets partitions it
leads, runs the classic group protocol (:mod:`.group`) and persists group state and committed offsets
in a shared log directory (:mod:`.offsets_log`). The harness starts a cluster of broker
processes with :mod:`bench.brokers`.
"""

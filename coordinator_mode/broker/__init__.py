"""The broker: a Kafka-wire server (:mod:`.server`) whose API handlers (:mod:`.cluster_apis`,
:mod:`.group_apis`) front the group coordinator, with its settings (:mod:`.config`), counters
(:mod:`.stats`), ZooKeeper agent (:mod:`.controller`), its replicas of the offsets topic
(:mod:`.offsets_log`), their replication (:mod:`.replication`, :mod:`.partition`, :mod:`.fetcher`) and
command (:mod:`.cli`).
"""

"""The broker: a Kafka-wire server (:mod:`.server`) whose API handlers (:mod:`.cluster_apis`,
:mod:`.group_apis`) front the group coordinator, with its settings (:mod:`.config`), counters
(:mod:`.stats`), ZooKeeper agent (:mod:`.controller`), offsets log (:mod:`.offsets_log`) and command
(:mod:`.cli`).
"""

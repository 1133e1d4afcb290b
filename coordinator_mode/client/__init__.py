"""Our consumer: a group member that speaks the classic group protocol to a Kafka-wire coordinator.

:mod:`.connection` the asyncio Kafka client; :mod:`.rebalance` one JoinGroup + SyncGroup round;
:mod:`.heartbeat` the session's liveness bookkeeping; :mod:`.member` the :class:`~group_api.GroupMember`.
"""

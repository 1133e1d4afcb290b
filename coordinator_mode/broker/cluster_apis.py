"""The cluster API handlers: ApiVersions, Metadata, FindCoordinator, and a follower's Fetch.

Metadata and FindCoordinator answer from the cluster view the broker learned from ZooKeeper.
A Fetch with a replica id is another broker replicating ``__consumer_offsets``: the replica manager
(:mod:`.replication`) answers it (:meth:`ClusterApis.replica_fetch`, which the data plane's Fetch
handler, :mod:`.data_apis`, hands such fetches to).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.metadata import (
    ApiVersionsResponse,
    FindCoordinatorResponse,
    MetadataResponse,
)

from ..group.errors import ErrorCode
from ..hashing import partition_for
from .controller import OFFSETS_TOPIC, ClusterView
from .protocol import NO_AUTHORIZED_OPERATIONS, BrokerContext, RequestContext, api_key_ranges
from .replication import FetchedPartition

#: Longest a follower's Fetch waits (followers ask for ``replica.fetch.wait.max.ms``, 500 ms default).
_MAX_FETCH_WAIT_MS = 10_000
CLUSTER_ID = "rebalance-lab"


def topic_id(name: str) -> uuid.UUID:
    """A stable id per topic name, the same on every broker (Kafka's are random but cluster-wide)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"rebalance-lab/topic/{name}")


class ClusterApis:
    """The handlers of the non-group APIs, for one broker."""

    def __init__(self, broker: BrokerContext) -> None:
        self.broker = broker

    def handlers(self) -> dict[int, Callable[[Any, RequestContext], Awaitable[Any]]]:
        return {
            ApiKey.ApiVersions: self._api_versions,
            ApiKey.Metadata: self._metadata,
            ApiKey.FindCoordinator: self._find_coordinator,
        }

    # -- ApiVersions, Metadata, FindCoordinator --------------------------------------------------

    async def _api_versions(self, req: Any, ctx: RequestContext) -> Any:
        return ApiVersionsResponse(
            version=ctx.version, error_code=0, api_keys=api_key_ranges(), throttle_time_ms=0
        )

    async def _metadata(self, req: Any, ctx: RequestContext) -> Any:
        """Brokers from ZooKeeper; for each requested topic (or all) its partitions' leaders."""
        view = self.broker.view
        v = ctx.version
        ids_to_names = {topic_id(name): name for name in view.topics}
        requested: list[tuple[str | None, uuid.UUID | None]]
        if req.topics is None or (v == 0 and not req.topics):
            # All topics: v0 asks with an empty list, v1+ with null (an empty list means none).
            requested = [(name, None) for name in sorted(view.topics)]
        else:
            # v10+ may name a topic by id alone.
            requested = [(t.name, t.topic_id if v >= 10 else None) for t in req.topics]
        topics = []
        for name, tid in requested:
            if name is None and tid is not None:
                name = ids_to_names.get(tid)
            if name is None or name not in view.topics:
                unknown = ErrorCode.UNKNOWN_TOPIC_ID if name is None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                topics.append(
                    MetadataResponse.MetadataResponseTopic(
                        error_code=unknown,
                        name=name,
                        topic_id=tid,
                        is_internal=False,
                        partitions=[],
                        authorized_operations=NO_AUTHORIZED_OPERATIONS,
                    )
                )
                continue
            partitions = _metadata_partitions(view, name)
            topics.append(
                MetadataResponse.MetadataResponseTopic(
                    error_code=ErrorCode.NONE,
                    name=name,
                    topic_id=topic_id(name),
                    is_internal=name == OFFSETS_TOPIC,
                    partitions=partitions,
                    authorized_operations=NO_AUTHORIZED_OPERATIONS,
                )
            )
        brokers = [
            MetadataResponse.MetadataResponseBroker(node_id=b.broker_id, host=b.host, port=b.port, rack=None)
            for b in sorted(view.brokers.values(), key=lambda b: b.broker_id)
        ]
        return MetadataResponse(
            version=v,
            throttle_time_ms=0,
            brokers=brokers,
            cluster_id=CLUSTER_ID,
            controller_id=view.controller_id,
            topics=topics,
            authorized_operations=NO_AUTHORIZED_OPERATIONS,
            error_code=0,
        )

    def _coordinator_node(self, key: str, key_type: int) -> tuple[ErrorCode, int, str, int]:
        """(error, node id, host, port) of the leader of the group's offsets partition."""
        if key_type != 0:
            return ErrorCode.INVALID_REQUEST, -1, "", -1  # transaction/share coordinators: not here
        node = self.broker.view.live_leader(OFFSETS_TOPIC, partition_for(key, self.broker.offsets_partitions))
        if node is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
        return ErrorCode.NONE, node.broker_id, node.host, node.port

    async def _find_coordinator(self, req: Any, ctx: RequestContext) -> Any:
        key_type = req.key_type if ctx.version >= 1 else 0
        if ctx.version < 4:
            error, node_id, host, port = self._coordinator_node(req.key or "", key_type)
            return FindCoordinatorResponse(
                version=ctx.version,
                throttle_time_ms=0,
                error_code=error,
                error_message=None if error is ErrorCode.NONE else error.name,
                node_id=node_id,
                host=host,
                port=port,
            )
        coordinators = []
        for key in req.coordinator_keys or []:
            error, node_id, host, port = self._coordinator_node(key, key_type)
            coordinators.append(
                FindCoordinatorResponse.Coordinator(
                    key=key,
                    node_id=node_id,
                    host=host,
                    port=port,
                    error_code=error,
                    error_message=None if error is ErrorCode.NONE else error.name,
                )
            )
        return FindCoordinatorResponse(version=ctx.version, throttle_time_ms=0, coordinators=coordinators)

    # -- a follower's Fetch of the offsets topic ------------------------------------------------

    async def replica_fetch(self, req: Any, ctx: RequestContext) -> Any:
        """A follower's Fetch of offsets partitions (``replica_id`` >= 0): served by the replica manager,
        held up to ``max_wait_ms`` while there is nothing new (Kafka's ``DelayedFetch``)."""
        tcls = FetchResponse.FetchableTopicResponse
        pcls = tcls.PartitionData
        wanted = [(t.topic, p) for t in req.topics or [] for p in t.partitions or []]
        budget = max(req.max_bytes, 1) if ctx.version >= 3 else 10 * 1024 * 1024

        def serve() -> tuple[list[Any], bool]:
            answered: dict[str, list[Any]] = {}
            any_data_or_error = False
            left = budget
            for topic, p in wanted:
                if topic != OFFSETS_TOPIC:
                    fetched = FetchedPartition(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                else:
                    fetched = self.broker.replicas.serve_fetch(
                        req.replica_id,
                        p.partition,
                        p.fetch_offset,
                        p.current_leader_epoch if ctx.version >= 9 else -1,
                        min(p.partition_max_bytes, left),
                    )
                left = max(left - len(fetched.records), 1)
                any_data_or_error |= bool(fetched.records) or fetched.error is not ErrorCode.NONE
                answered.setdefault(topic, []).append(
                    pcls(
                        partition_index=p.partition,
                        error_code=fetched.error,
                        high_watermark=fetched.high_watermark,
                        last_stable_offset=fetched.high_watermark,
                        log_start_offset=fetched.log_start_offset,
                        aborted_transactions=None,
                        preferred_read_replica=-1,
                        records=fetched.records,
                    )
                )
            return [tcls(topic=t, partitions=parts) for t, parts in answered.items()], any_data_or_error

        responses, ready = serve()
        if not ready and req.max_wait_ms > 0:
            partitions = [p.partition for t, p in wanted if t == OFFSETS_TOPIC]
            wait_ms = min(req.max_wait_ms, _MAX_FETCH_WAIT_MS)
            await self.broker.replicas.wait_for_data(partitions, wait_ms / 1000.0)
            responses, _ = serve()
        return FetchResponse(
            version=ctx.version, throttle_time_ms=0, error_code=0, session_id=0, responses=responses
        )


def _metadata_partitions(view: ClusterView, topic: str) -> list[Any]:
    """One known topic's partitions in a Metadata response: each led by its live leader, if any."""
    partitions = []
    for p in range(view.topics[topic]):
        state = view.leader(topic, p)
        alive = state is not None and state.leader in view.brokers
        leader = state.leader if alive and state is not None else -1
        partitions.append(
            MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
                error_code=ErrorCode.NONE if alive else ErrorCode.LEADER_NOT_AVAILABLE,
                partition_index=p,
                leader_id=leader,
                leader_epoch=state.epoch if state is not None else -1,
                replica_nodes=[leader] if alive else [],
                isr_nodes=[leader] if alive else [],
                offline_replicas=[],
            )
        )
    return partitions

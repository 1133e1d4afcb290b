"""What the broker speaks: the APIs and versions it implements, and what a handler gets per request.

The API handlers (:mod:`.cluster_apis`, :mod:`.group_apis`) see their broker only through
:class:`BrokerContext`, so they do not import the network layer (:mod:`.server`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.protocol.admin import (
    DescribeGroupsRequest,
    ListGroupsRequest,
)
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import (
    FetchRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    MetadataRequest,
)
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest

from ..group.coordinator import GroupCoordinator
from ..group.errors import ErrorCode
from ..schemas import ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest
from .config import BrokerConfig
from .controller import ClusterView
from .replication import ReplicaManager

#: The api versions this broker implements and advertises (key -> (min, max)). Every range
#: overlaps what kafka-python 3.0 and librdkafka 2.x need (librdkafka's balanced consumer wants
#: FindCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit 1-2, OffsetFetch 1);
#: the upper ends stop before topic ids in requests (Fetch 13, OffsetCommit/OffsetFetch 10) and
#: KIP-848-only fields of the classic APIs. Produce 3-11 and InitProducerId 0-4 are Kafka 3.9's
#: record-batch-v2 range and the idempotent producer's (no transactions); ListOffsets 7 adds
#: MAX_TIMESTAMP. ConsumerGroupHeartbeat v0-1 and ConsumerGroupDescribe v0 are KIP-848's APIs, as
#: Kafka 4.0 advertises them (librdkafka 2.4+ negotiates them).
API_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.Produce: (3, 11),
    ApiKey.Fetch: (4, 12),
    ApiKey.ListOffsets: (1, 7),
    ApiKey.Metadata: (0, 12),
    ApiKey.OffsetCommit: (2, 9),
    ApiKey.OffsetFetch: (1, 9),
    ApiKey.FindCoordinator: (0, 4),
    ApiKey.JoinGroup: (0, 9),
    ApiKey.Heartbeat: (0, 4),
    ApiKey.LeaveGroup: (0, 5),
    ApiKey.SyncGroup: (0, 5),
    ApiKey.DescribeGroups: (0, 5),
    ApiKey.ListGroups: (0, 4),
    ApiKey.ApiVersions: (0, 4),
    ApiKey.ConsumerGroupHeartbeat: (0, 1),
    ApiKey.ConsumerGroupDescribe: (0, 0),
    ApiKey.InitProducerId: (0, 4),
}

REQUEST_CLASSES: dict[int, Any] = {
    ApiKey.Produce: ProduceRequest,
    ApiKey.Fetch: FetchRequest,
    ApiKey.ListOffsets: ListOffsetsRequest,
    ApiKey.Metadata: MetadataRequest,
    ApiKey.OffsetCommit: OffsetCommitRequest,
    ApiKey.OffsetFetch: OffsetFetchRequest,
    ApiKey.FindCoordinator: FindCoordinatorRequest,
    ApiKey.JoinGroup: JoinGroupRequest,
    ApiKey.Heartbeat: HeartbeatRequest,
    ApiKey.LeaveGroup: LeaveGroupRequest,
    ApiKey.SyncGroup: SyncGroupRequest,
    ApiKey.DescribeGroups: DescribeGroupsRequest,
    ApiKey.ListGroups: ListGroupsRequest,
    ApiKey.ApiVersions: ApiVersionsRequest,
    ApiKey.ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest,
    ApiKey.ConsumerGroupDescribe: ConsumerGroupDescribeRequest,
    ApiKey.InitProducerId: InitProducerIdRequest,
}

#: Authorized-operations bitfields when the client did not ask (encoded as Kafka's ``Integer.MIN_VALUE``).
NO_AUTHORIZED_OPERATIONS = None


@dataclass(frozen=True)
class RequestContext:
    api_key: int
    version: int
    correlation_id: int
    client_id: str
    client_host: str


class BrokerContext(Protocol):
    """What the API handlers read and call on their broker (:class:`~.server.Broker` provides it)."""

    config: BrokerConfig
    view: ClusterView  # the cluster as ZooKeeper last showed it
    offsets_partitions: int
    coordinator: GroupCoordinator
    stopping: asyncio.Event  # set when the broker shuts down
    replicas: ReplicaManager  # the offsets partitions' replicas: the leader's side of a follower's Fetch

    def schedule_timer(self) -> None:
        """Re-arm the coordinator's timer after a request may have changed its deadlines."""

    async def replicated(self, group_id: str) -> ErrorCode:
        """acks=all for the group's writes so far: NONE once the ISR has them, else why not."""


def api_key_ranges() -> list[Any]:
    """:data:`API_VERSIONS` as ApiVersions response entries."""
    return [
        ApiVersionsResponse.ApiVersion(api_key=int(k), min_version=lo, max_version=hi)
        for k, (lo, hi) in sorted(API_VERSIONS.items())
    ]

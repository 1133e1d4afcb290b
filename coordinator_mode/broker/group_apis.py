"""The group API handlers: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
DescribeGroups, ListGroups, and KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe.

Each maps its Kafka request's fields (every version this broker advertises) to the
:class:`~coordinator_mode.group.coordinator.GroupCoordinator`, which knows only the offsets
partitions this broker leads (learned from ZooKeeper watches): for other groups it answers
``NOT_COORDINATOR``, and ``COORDINATOR_LOAD_IN_PROGRESS`` while a partition's log is being loaded
after a leadership change. JoinGroup and SyncGroup may be parked by the coordinator: their handler
awaits the coordinator's callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from kafka.protocol.admin import (
    DescribeGroupsResponse,
    ListGroupsResponse,
)
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)

from ..group.errors import ErrorCode
from ..group.messages import (
    ConsumerHeartbeat,
    JoinRequest,
    JoinResult,
    LeavingMember,
    OffsetCommit,
    SyncRequest,
    SyncResult,
)
from ..schemas import ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse
from .cluster_apis import topic_id
from .protocol import NO_AUTHORIZED_OPERATIONS, BrokerContext, RequestContext


class GroupApis:
    """The handlers of the group APIs, for one broker."""

    def __init__(self, broker: BrokerContext) -> None:
        self.broker = broker

    def handlers(self) -> dict[int, Callable[[Any, RequestContext], Awaitable[Any]]]:
        return {
            ApiKey.JoinGroup: self._join_group,
            ApiKey.SyncGroup: self._sync_group,
            ApiKey.Heartbeat: self._heartbeat,
            ApiKey.LeaveGroup: self._leave_group,
            ApiKey.OffsetCommit: self._offset_commit,
            ApiKey.OffsetFetch: self._offset_fetch,
            ApiKey.DescribeGroups: self._describe_groups,
            ApiKey.ListGroups: self._list_groups,
            ApiKey.ConsumerGroupHeartbeat: self._consumer_group_heartbeat,
            ApiKey.ConsumerGroupDescribe: self._consumer_group_describe,
        }

    # -- the group APIs --------------------------------------------------------------------------

    async def _await_callback(self, start: Callable[[Callable[[Any], None]], None]) -> Any:
        """Run ``start(callback)`` and wait until the coordinator calls back (maybe much later)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def callback(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        start(callback)
        self.broker.schedule_timer()
        return await future

    async def _join_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        join = JoinRequest(
            group_id=req.group_id,
            member_id=req.member_id or "",
            protocol_type=req.protocol_type or "",
            protocols=tuple((p.name, bytes(p.metadata or b"")) for p in req.protocols or []),
            session_timeout_ms=req.session_timeout_ms,
            # JoinGroup v0 has no rebalance timeout: the session timeout stands in (apache/kafka#7072).
            rebalance_timeout_ms=req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
            group_instance_id=req.group_instance_id if v >= 5 else None,
            client_id=ctx.client_id,
            client_host=ctx.client_host,
            require_known_member_id=v >= 4,
            supports_skip_assignment=v >= 9,
            reason=req.reason if v >= 8 else None,
        )
        result: JoinResult = await self._await_callback(lambda cb: self.broker.coordinator.join(join, cb))
        members = [
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id, metadata=m.metadata
            )
            for m in result.members
        ]
        return JoinGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            generation_id=result.generation_id,
            protocol_type=result.protocol_type,
            # Before v7 the protocol name is not nullable.
            protocol_name=result.protocol_name if v >= 7 else (result.protocol_name or ""),
            leader=result.leader_id,
            skip_assignment=result.skip_assignment,
            member_id=result.member_id,
            members=members,
        )

    async def _sync_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        sync = SyncRequest(
            group_id=req.group_id,
            member_id=req.member_id or "",
            generation_id=req.generation_id,
            assignments=tuple((a.member_id, bytes(a.assignment or b"")) for a in req.assignments or []),
            group_instance_id=req.group_instance_id if v >= 3 else None,
            protocol_type=req.protocol_type if v >= 5 else None,
            protocol_name=req.protocol_name if v >= 5 else None,
        )
        result: SyncResult = await self._await_callback(lambda cb: self.broker.coordinator.sync(sync, cb))
        if result.error is ErrorCode.NONE:
            # The group's record must be on the ISR before anyone is answered (GroupMetadataManager.storeGroup
            # with acks=all; its callback maps a timeout to REBALANCE_IN_PROGRESS, a lost leadership to
            # NOT_COORDINATOR).
            replicated = await self.broker.replicated(sync.group_id)
            if replicated is not ErrorCode.NONE:
                error = (
                    ErrorCode.REBALANCE_IN_PROGRESS
                    if replicated is ErrorCode.REQUEST_TIMED_OUT
                    else ErrorCode.NOT_COORDINATOR
                )
                return SyncGroupResponse(
                    version=v,
                    throttle_time_ms=0,
                    error_code=error,
                    protocol_type=None,
                    protocol_name=None,
                    assignment=b"",
                )
        return SyncGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            assignment=result.assignment,
        )

    async def _heartbeat(self, req: Any, ctx: RequestContext) -> Any:
        error = self.broker.coordinator.heartbeat(
            req.group_id,
            req.member_id or "",
            req.group_instance_id if ctx.version >= 3 else None,
            req.generation_id,
        )
        self.broker.schedule_timer()
        return HeartbeatResponse(version=ctx.version, throttle_time_ms=0, error_code=error)

    async def _leave_group(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        if v < 3:
            leaving = [LeavingMember(req.member_id or "")]
        else:
            leaving = [
                LeavingMember(m.member_id or "", m.group_instance_id, m.reason if v >= 5 else None)
                for m in req.members or []
            ]
        result = self.broker.coordinator.leave(req.group_id, leaving)
        self.broker.schedule_timer()
        if v < 3:
            # One member, one error: v0-2 carry it at the top level.
            error = result.error if result.error is not ErrorCode.NONE else result.members[0][1]
            return LeaveGroupResponse(version=v, throttle_time_ms=0, error_code=error)
        return LeaveGroupResponse(
            version=v,
            throttle_time_ms=0,
            error_code=result.error,
            members=[
                LeaveGroupResponse.MemberResponse(
                    member_id=who.member_id, group_instance_id=who.group_instance_id, error_code=error
                )
                for who, error in result.members
            ],
        )

    async def _offset_commit(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        commits = [
            OffsetCommit(
                topic=t.name,
                partition=p.partition_index,
                offset=p.committed_offset,
                leader_epoch=p.committed_leader_epoch if v >= 6 else -1,
                metadata=p.committed_metadata,
            )
            for t in req.topics or []
            for p in t.partitions or []
        ]
        staged = self.broker.coordinator.stage_offsets(
            req.group_id,
            req.member_id or "",
            req.group_instance_id if v >= 7 else None,
            req.generation_id_or_member_epoch,
            commits,
        )
        self.broker.schedule_timer()
        results = staged.results
        if staged.records:
            # Acknowledged only once the ISR has the commit (GroupMetadataManager.storeOffsets, acks=all
            # within offsets.commit.timeout.ms; the timeout is answered as REQUEST_TIMED_OUT).
            replicated = await self.broker.replicated(req.group_id)
            if replicated is not ErrorCode.NONE:
                failed = (
                    ErrorCode.REQUEST_TIMED_OUT
                    if replicated is ErrorCode.REQUEST_TIMED_OUT
                    else ErrorCode.NOT_COORDINATOR
                )
                results = [(c, failed if e is ErrorCode.NONE else e) for c, e in results]
            else:
                self.broker.coordinator.complete_offsets(staged)
        by_topic: dict[str, list[Any]] = {}
        for commit, error in results:
            by_topic.setdefault(commit.topic, []).append(
                OffsetCommitResponse.OffsetCommitResponseTopic.OffsetCommitResponsePartition(
                    partition_index=commit.partition, error_code=error
                )
            )
        return OffsetCommitResponse(
            version=v,
            throttle_time_ms=0,
            topics=[
                OffsetCommitResponse.OffsetCommitResponseTopic(name=name, partitions=parts)
                for name, parts in by_topic.items()
            ],
        )

    def _fetch_group_offsets(
        self, group_id: str, topics: list[Any] | None
    ) -> tuple[ErrorCode, list[tuple[str, list[tuple[int, Any]]]]]:
        """(group error, [(topic, [(partition, OffsetAndMetadata)])]) in request order."""
        wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes or []]
        error, offsets = self.broker.coordinator.fetch_offsets(group_id, wanted)
        grouped: dict[str, list[tuple[int, Any]]] = {}
        if wanted is None:
            for (topic, partition), om in sorted(offsets.items()):
                grouped.setdefault(topic, []).append((partition, om))
        else:
            for topic, partition in wanted:
                grouped.setdefault(topic, []).append((partition, offsets.get((topic, partition))))
        return error, list(grouped.items())

    async def _offset_fetch(self, req: Any, ctx: RequestContext) -> Any:
        v = ctx.version
        if v < 8:
            error, topics = self._fetch_group_offsets(req.group_id, req.topics)
            cls = OffsetFetchResponse.OffsetFetchResponseTopic
            part_cls = cls.OffsetFetchResponsePartition
            # v0-1 have no top-level error: a group error goes into every partition.
            per_partition_error = error if v < 2 else ErrorCode.NONE
            out_topics = (
                []
                if error is not ErrorCode.NONE and v >= 2
                else [
                    cls(
                        name=topic,
                        partitions=[
                            part_cls(
                                partition_index=p,
                                committed_offset=om.offset if om is not None else -1,
                                committed_leader_epoch=om.leader_epoch if om is not None else -1,
                                metadata=om.metadata if om is not None else "",
                                error_code=per_partition_error,
                            )
                            for p, om in parts
                        ],
                    )
                    for topic, parts in topics
                ]
            )
            return OffsetFetchResponse(version=v, throttle_time_ms=0, topics=out_topics, error_code=error)
        groups = []
        gcls = OffsetFetchResponse.OffsetFetchResponseGroup
        tcls = gcls.OffsetFetchResponseTopics
        pcls = tcls.OffsetFetchResponsePartitions
        for g in req.groups or []:
            error, topics = self._fetch_group_offsets(g.group_id, g.topics)
            groups.append(
                gcls(
                    group_id=g.group_id,
                    error_code=error,
                    topics=[
                        tcls(
                            name=topic,
                            partitions=[
                                pcls(
                                    partition_index=p,
                                    committed_offset=om.offset if om is not None else -1,
                                    committed_leader_epoch=om.leader_epoch if om is not None else -1,
                                    metadata=om.metadata if om is not None else "",
                                    error_code=ErrorCode.NONE,
                                )
                                for p, om in parts
                            ],
                        )
                        for topic, parts in topics
                    ]
                    if error is ErrorCode.NONE
                    else [],
                )
            )
        return OffsetFetchResponse(version=v, throttle_time_ms=0, groups=groups)

    async def _describe_groups(self, req: Any, ctx: RequestContext) -> Any:
        cls = DescribeGroupsResponse.DescribedGroup
        mcls = cls.DescribedGroupMember
        groups = []
        for group_id in req.groups or []:
            d = self.broker.coordinator.describe(group_id)
            groups.append(
                cls(
                    error_code=d.error,
                    error_message=None,
                    group_id=group_id,
                    group_state=d.state,
                    protocol_type=d.protocol_type,
                    protocol_data=d.protocol,
                    members=[
                        mcls(
                            member_id=m.member_id,
                            group_instance_id=m.group_instance_id,
                            client_id=m.client_id,
                            client_host=m.client_host,
                            member_metadata=m.metadata,
                            member_assignment=m.assignment,
                        )
                        for m in d.members
                    ],
                    authorized_operations=NO_AUTHORIZED_OPERATIONS,
                )
            )
        return DescribeGroupsResponse(version=ctx.version, throttle_time_ms=0, groups=groups)

    async def _list_groups(self, req: Any, ctx: RequestContext) -> Any:
        states = (req.states_filter or []) if ctx.version >= 4 else []
        error, groups = self.broker.coordinator.list_groups(states)
        cls = ListGroupsResponse.ListedGroup
        return ListGroupsResponse(
            version=ctx.version,
            throttle_time_ms=0,
            error_code=error,
            groups=[cls(group_id=g, protocol_type=pt, group_state=state) for g, pt, state in groups],
        )

    # -- KIP-848 ---------------------------------------------------------------------------------

    def _topic_names(self) -> dict[Any, str]:
        return {topic_id(name): name for name in self.broker.view.topics}

    async def _consumer_group_heartbeat(self, req: Any, ctx: RequestContext) -> Any:
        """ConsumerGroupHeartbeat v0-1 (``KafkaApis.handleConsumerGroupHeartbeat``); answered once its
        records are on the ISR (``CoordinatorRuntime`` completes a write when it is committed)."""
        names = self._topic_names()
        owned = None
        if req.topic_partitions is not None:
            # An owned partition of a topic we do not know cannot be anyone's target: dropping it is
            # what Kafka's reconciliation does with an unknown topic id.
            owned = {
                names[tp.topic_id]: frozenset(tp.partitions or [])
                for tp in req.topic_partitions
                if tp.topic_id in names
            }
        heartbeat = ConsumerHeartbeat(
            group_id=req.group_id,
            member_id=req.member_id or "",
            member_epoch=req.member_epoch,
            instance_id=req.instance_id,
            rack_id=req.rack_id,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            subscribed_topics=None
            if req.subscribed_topic_names is None
            else tuple(req.subscribed_topic_names),
            subscribed_topic_regex=req.subscribed_topic_regex if ctx.version >= 1 else None,
            server_assignor=req.server_assignor,
            owned=owned,
            client_id=ctx.client_id,
            client_host=ctx.client_host,
        )
        result = self.broker.coordinator.consumer_heartbeat(heartbeat)
        self.broker.schedule_timer()
        error, message = result.error, result.message
        if result.appended:
            replicated = await self.broker.replicated(req.group_id)
            if replicated is not ErrorCode.NONE:
                # GroupCoordinatorService.handleOperationException: a write that timed out or lost its
                # leadership is retriable for the member.
                error = (
                    ErrorCode.COORDINATOR_NOT_AVAILABLE
                    if replicated is ErrorCode.REQUEST_TIMED_OUT
                    else ErrorCode.NOT_COORDINATOR
                )
                message = replicated.name
        cls = ConsumerGroupHeartbeatResponse
        if error is not ErrorCode.NONE:
            return cls(
                version=ctx.version,
                throttle_time_ms=0,
                error_code=error,
                error_message=message,
                member_epoch=-1,
                heartbeat_interval_ms=0,
            )
        assignment = None
        if result.assignment is not None:
            assignment = cls.Assignment(
                topic_partitions=[
                    cls.Assignment.TopicPartitions(topic_id=topic_id(t), partitions=sorted(ps))
                    for t, ps in sorted(result.assignment.items())
                ]
            )
        return cls(
            version=ctx.version,
            throttle_time_ms=0,
            error_code=ErrorCode.NONE,
            error_message=None,
            member_id=result.member_id,
            member_epoch=result.member_epoch,
            heartbeat_interval_ms=result.heartbeat_interval_ms,
            assignment=assignment,
        )

    async def _consumer_group_describe(self, req: Any, ctx: RequestContext) -> Any:
        """ConsumerGroupDescribe v0 (``GroupMetadataManager.consumerGroupDescribe``)."""
        cls = ConsumerGroupDescribeResponse
        gcls = cls.DescribedGroup
        mcls = gcls.Member

        def assignment(partitions: dict[str, frozenset[int]]) -> Any:
            return mcls.Assignment(
                topic_partitions=[
                    mcls.Assignment.TopicPartitions(topic_id=topic_id(t), topic_name=t, partitions=sorted(ps))
                    for t, ps in sorted(partitions.items())
                ]
            )

        groups = []
        for group_id in req.group_ids or []:
            d = self.broker.coordinator.consumer_describe(group_id)
            groups.append(
                gcls(
                    error_code=d.error,
                    error_message=d.message,
                    group_id=group_id,
                    group_state=d.state,
                    group_epoch=d.group_epoch,
                    assignment_epoch=d.assignment_epoch,
                    assignor_name=d.assignor,
                    members=[
                        mcls(
                            member_id=m.member_id,
                            instance_id=m.instance_id,
                            rack_id=m.rack_id,
                            member_epoch=m.member_epoch,
                            client_id=m.client_id,
                            client_host=m.client_host,
                            subscribed_topic_names=list(m.subscribed_topics),
                            subscribed_topic_regex=None,
                            assignment=assignment(m.assignment),
                            target_assignment=assignment(m.target_assignment),
                        )
                        for m in d.members
                    ],
                    authorized_operations=-(2**31),
                )
            )
        return cls(version=ctx.version, throttle_time_ms=0, groups=groups)

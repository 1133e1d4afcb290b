"""The classic group's states, what a group does in each, and which transitions are allowed.

The states, their actions and transitions are Kafka's ``ClassicGroupState`` (``group-coordinator``
module, ``org.apache.kafka.coordinator.group.classic``; ``GroupState`` in the older
``GroupMetadata.scala``), as :class:`~.classic.ClassicGroup` implements them here::

    Empty --JoinGroup--> PreparingRebalance --join phase completes--> CompletingRebalance
      ^                        ^   |                                        |
      |                        |   +--(no members left)--> Empty            | leader's SyncGroup
      |                        +------- join / leave / failure ------------ Stable
    (any) --partition emigrates--> Dead
"""

from __future__ import annotations

from enum import StrEnum


class ClassicGroupState(StrEnum):
    """Classic group states; the values are the names DescribeGroups and ListGroups report.

    ``EMPTY``: no members; also a group that uses the coordinator only to store offsets.
        Actions: JoinGroup from a new member is handled normally; SyncGroup, Heartbeat and
        LeaveGroup get ``UNKNOWN_MEMBER_ID``; OffsetCommit with a negative generation (a simple,
        non-group-managed commit) is accepted, others get ``UNKNOWN_MEMBER_ID``; OffsetFetch works.
        Transitions: JoinGroup from a new member -> PreparingRebalance; the offsets partition
        emigrates -> Dead.

    ``PREPARING_REBALANCE``: a new generation is forming.
        Actions: Heartbeat and SyncGroup get ``REBALANCE_IN_PROGRESS``; LeaveGroup removes the member;
        JoinGroup requests from new and existing members are parked until every expected member has
        joined or the rebalance timeout fires; OffsetCommit from the previous generation is accepted;
        OffsetFetch works.
        Transitions: the join phase completes with members -> CompletingRebalance; every member left
        or expired -> Empty; the offsets partition emigrates -> Dead.

    ``COMPLETING_REBALANCE``: the generation formed; waiting for the leader's assignment.
        Actions: Heartbeat answers ``NONE`` (Kafka's Javadoc says ``REBALANCE_IN_PROGRESS``; its code,
        ``ClassicGroup``'s heartbeat handling in ``GroupMetadataManager``, answers ``NONE``);
        OffsetCommit gets ``REBALANCE_IN_PROGRESS``; followers' SyncGroup requests are parked until
        the leader's arrives; OffsetFetch works.
        Transitions: the leader's SyncGroup, persisted -> Stable; JoinGroup from a new member or an
        existing one with changed metadata, LeaveGroup, a member's session expiring -> Preparing-
        Rebalance; the offsets partition emigrates -> Dead.

    ``STABLE``: every member has the generation's assignment.
        Actions: Heartbeat answers normally; SyncGroup from any member gets its current assignment;
        JoinGroup from a follower with unchanged metadata gets the current generation; OffsetCommit
        from the current generation is accepted; OffsetFetch works.
        Transitions: a session expiring, LeaveGroup, JoinGroup from the leader or from a follower with
        changed metadata -> PreparingRebalance; the offsets partition emigrates -> Dead.

    ``DEAD``: the group's offsets partition moved to another coordinator (or was unloaded).
        Actions: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and OffsetCommit get
        ``COORDINATOR_NOT_AVAILABLE``; requests parked at unload time get ``NOT_COORDINATOR``.
        Transitions: none.
    """

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


#: For each state, the states a group may enter it from (``ClassicGroupState``'s valid previous states).
VALID_PREVIOUS_STATES: dict[ClassicGroupState, frozenset[ClassicGroupState]] = {
    ClassicGroupState.EMPTY: frozenset({ClassicGroupState.PREPARING_REBALANCE}),
    ClassicGroupState.PREPARING_REBALANCE: frozenset(
        {ClassicGroupState.STABLE, ClassicGroupState.COMPLETING_REBALANCE, ClassicGroupState.EMPTY}
    ),
    ClassicGroupState.COMPLETING_REBALANCE: frozenset({ClassicGroupState.PREPARING_REBALANCE}),
    ClassicGroupState.STABLE: frozenset({ClassicGroupState.COMPLETING_REBALANCE}),
    ClassicGroupState.DEAD: frozenset(ClassicGroupState),
}

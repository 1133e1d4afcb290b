"""The coordinator design's costs, counted on our consumer's code path (coordinator_mode.client).

Requests are group APIs at the coordinator (heartbeats left out, as ZooKeeper's pings are), as
``join-cost``'s ledger counts them. Per member and rebalance (classic, eager): one JoinGroup
(``GroupRebalance.join``; a member without an id sends two, the first answered MEMBER_ID_REQUIRED
as Kafka's ``GroupCoordinator.handleJoinGroup`` does since KIP-394), one SyncGroup
(``GroupRebalance.sync``) and, when it was given partitions, one OffsetFetch of them
(``Member._fetch_offsets``, ``_fetch_needed`` set on every assignment). A newcomer first asks FindCoordinator. With auto-commit
on, a member that owned partitions commits before it rejoins (``Member._commit_before_rejoin``, the
Java consumer's ``onJoinPrepare``), whatever its interval (join-cost's is an hour). Records: one
GroupMetadata record per generation (``GroupMetadataManager.storeGroup``), plus one offset record
per committed partition.

Joins: requests = 1 + (N + 1) + N + min(N, P), with auto-commit min(N - 1, P) more (4N + 1 when
every member owns a partition); records = 1, with auto-commit 1 + P. A member with no partition
neither commits nor fetches.
"""

from __future__ import annotations

from .prediction import Count
from .workload import Workload


def counts(event: str, w: Workload) -> tuple[Count, Count]:
    """(coordinator requests, offsets-topic records) of ``event``."""
    n, p = w.members, w.total_partitions

    def owners(members: int) -> int:  # members with a partition: they commit and fetch
        return min(members, p)

    records = p if w.commits else 0
    if event == "join":
        commits = owners(n - 1) if w.commits else 0
        return Count.exact(1 + (n + 1) + n + owners(n) + commits), Count.exact(1 + records)
    if event in ("leave", "crash"):  # the leaver commits and sends LeaveGroup; the others rejoin
        commits = owners(n) if w.commits else 0
        leaver = 1 if event == "leave" else 0
        if event == "crash" and w.commits:
            commits -= 1  # the crashed member commits nothing
        return Count.exact(leaver + 2 * (n - 1) + owners(n - 1) + commits), Count.exact(1 + records)
    if event == "cold_start":  # at least one generation with everyone: 5 requests each
        return Count(5 * n, 5 * n + 3 * n * (n - 1) / 2), Count(1, n)
    if event == "coordinator_failover":  # FindCoordinator and OffsetFetch each, no rebalance
        return Count.exact(2 * n), Count.exact(0)
    return Count.exact(0), Count.exact(0)  # a ZooKeeper leader's loss does not touch the group


#: Critical-path round trips, classic protocol, commits on (one per request and answer; 0.5 for a
#: heartbeat's answer that tells a member to rejoin, the coordinator's one way "push").
CRITICAL_PATHS: dict[str, tuple[tuple[str, float], ...]] = {
    # The newcomer's bootstrap (ApiVersions, Metadata, FindCoordinator: 3) and its JoinGroup overlap
    # the members' wait for their next heartbeat, which runs on its own clock (up to one interval).
    "join": (
        ("members: next Heartbeat's answer REBALANCE_IN_PROGRESS (after up to one interval)", 0.5),
        ("members: OffsetCommit before rejoining", 1),
        ("members: JoinGroup", 1),
        ("leader: SyncGroup (followers answered with it)", 1),
        ("members: OffsetFetch", 1),
    ),
    "leave": (
        ("leaver: OffsetCommit + LeaveGroup", 1.5),
        ("members: Heartbeat's answer", 0.5),
        ("members: OffsetCommit, JoinGroup, SyncGroup, OffsetFetch", 4),
    ),
    "crash": (
        ("members: Heartbeat's answer (after the coordinator expired the member)", 0.5),
        ("members: OffsetCommit, JoinGroup, SyncGroup, OffsetFetch", 4),
    ),
    "cold_start": (
        ("bootstrap + FindCoordinator", 3),
        ("JoinGroup (twice: MEMBER_ID_REQUIRED)", 2),
        ("SyncGroup", 1),
        ("OffsetFetch", 1),
    ),
    "coordinator_failover": (
        ("FindCoordinator", 1),
        ("OffsetFetch", 1),
    ),
}


def critical_path(event: str) -> float | None:
    steps = CRITICAL_PATHS.get(event)
    return sum(rtt for _, rtt in steps) if steps else None


def detection_ms(event: str, w: Workload) -> tuple[float, float]:
    """A crash: the coordinator expires a member ``session.timeout.ms`` after its last heartbeat,
    which came up to one interval before the crash; the others learn it at their next heartbeat.
    A join or leave: at the members' next heartbeat. A failover: at the next heartbeat's failure."""
    t, h = w.session_timeout_ms, w.heartbeat_interval_ms
    if event == "crash":
        return float(t - h), float(t + h)
    if event in ("join", "leave", "coordinator_failover"):
        return 0.0, float(h)
    return 0.0, 0.0

"""The ZooKeeper designs' costs, counted on their code paths (zk_mode).

Every count below is what the members' counted kazoo calls add up to (:mod:`zk_mode.counting`):
reads are get, get_children and exists; writes every create, set, delete and check, one by one or as
ops of a multi; watch events the notifications members receive. Symbols: ``N`` members after a join
(before a leave or crash), ``T`` topics, ``P`` partitions in all, ``M`` partitions moved by the
assignor (:func:`bench.model.workload.moves`), ``g_i``/``l_i`` what member ``i`` gains and gives up.

Joins, as ``rebalance-lab join-cost`` measures them (one member into N-1; commits off):

chain (``zk_mode.election.ChainMember``)
    newcomer: ``catalog.read_topics`` T gets; ``LeaderElectedMember._join`` 3 creates (assignment
    and ``owners/`` found, its registration) and a watched get of the assignment; ``_elect`` one
    get_children and a watched get of its predecessor; the publication's notification and one get.
    Leader: the membership notification, ``_lead`` one get of the assignment with
    ``_current_registrations``' get_children and one get of the new registration, ``_publish`` one
    multi (check + set: 2 writes), then its own data watch's notification and get. Each of the other
    N-2: one notification and one get. ``ZkMember._move_claims``: every moved partition one delete
    and one create (ops of multis) and, as its previous owner is still a member, one probe (a
    watched get) by its new owner, which is notified unless the release came first.
    reads = N + T + 6 + M; writes = 5 + 2M; notifications = N + 1 + [0, M].
herd (``HerdMember``)
    as chain, but every one of the N-1 members is notified of the membership change and reads the
    membership and all N registrations (``_elect`` → ``_read_registrations``), and the newcomer
    reads all N too: reads = N² + 2N + T + 2 + M; writes = 5 + 2M; notifications = 2N - 1 + [0, M].
selfbalance (``zk_mode.selfbalance.SelfBalancingMember``)
    newcomer: T gets, 2 creates (``owners/`` found, its registration). Every member, per attempt
    (``_attempt``): a watched get_children and N gets; each old member releases its whole share
    (one multi: P deletes in all) and every member claims its share (one multi: P creates in all).
    reads = T + N(N+1); writes = 2 + 2P; notifications = N - 1; each attempt that finds a claim
    still held (0.8's race) adds N + 1 reads, its share's creates (the failed multi's ops) and one
    more attempt after ``rebalance_backoff_ms``.
setpartitioner (``zk_mode.partitioner.SetPartitionerMember`` on kazoo's ``SetPartitioner``)
    kazoo's recipe releases every lock and takes them again on any party change: per partition
    one lock release (delete) and one acquisition (``Lock._inner_acquire``: ``ensure_path``'s
    exists, a sequential create, a get_children); per member four reads of the party and the
    wrapper's exists for the generation. reads = 2P + 4N + T + 4; writes = 2P + 1;
    notifications = N - 1.

Leaves and crashes of the last member: :func:`departure_counts`.

Commits (a scenario's default, not join-cost's): every moved partition adds one set by its old owner
before the release (``ZkMember._give_up``) and one get by its new owner (``_take_offsets``); the
periodic commit writes each owned partition once per interval (``ZkOffsets.commit``).
"""

from __future__ import annotations

from .prediction import Count
from .workload import Workload

VARIANTS = ("chain", "herd", "selfbalance", "setpartitioner")


def join_counts(variant: str, w: Workload) -> tuple[Count, Count, Count]:
    """(reads, writes, watch notifications) of one join into ``w.members - 1`` members."""
    n, t, p = w.members, w.topics, w.total_partitions
    m = w.moves("join").moved
    commit_reads, commit_writes = (m, m) if w.commits else (0, 0)
    if variant == "chain":
        reads, writes, events = n + t + 6 + m, 5 + 2 * m, Count(n + 1, n + 1 + m)
    elif variant == "herd":
        reads, writes, events = n * n + 2 * n + t + 2 + m, 5 + 2 * m, Count(2 * n - 1, 2 * n - 1 + m)
    elif variant == "selfbalance":
        reads, writes, events = t + n * (n + 1), 2 + 2 * p, Count.exact(n - 1)
        # 0.8's race: at most one failed attempt per member here, each re-reading and re-claiming.
        shares = w.moves("join").shares
        retry_reads, retry_writes = n * (n + 1), sum(shares.values())
        return (
            Count(reads + commit_reads, reads + commit_reads + retry_reads),
            Count(writes + commit_writes, writes + commit_writes + retry_writes),
            events,
        )
    elif variant == "setpartitioner":
        reads, writes, events = 2 * p + 4 * n + t + 4, 2 * p + 1, Count.exact(n - 1)
        commit_reads, commit_writes = (p, p) if w.commits else (0, 0)  # stop-the-world: all move
    else:
        raise ValueError(f"zk variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    return Count.exact(reads + commit_reads), Count.exact(writes + commit_writes), events


def departure_counts(variant: str, event: str, w: Workload) -> tuple[Count, Count, Count] | None:
    """(reads, writes, watch notifications) when the last of ``w.members`` leaves gracefully
    (``ZkMember._task_leave``: one multi deleting its claims and registration) or crashes (its
    session's expiry deletes them; the server's work, not a member's call); None where the model
    has no formula (setpartitioner). ``s`` is the departed member's share, free to take at once; the
    other ``M - s`` moved partitions go from one live member to another (probed by the new owner).
    A crashed member that was not the last also wakes its successor (chain: one get_children and
    one get more)."""
    n, p = w.members, w.total_partitions
    mv = w.moves(event)
    departed = f"m{n - 1}"
    share = mv.lost.get(departed, 0)
    m = mv.moved
    handed = m - share
    leaver = share + 1 if event == "leave" else 0
    commit = (m, m) if w.commits else (0, 0)
    if variant in ("chain", "herd"):
        # leader: notification, assignment get + get_children, publish (2), own data watch + get;
        # every other live member: notification and get; herd: all N-1 read the membership too.
        if variant == "chain":
            reads, first_events = n + 1 + handed, n
        else:
            reads, first_events = n * n + handed, 2 * n - 2
        writes = leaver + 2 + 2 * handed + share
        return (
            Count.exact(reads + commit[0]),
            Count.exact(writes + commit[1]),
            Count(first_events, first_events + handed),
        )
    if variant == "selfbalance":
        reads = (n - 1) * n
        writes = (p - share) + p + leaver
        return Count(reads, reads + (n - 1) * n), Count(writes, writes + p), Count.exact(n - 1)
    return None


#: Critical-path round trips per event on this code (commits on, as the scenarios run): one per
#: request and its answer, 0.5 for a watch notification (one way). Each list names the steps.
CRITICAL_PATHS: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("chain", "join"): (
        ("newcomer: session handshake", 1),
        ("newcomer: catalog read (pipelined)", 1),
        ("newcomer: registration create (pipelined with the group's znodes)", 1),
        ("leader: membership notification", 0.5),
        ("leader: get_children + assignment get (pipelined)", 1),
        ("leader: new registration get", 1),
        ("leader: publish multi", 1),
        ("old owner: assignment notification", 0.5),
        ("old owner: assignment get", 1),
        ("old owner: commit of given-up partitions (pipelined)", 1),
        ("old owner: release multi", 1),
        ("new owner: probe's watch notification", 0.5),
        ("new owner: claim multi", 1),
        ("new owner: offsets read-back (pipelined)", 1),
    ),
    ("chain", "leave"): (
        ("leaver: commit (pipelined)", 1),
        ("leaver: claims + registration delete multi", 1),
        ("leader: membership notification", 0.5),
        ("leader: get_children + assignment get", 1),
        ("leader: publish multi", 1),
        ("members: assignment notification + get", 1.5),
        ("old owner: commit + release multi", 2),
        ("new owner: notification + claim multi", 1.5),
        ("new owner: offsets read-back", 1),
    ),
    ("chain", "crash"): (
        ("leader: membership notification (after the session expires)", 0.5),
        ("leader: get_children + assignment get", 1),
        ("leader: publish multi", 1),
        ("members: assignment notification + get", 1.5),
        ("old owner: commit + release multi", 2),
        ("new owner: notification + claim multi", 1.5),
        ("new owner: offsets read-back", 1),
    ),
    ("chain", "cold_start"): (
        ("session handshake, catalog read, registration", 3),
        ("assignment get with get_children (pipelined), then the predecessor", 2),
        ("leader: publish multi", 1),
        ("members: assignment notification + get", 1.5),
        ("claim multi", 1),
        ("offsets read-back", 1),
    ),
    ("selfbalance", "join"): (
        ("newcomer: session handshake, catalog read, registration", 3),
        ("members: membership notification", 0.5),
        ("get_children", 1),
        ("commit (pipelined)", 1),
        ("release multi + registrations' gets (pipelined)", 1),
        ("claim multi", 1),
        ("offsets read-back", 1),
    ),
    ("selfbalance", "crash"): (
        ("members: membership notification (after the session expires)", 0.5),
        ("get_children", 1),
        ("commit (pipelined)", 1),
        ("release multi + registrations' gets (pipelined)", 1),
        ("claim multi", 1),
        ("offsets read-back", 1),
    ),
    ("selfbalance", "cold_start"): (
        ("session handshake, catalog read, registration", 3),
        ("get_children", 1),
        ("release multi + registrations' gets (pipelined)", 1),
        ("claim multi", 1),
        ("offsets read-back", 1),
    ),
}
# herd's reactions have the same critical path as chain's: its N reads per member are pipelined
# (one round trip), so herd costs reads and CPU, not round trips.
for _event in ("join", "leave", "crash", "cold_start"):
    CRITICAL_PATHS[("herd", _event)] = CRITICAL_PATHS[("chain", _event)]
CRITICAL_PATHS[("selfbalance", "leave")] = (
    ("leaver: commit + claims and registration delete multi", 2),
    *CRITICAL_PATHS[("selfbalance", "crash")],
)


def setpartitioner_round_trips(event: str, w: Workload) -> float:
    """kazoo's SetPartitioner takes its locks one after another (``SetPartitioner._allocate``):
    each lock an ``ensure_path`` exists, a create and a get_children (3 round trips), after every
    member released all of its locks one by one (1 each) and the party held still for
    ``time_boundary`` (a constant). Per member: its share of locks to take and to give back."""
    n = w.members if event == "join" else max(w.members - 1, 1)
    take = -(-w.total_partitions // n)
    give = -(-w.total_partitions // max(n - 1, 1)) if event == "join" else take
    joining = 3 + 2 if event in ("join", "cold_start") else 0  # handshake, catalog, party znodes
    detect = 0.5  # the party's children watch
    return joining + detect + 2 + give + 3 * take + (1 if w.commits else 0) + (1 if w.commits else 0)


def critical_path(variant: str, event: str, w: Workload | None = None) -> float | None:
    """The round trips on the critical path of ``event``, or None where none is documented."""
    if variant == "setpartitioner" and event in ("join", "leave", "crash", "cold_start"):
        return setpartitioner_round_trips(event, w or Workload(members=9, partitions=32, commits=True))
    steps = CRITICAL_PATHS.get((variant, event))
    return sum(rtt for _, rtt in steps) if steps else None


def detection_ms(event: str, w: Workload, tick_ms: int = 500) -> tuple[float, float]:
    """When members can first notice ``event``: a crash once ZooKeeper expires the session (its
    expiry runs per tick: between the timeout and one tick later); a leave or join at once (a
    notification); a ZooKeeper leader's loss once kazoo's connection to it times out (kazoo pings
    every third of the timeout and gives up on a server after two thirds of it)."""
    if event == "crash":
        return float(w.session_timeout_ms), float(w.session_timeout_ms + tick_ms)
    if event == "zk_leader_loss":
        return 0.0, w.session_timeout_ms * 2 / 3
    return 0.0, 0.0

"""ZkMember: what every zk_mode variant shares — the kazoo session, one worker, ownership claims.

Over 500 lines because the claims' hand-over (one multi, its fallback, the probes) lives beside the
worker whose state it changes; split apart, each half would reach into the other's fields.

Threading: kazoo calls watchers and state listeners on its own threads, which must never block.
They only enqueue a task; one worker thread per member runs tasks in order (Kafka 0.8's consumer had
the same single "watcher executor"), so a member's view of the group is never touched concurrently.

Session handling, as a careful kazoo user does it:

* ``SUSPENDED``: the session may or may not survive, so the member stops acting as owner at once
  (``revoked``, reason ``suspended``) but keeps its claims in ZooKeeper.
* ``CONNECTED`` again in the same session: the claims are still ours; the variant re-syncs and
  announces ``assigned`` again.
* ``LOST``: every ephemeral node of the session is gone. The member emits ``session_lost``, forgets
  its claims and joins again with the new session kazoo opens. A member paused (SIGSTOP) past its
  session timeout goes through SUSPENDED then LOST when it wakes, so it never acts on old partitions.

Ownership hand-over (chain, herd, selfbalance): a member owns a partition only while it holds the
ephemeral znode ``owners/<topic>-<partition>``; ZooKeeper's create is the mutual exclusion. A member
moves its ownership in one ``multi`` (:meth:`ZkMember._move_claims`): the deletes of the claims it
gives up and the creates of its new ones, one round trip whatever the number of partitions. When a
claim is still held by its previous owner the multi changes nothing, and the member does each step
on its own, pipelined: the deletes, the creates, and a ``get`` with a watch on each claim still
held, retried when its owner deletes it. Cost per moved partition: one delete by the old owner and
one create by the new one (as ops of a multi); a collision adds the failed multi's ops, one more
create, one get (with a watch) and, unless the claim was released meanwhile, one watch notification. A graceful leave deletes the member's claims
and its registration in one multi.

Offsets, as Kafka 0.8.2's ``ZookeeperConsumerConnector`` with ``auto.commit.enable`` (its default):
every variant commits the offsets of the partitions it owns to ZooKeeper (:mod:`zk_mode.offsets`)
every ``auto_commit_interval_ms`` (0.8.2's ``autoCommit`` on its scheduler; here a timer queues a
``commit`` task for the worker), synchronously before it gives partitions up (0.8.2's
``ZKRebalancerListener.closeFetchersForQueues`` → ``commitOffsets`` before
``releasePartitionOwnership``) and on a graceful leave (0.8.2's ``shutdown`` → ``commitOffsets``). A
new owner reads the stored offsets back once it holds its claims and before it reports the partitions
``assigned`` (0.8.2's ``rebalance`` → ``fetchOffsets`` before ``reflectPartitionOwnershipDecision``
reports success). ``enable_auto_commit=false`` (a scenario's ``offsets: none``) turns commits and
read-backs off.

Records (``options.consume``): the member hands what it owns to its records thread
(:mod:`zk_mode.consumption`) after announcing it, stops it before the commit that precedes giving
partitions up, and commits the positions that thread reached instead of advancing them by one.

This module is a little over 500 lines because the session, worker, claims, offsets and records
hooks of a member share its ownership state; the variants and the records thread live apart.
"""

from __future__ import annotations

import importlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import KazooState, WatchedEvent
from kazoo.retry import KazooRetry

from group_api import (
    LEAVE_BOUND_S,
    Assignment,
    CommitSettings,
    ConfigError,
    EventKind,
    EventSink,
    GroupMember,
    MemberConfig,
    MemberState,
)
from group_api.consumption import ConsumeSettings
from group_api.events import TopicPartition

from . import catalog
from .consumption import DEFAULT_BROKERS_ZK_ROOT, RecordsFetcher, brokers_from_zookeeper
from .counting import CountingKazooClient
from .offsets import ZkOffsets
from .paths import GroupPaths
from .pipeline import gather, value

log = logging.getLogger(__name__)

#: Variant name -> "module:class". The first is the default.
VARIANT_CLASSES = {
    "chain": "zk_mode.election:ChainMember",
    "herd": "zk_mode.election:HerdMember",
    "selfbalance": "zk_mode.selfbalance:SelfBalancingMember",
    "setpartitioner": "zk_mode.partitioner:SetPartitionerMember",
}
#: Variants another program runs: ``curator`` is a Java member on Apache Curator's LeaderLatch
#: (java/member, CuratorMember) in chain's znode layout; ``rebalance-lab member`` runs it on the JVM.
EXTERNAL_VARIANTS = {"curator": "java"}
VARIANTS = (*VARIANT_CLASSES, *EXTERNAL_VARIANTS)


def create_member(config: MemberConfig, sink: EventSink) -> ZkMember:
    variant = config.variant or VARIANTS[0]
    if variant not in VARIANT_CLASSES:
        raise ConfigError(f"variant: zk mode has variants {', '.join(VARIANTS)}, got {variant!r}")
    if not config.zk_hosts:
        raise ConfigError("zk_hosts: zk mode needs a ZooKeeper connect string (--zk HOST:PORT,...)")
    module_name, _, cls_name = VARIANT_CLASSES[variant].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config.with_(variant=variant), sink)


def decode_json(raw: bytes | None, path: str) -> dict[str, Any] | None:
    """Parse a znode's JSON object; garbage is logged and skipped, never raised into the group."""
    try:
        value = json.loads(raw or b"")
        if isinstance(value, dict):
            return value
        raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, int digits, nesting depth
        log.warning("skipping unparseable data in %s (%r...): %s", path, (raw or b"")[:60], exc)
        return None


def parse_subscription(
    data: dict[str, Any] | None, path: str, known_topics: Iterable[str]
) -> tuple[str, list[str]] | None:
    """A registration's member id and its topics that the catalog knows; None (logged) for any
    other shape, so one bad registration never stops the group."""
    if data is None:
        return None
    member, topics = data.get("member"), data.get("topics", [])
    if (
        not isinstance(member, str)
        or not isinstance(topics, list)
        or not all(isinstance(t, str) for t in topics)
    ):
        log.warning("skipping registration of the wrong shape in %s: %r", path, data)
        return None
    known = set(known_topics)
    return member, [t for t in topics if t in known]


def parse_share(raw: Any, known: Iterable[TopicPartition], path: str) -> list[TopicPartition] | None:
    """An assignment share ``[[topic, partition], ...]`` of partitions in the catalog; None (logged)
    for any other shape, so a bad share is skipped instead of raising into the worker."""
    known = set(known)
    if isinstance(raw, list) and all(
        isinstance(tp, list)
        and len(tp) == 2
        and isinstance(tp[0], str)
        and type(tp[1]) is int  # not bool, an int subclass
        and (tp[0], tp[1]) in known
        for tp in raw
    ):
        return [(t, p) for t, p in raw]
    log.warning("skipping assignment share of the wrong shape in %s: %r", path, raw)
    return None


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class ZkMember(GroupMember):
    """Base of the zk_mode variants. Subclasses implement ``_join`` and ``_resync``."""

    mode = "zk"
    #: Worker wake-up period for variants that poll (kazoo's SetPartitioner); None = only on tasks.
    poll_interval: float | None = None

    def __init__(self, config: MemberConfig, sink: EventSink, **kwargs: Any) -> None:
        super().__init__(config, sink, **kwargs)
        self.paths = GroupPaths(config.zk_root, config.group)
        self.client = CountingKazooClient(
            hosts=config.zk_hosts,
            timeout=config.session_timeout / 1000.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=1.0),
        )
        self.partitions_per_topic: dict[str, int] = {}
        self.generation: int | None = None
        self._tasks: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"zk-member-{self.member_id}", daemon=True)
        self._stopping = threading.Event()
        self._left = threading.Event()
        self._claims: set[TopicPartition] = set()  # owner znodes this session holds
        #: partitions of our target whose previous owner is another member still in the group
        #: (variants with a published decision fill it), and those of them we probed already
        self._handed_from: dict[TopicPartition, str] = {}
        self._probed: set[TopicPartition] = set()
        self._released: set[TopicPartition] = set()  # probed, and its watch said released
        self._owned: set[TopicPartition] = set()  # what we announced as owned (assigned - revoked)
        self._target: tuple[int | None, frozenset[TopicPartition], str | None] | None = None
        self._suspended = False
        self._session_lost = False
        self.commits = CommitSettings.from_options(config.options)
        self.offsets = ZkOffsets(self.client, self.paths)
        self._committer = threading.Thread(
            target=self._commit_timer, name=f"zk-commit-{self.member_id}", daemon=True
        )
        # Records (options.consume): fetched from the brokers that register in this ZooKeeper.
        self.records: RecordsFetcher | None = None
        consume = ConsumeSettings.from_options(config.options)
        if consume.enabled:
            brokers_root = str(config.options.get("brokers_zk_root", DEFAULT_BROKERS_ZK_ROOT))
            self.records = RecordsFetcher(
                self.member_id,
                lambda: brokers_from_zookeeper(self.client, brokers_root),
                consume,
                self._on_consumed,
            )

    # -- the interface -------------------------------------------------------------------------

    def start(self) -> None:
        self.client.add_listener(self._on_state)
        try:
            self.client.start(timeout=max(10.0, self.config.session_timeout / 1000.0))
        except KazooTimeoutError:
            self.client.close()
            raise ConnectionError(f"cannot reach ZooKeeper at {self.config.zk_hosts}") from None
        try:
            self.partitions_per_topic = catalog.read_topics(
                self.client, self.config.zk_root, self.config.topics
            )
        except ConfigError:
            self.client.stop()
            self.client.close()
            raise
        self.state = MemberState.REBALANCING
        self._worker.start()
        if self.commits.enabled:
            self._committer.start()
        if self.records is not None:
            self.records.start()
        self.submit("join")

    def leave(self) -> None:
        """Within :data:`~group_api.LEAVE_BOUND_S`: the worker deletes our znodes if ZooKeeper is
        reachable; when it does not finish in half the bound (ZooKeeper stopped answering in the
        middle), closing the client fails its pending calls, and the close removes our ephemeral
        znodes or, with the servers gone, their session's expiry does."""
        if not self._worker.is_alive():
            return
        self.submit("leave")
        if self._left.wait(LEAVE_BOUND_S / 2):
            return
        log.warning(
            "%s: ZooKeeper at %s unreachable: our leave got no answer in %.1f s; closing the session "
            "instead (our ephemeral znodes go with it)",
            self.member_id,
            self.config.zk_hosts,
            LEAVE_BOUND_S / 2,
        )
        self._stop_client()
        if not self._left.wait(LEAVE_BOUND_S / 2):
            log.error("%s: leave did not finish within %.1f s", self.member_id, LEAVE_BOUND_S)

    def close(self) -> None:
        if self.records is not None:
            self.records.close()
        self._stopping.set()
        self._tasks.put(("stop", ()))
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=10)
        self._stop_client()

    def _stop_client(self) -> None:
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # closing twice or a dead connection: nothing left to free
            log.debug("close of %s", self.member_id, exc_info=True)

    def zk_counts(self) -> dict[str, int]:
        return self.client.counts()

    # -- the worker ----------------------------------------------------------------------------

    def submit(self, task: str, *args: Any) -> None:
        self._tasks.put((task, args))

    def _run(self) -> None:
        while True:
            try:
                task, args = self._tasks.get(timeout=self.poll_interval)
            except queue.Empty:
                task, args = "poll", ()
            if task == "stop":
                return
            if self._left.is_set() and task != "leave":
                continue
            try:
                getattr(self, f"_task_{task}")(*args)
            except (ConnectionLoss, SessionExpiredError, KazooTimeoutError) as exc:
                # The state listener queues the recovery (resync or rejoin); nothing to do here.
                log.info("%s: %s interrupted by %s", self.member_id, task, type(exc).__name__)
            except KazooException:
                log.exception("%s: %s failed; retrying on the next change", self.member_id, task)
            except Exception:
                log.exception("%s: %s failed", self.member_id, task)

    def _commit_timer(self) -> None:
        """0.8.2's auto-committer: a ``commit`` task every ``auto_commit_interval_ms``, run by the
        worker between the group's own tasks."""
        while not self._stopping.wait(self.commits.interval_ms / 1000):
            self.submit("commit")

    def _on_state(self, state: KazooState) -> None:
        # Called on kazoo's connection thread: only enqueue.
        if not self._stopping.is_set():
            self.submit("state", state)

    def _task_state(self, state: KazooState) -> None:
        if state == KazooState.SUSPENDED:
            self._suspended = True
            self._revoke(self._owned, reason="suspended")
            self.state = MemberState.REBALANCING
        elif state == KazooState.LOST:
            self._suspended = False
            self._session_lost = True
            self._revoke(self._owned, reason="session_lost")
            self.offsets.forget(set(self.offsets.positions))
            self._claims.clear()
            self._handed_from.clear()
            self._probed.clear()
            self._released.clear()
            self._target = None
            self.generation = None
            self.state = MemberState.REBALANCING
            self.emit(EventKind.SESSION_LOST)
        elif state == KazooState.CONNECTED:
            if self._session_lost:
                self._session_lost = False
                self._suspended = False
                self._join()
            elif self._suspended:
                self._suspended = False
                self._resync()

    def _task_join(self) -> None:
        self._join()

    def _task_claim(self, path: str) -> None:
        # A claim we waited for was released: try the current target again.
        self._released.update(tp for tp in self._handed_from if self.paths.owner(*tp) == path)
        if self._target is not None:
            self._apply(*self._target)

    def _task_commit(self) -> None:
        # Not while disconnected: kazoo queues a request until it reconnects and its synchronous
        # calls have no timeout, so a commit asked for now would hold this worker until the network
        # heals, behind the SUSPENDED task that stops us acting as owner (our session expires
        # meanwhile and others take our partitions). A commit in flight at the drop fails at once.
        if self.state == MemberState.STABLE and not self._suspended and self.client.connected:
            self._commit(self._owned)

    def _task_leave(self) -> None:
        try:
            self._stop_consuming(self._owned)
            if self.client.connected and not self._suspended:
                self._commit(self._owned)  # 0.8.2's shutdown: commitOffsets before closing
            self._revoke(self._owned, reason="leave")
            if not self.client.connected:
                # A request now would wait for a reconnection that may never come.
                log.warning(
                    "%s: ZooKeeper at %s unreachable: leaving without deleting our znodes (ephemeral: "
                    "they go when our session expires)",
                    self.member_id,
                    self.config.zk_hosts,
                )
                return
            # Claims and registration in one multi: the group sees us gone with our claims released.
            registration = self._registration()
            self._move_claims(self._claims, (), also_delete=[registration] if registration else [])
            self._leave_group()
        except KazooException:
            log.warning(
                "%s: leave did not finish cleanly; the session's close removes the rest", self.member_id
            )
        finally:
            self._set_assignment(None)
            self.state = MemberState.LEFT
            self.emit(EventKind.LEFT, generation=self.generation, zk_calls=self.client.counts())
            self._stopping.set()
            self._left.set()

    def _task_poll(self) -> None:
        """Periodic work for polling variants."""

    # -- hooks for variants --------------------------------------------------------------------

    def _join(self) -> None:
        raise NotImplementedError

    def _resync(self) -> None:
        """The session survived a disconnection: re-announce what we still own."""
        if self._target is not None:
            self._apply(*self._target)

    def _registration(self) -> str | None:
        """Our registration znode, which a graceful leave deletes with our claims (the variant knows
        where it is); None when the variant leaves through its recipe (:meth:`_leave_group`)."""
        return None

    def _leave_group(self) -> None:
        """What leaving takes besides deleting :meth:`_registration`."""

    # -- ownership -----------------------------------------------------------------------------

    def _apply(self, generation: int | None, target: Iterable[TopicPartition], leader: str | None) -> bool:
        """Move our ownership to ``target``: release what we give up, then claim the rest.

        Announces ``assigned`` only once every claim is held; returns whether it was.
        """
        target = frozenset(target)
        self._target = (generation, target, leader)
        if self._suspended:
            return False
        self._give_up(self._owned - target, reason="rebalance")
        waiting = self._move_claims(self._claims - target, target - self._claims)
        if waiting:
            log.debug("%s: waiting for %d claims of generation %s", self.member_id, len(waiting), generation)
            return False
        if self.state == MemberState.STABLE and self.generation == generation and self._owned == target:
            return True  # already announced: one more released claim or resync changes nothing
        new = target - self._owned
        stored = self._take_offsets(new, generation)
        self.generation = generation
        self._owned = set(target)
        self._set_assignment(Assignment.of(generation or 0, target, leader, self.member_id))
        self.state = MemberState.STABLE
        self.emit(EventKind.ASSIGNED, generation=generation, partitions=target, leader=leader)
        if self.records is not None:
            self.records.assign({tp: stored.get(tp, -1) for tp in new})
        return True

    # -- records ---------------------------------------------------------------------------------

    def _stop_consuming(self, partitions: Iterable[TopicPartition]) -> None:
        """Before a commit that precedes giving partitions up, and on revocation: fetched records of
        ``partitions`` no longer count (:meth:`RecordsFetcher.stop_partitions`)."""
        if self.records is not None:
            self.records.stop_partitions(partitions)

    def _on_consumed(self, records: Any) -> None:
        """The records thread processed one fetched batch of an owned partition."""
        self.emit(
            EventKind.CONSUMED,
            generation=self.generation,
            partitions=[records.tp],
            first_offset=records.offsets[0],
            last_offset=records.offsets[-1],
            count=len(records.offsets),
            produce_ms_min=min(records.produce_ms, default=None),
            produce_ms_max=max(records.produce_ms, default=None),
        )

    # -- offsets -------------------------------------------------------------------------------

    def _commit(self, partitions: Iterable[TopicPartition]) -> None:
        """Commit the offsets of ``partitions`` that changed (0.8.2's ``commitOffsets``)."""
        partitions = set(partitions)
        if not self.commits.enabled or not partitions:
            return
        reached = None if self.records is None else self.records.positions(partitions)
        written = self.offsets.commit(partitions, reached)
        if written:
            self.emit(
                EventKind.OFFSETS_COMMITTED,
                generation=self.generation,
                offsets=[[t, p, o] for (t, p), o in sorted(written.items())],
            )

    def _give_up(self, partitions: Iterable[TopicPartition], reason: str) -> None:
        """Stop owning ``partitions``: commit them first while our claims still stand, so their
        next owner reads what we consumed (0.8.2 commits before ``releasePartitionOwnership``)."""
        partitions = set(partitions) & self._owned
        self._stop_consuming(partitions)
        self._commit(partitions)
        self._revoke(partitions, reason=reason)
        self.offsets.forget(partitions)

    def _take_offsets(
        self, partitions: Iterable[TopicPartition], generation: int | None
    ) -> dict[TopicPartition, int]:
        """Read back the stored offsets of newly owned partitions before announcing them."""
        partitions = set(partitions)
        if not self.commits.enabled or not partitions:
            return {}
        sent_ns = self._clock()
        fetched = self.offsets.fetch(partitions)
        extra: dict[str, Any] = {"unreadable": list(fetched.unreadable)} if fetched.unreadable else {}
        self.emit(
            EventKind.OFFSETS_FETCHED,
            generation=generation,
            offsets=[[t, p, o] for (t, p), o in sorted(fetched.offsets.items())],
            request_mono_ns=sent_ns,
            **extra,
        )
        return fetched.offsets

    # -- claims ----------------------------------------------------------------------------------

    def _move_claims(
        self,
        release: Iterable[TopicPartition],
        claim: Iterable[TopicPartition],
        also_delete: Iterable[str] = (),
    ) -> list[TopicPartition]:
        """Delete the claims we give up (and ``also_delete``) and create the new ones in one
        ``multi``: one round trip. Returns the claims still held by their previous owner, each
        watched (:meth:`_claim_released` retries them).

        A claim whose previous owner is still in the group (:attr:`_handed_from`, from the decision)
        is probed instead, pipelined behind the multi: a ``get`` with a watch, which finds it gone
        (claimed at once, in one more multi) or sets the watch that its owner's release fires. The
        multi is all or nothing: when a claim is held all the same (or a release is already gone)
        nothing happens, and each step goes on its own, pipelined: the deletes (one round trip), the
        creates (one), a probe of each one still held (one).
        """
        release, also_delete = sorted(release), sorted(also_delete)
        handed = sorted(tp for tp in claim if tp in self._handed_from and tp not in self._probed)
        # Probed and still held: the watch says when, so no call until then.
        held = {tp for tp in claim if tp in self._probed and tp not in self._released}
        free = sorted(set(claim) - set(handed) - held)
        sent = self._send_moves(release, free, also_delete)
        probes = [self.client.get_async(self.paths.owner(*tp), watch=self._claim_released) for tp in handed]
        waiting = self._settle_moves(sent, release, free, also_delete)
        self._probed.update(handed)
        answers = gather(probes)
        gone = [tp for tp, answer in zip(handed, answers, strict=True) if isinstance(answer, NoNodeError)]
        for answer in answers:
            if not isinstance(answer, NoNodeError):
                value(answer)
        waiting += [tp for tp in handed if tp not in gone] + sorted(held)
        return waiting + self._settle_moves(self._send_moves([], gone, []), [], gone, [])

    def _send_moves(
        self, release: list[TopicPartition], claim: list[TopicPartition], also_delete: list[str]
    ) -> IAsyncResult | None:
        """Send the multi of :meth:`_move_claims` without waiting for its answer (None: no change)."""
        if not (release or claim or also_delete):
            return None
        tx = self.client.transaction()
        for tp in release:
            tx.delete(self.paths.owner(*tp))
        for path in also_delete:
            tx.delete(path)
        for tp in claim:
            tx.create(self.paths.owner(*tp), self.member_id.encode(), ephemeral=True)
        return tx.commit_async()

    def _settle_moves(
        self,
        sent: IAsyncResult | None,
        release: list[TopicPartition],
        claim: list[TopicPartition],
        also_delete: list[str],
    ) -> list[TopicPartition]:
        """The answer of :meth:`_send_moves`, and the fallback when the multi changed nothing."""
        if sent is None:
            return []
        if not any(isinstance(r, Exception) for r in value(gather([sent])[0])):
            self._claims.difference_update(release)
            self._claims.update(claim)
            return []
        deletes = [self.paths.owner(*tp) for tp in release] + also_delete
        for answer in gather(self.client.delete_async(path) for path in deletes):
            if not isinstance(answer, NoNodeError):
                value(answer)
        self._claims.difference_update(release)
        return self._claim_each(claim)

    def _claim_each(self, claims: list[TopicPartition]) -> list[TopicPartition]:
        """Create each claim (pipelined); watch those still held by someone else."""
        waiting: list[TopicPartition] = []
        while claims:
            paths = [self.paths.owner(*tp) for tp in claims]
            created = gather(
                self.client.create_async(p, self.member_id.encode(), ephemeral=True, makepath=True)
                for p in paths
            )
            held = []
            for tp, answer in zip(claims, created, strict=True):
                if isinstance(answer, NodeExistsError):
                    held.append(tp)
                else:
                    value(answer)
                    self._claims.add(tp)
            # A get, not an exists: on a znode already gone it sets no watch (an exists would, and
            # our own create would fire it).
            probes = gather(
                self.client.get_async(self.paths.owner(*tp), watch=self._claim_released) for tp in held
            )
            gone = [self._claim_gone(tp, probe) for tp, probe in zip(held, probes, strict=True)]
            waiting += [tp for tp, released in zip(held, gone, strict=True) if not released]
            claims = [tp for tp, released in zip(held, gone, strict=True) if released]  # again
        return waiting

    def _remove_foreign_claim(self, path: str, version: int) -> None:
        """A persistent znode where claims are ephemeral: no member's session wrote it, and it would
        hold the partition forever. Treated as absent: removed (at the version seen), logged."""
        log.warning("%s: %s is no member's claim (persistent): removing it", self.member_id, path)
        try:
            self.client.delete(path, version=version)
        except (NoNodeError, BadVersionError):
            pass  # gone or changed meanwhile: the next attempt sees what is there now

    def _claim_gone(self, tp: TopicPartition, probe: Any) -> bool:
        """Whether a held claim's probe found it gone; a persistent one is removed and counts as gone."""
        if isinstance(probe, NoNodeError):
            return True
        found = value(probe)
        if found is None:
            return True
        _, stat = found
        if stat.ephemeralOwner == 0:
            self._remove_foreign_claim(self.paths.owner(*tp), stat.version)
            return True
        return False

    def _claim_released(self, event: WatchedEvent) -> None:
        self.submit("claim", event.path)

    def _release(self, partitions: Iterable[TopicPartition]) -> None:
        self._move_claims(set(partitions) & self._claims, ())

    def _revoke(self, partitions: Iterable[TopicPartition], reason: str) -> None:
        partitions = set(partitions) & self._owned
        if not partitions:
            return
        self._stop_consuming(partitions)
        self._owned -= partitions
        self._set_assignment(None if not self._owned else self._assignment_with(self._owned))
        self.emit(EventKind.REVOKED, generation=self.generation, partitions=partitions, reason=reason)

    def _assignment_with(self, owned: set[TopicPartition]) -> Assignment | None:
        current = self.assignment()
        if current is None:
            return None
        return Assignment(current.generation, tuple(sorted(owned)), current.leader_id, current.is_leader)

    def _set_assignment(self, assignment: Assignment | None) -> None:
        with self._lock:
            self._assignment = assignment

    def all_partitions(self) -> list[TopicPartition]:
        return [
            (t, p) for t in sorted(self.partitions_per_topic) for p in range(self.partitions_per_topic[t])
        ]

    def subscription(self) -> dict[str, Any]:
        return {"member": self.member_id, "topics": list(self.config.topics), "registered": time.time()}

"""Kafka 0.8's self-balancing consumer: no leader, every member computes the whole assignment.

Each member registers ``members/<member id>`` (EPHEMERAL) and watches the membership children. On
every change it runs Kafka 0.8's ``syncedRebalance``: commit and release every partition it owns, read every
registration, compute the assignment itself with the configured assignor (range by default, as in
0.8), and claim its share with ephemeral owner znodes, then read its share's offsets back. A claim that is still held by its previous
owner fails the attempt: the member deletes what it claimed, sleeps ``rebalance_backoff_ms`` and tries
again, at most ``rebalance_max_retries`` times (0.8's defaults: 2000 ms and 4).

One deviation, so a benchmark run cannot wedge: where 0.8 threw ``ConsumerRebalanceFailedException``
after the last retry, this member logs the failure and schedules one more rebalance after the
backoff. The generation is the membership's ``cversion``: members that saw the same membership
computed the same assignment.

Cost of one join into a group of N, as 0.8 paid it: every member wakes (N notifications), re-reads
the children and all N registrations (N² reads), deletes and re-creates its claims (about 2P writes).
What 0.8 did one call at a time goes out pipelined here, the same calls in fewer round trips: the
release (one ``multi``) together with the N registrations' reads, then the claims as one ``multi``.

Round trips on the critical path (a notification counts half; commits on; the steps in
:data:`bench.model.zookeeper.CRITICAL_PATHS`): a join 8.5 (the newcomer's handshake, catalog and
registration: 3; the members' notification 0.5; ``get_children`` 1; the commit 1; the release with
the reads 1; the claims 1; the offsets' read-back 1), a crash 5.5 after the session's expiry (the
same from the notification on), a graceful leave 7.5 (the leaver's commit and delete multi first),
a cold start 7. Each attempt that finds a claim still held adds the backoff and another 3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.states import WatchedEvent

from group_api import Assignment, EventKind, MemberState
from group_api.assignors import assign

from .member import ZkMember, decode_json, encode_json, parse_subscription
from .pipeline import gather, value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfBalanceOptions:
    rebalance_backoff_ms: int = 2_000  # 0.8: rebalance.backoff.ms (= zookeeper.sync.time.ms)
    rebalance_max_retries: int = 4  # 0.8: rebalance.max.retries

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SelfBalanceOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in options.items() if k in known})


class SelfBalancingMember(ZkMember):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = SelfBalanceOptions.from_options(self.config.options)
        self._registered = False

    def _join(self) -> None:
        """One round trip: the registration, with ``owners/`` created (or found) in the same pipeline."""
        owners, registered = gather(
            [
                self.client.create_async(self.paths.owners, makepath=True),
                self.client.create_async(
                    self.paths.members + "/" + self.member_id,
                    encode_json(self.subscription()),
                    ephemeral=True,
                    makepath=True,
                ),
            ]
        )
        for answer in (owners, registered):
            if not isinstance(answer, NodeExistsError):  # ours may have survived a reconnect
                value(answer)
        self._registered = True
        self.emit(EventKind.JOINED, znode=self.member_id)
        self._rebalance()

    def _members_changed(self, event: WatchedEvent) -> None:
        self.submit("rebalance")

    def _task_rebalance(self) -> None:
        if self._registered:
            self._rebalance()

    def _resync(self) -> None:
        self._rebalance()

    def _rebalance(self) -> None:
        backoff = self.options.rebalance_backoff_ms / 1000.0
        for attempt in range(1, self.options.rebalance_max_retries + 1):
            if self._attempt():
                return
            log.info("%s: rebalance attempt %d failed on a held claim; backing off", self.member_id, attempt)
            if self._stopping.wait(backoff):
                return
        log.warning(
            "%s: can't rebalance after %d retries; trying again after the backoff",
            self.member_id,
            self.options.rebalance_max_retries,
        )
        self.submit("rebalance")

    def _attempt(self) -> bool:
        """One pass of 0.8's ``rebalance()``; False when a claim was still held by someone else."""
        children, stat = self.client.get_children(
            self.paths.members, watch=self._members_changed, include_data=True
        )
        self._give_up(self._owned, reason="rebalance")  # 0.8.2: commitOffsets, then release
        # The release (one multi) and every registration's read go out together: one round trip.
        held = sorted(self._claims)
        released = self._send_moves(held, [], [])
        nodes = sorted(children)
        paths = [f"{self.paths.members}/{child}" for child in nodes]
        reads = gather(self.client.get_async(path) for path in paths)
        self._settle_moves(released, held, [], [])
        subscriptions: dict[str, list[str]] = {}
        for path, answer in zip(paths, reads, strict=True):
            if isinstance(answer, NoNodeError):
                continue
            parsed = parse_subscription(decode_json(value(answer)[0], path), path, self.partitions_per_topic)
            if parsed is not None:
                subscriptions[parsed[0]] = parsed[1]
        if self.member_id not in subscriptions:
            return True  # our registration is gone: the session is ending and we will rejoin
        share = assign(self.config.assignor, subscriptions, self.partitions_per_topic)[self.member_id]
        # 0.8 claims one partition after another and gives up on the first still held; one multi
        # claims them all or none, so nothing of ours is left to delete when one is held.
        tx = self.client.transaction()
        for tp in share:
            tx.create(self.paths.owner(*tp), self.member_id.encode(), ephemeral=True)
        results = tx.commit() if share else []
        if any(isinstance(r, NodeExistsError) for r in results):
            return False
        if any(isinstance(r, Exception) for r in results):
            self.client.ensure_path(self.paths.owners)  # deleted under us: again after the backoff
            return False
        self._claims.update(share)
        generation = stat.cversion
        self._take_offsets(share, generation)  # 0.8.2: fetchOffsets before reporting ownership
        self.generation = generation
        self._owned = set(share)
        self._set_assignment(Assignment.of(generation, share, None, self.member_id))
        self.state = MemberState.STABLE
        self.emit(EventKind.ASSIGNED, generation=generation, partitions=share, leader=None)
        return True

    def _registration(self) -> str | None:
        return self.paths.members + "/" + self.member_id if self._registered else None

    def _leave_group(self) -> None:
        self._registered = False

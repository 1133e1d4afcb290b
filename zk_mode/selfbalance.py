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
        self.client.ensure_path(self.paths.members)
        try:
            self.client.create(
                self.paths.members + "/" + self.member_id, encode_json(self.subscription()), ephemeral=True
            )
        except NodeExistsError:
            pass  # our own registration survived a reconnect
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
        self._release(self._claims)
        subscriptions: dict[str, list[str]] = {}
        for child in sorted(children):
            path = f"{self.paths.members}/{child}"
            try:
                raw, _ = self.client.get(path)
            except NoNodeError:
                continue
            parsed = parse_subscription(decode_json(raw, path), path, self.partitions_per_topic)
            if parsed is not None:
                subscriptions[parsed[0]] = parsed[1]
        if self.member_id not in subscriptions:
            return True  # our registration is gone: the session is ending and we will rejoin
        share = assign(self.config.assignor, subscriptions, self.partitions_per_topic)[self.member_id]
        for tp in share:
            if not self._claim(tp, watch=False):  # 0.8 backs off and retries instead of watching
                self._release(self._claims)
                return False
        generation = stat.cversion
        self._take_offsets(share, generation)  # 0.8.2: fetchOffsets before reporting ownership
        self.generation = generation
        self._owned = set(share)
        self._set_assignment(Assignment.of(generation, share, None, self.member_id))
        self.state = MemberState.STABLE
        self.emit(EventKind.ASSIGNED, generation=generation, partitions=share, leader=None)
        return True

    def _leave_group(self) -> None:
        self._registered = False
        try:
            self.client.delete(self.paths.members + "/" + self.member_id)
        except NoNodeError:
            pass

"""Leader election on ephemeral sequential znodes; the leader computes and publishes the assignment.

Both variants register ``members/m-<seq>`` (EPHEMERAL_SEQUENTIAL, JSON subscription); the member
with the lowest sequence leads. They differ only in who watches what:

* ``chain`` — each member watches just its predecessor (``get`` with a watch, as kazoo's Lock
  does), as in ZooKeeper's election recipe, so a departure wakes one member. A predecessor whose
  data is garbage is no member: the member looks further down, and leads if nothing valid is below.
  Only the leader watches the membership children, and it caches registrations (they never
  change), so a join costs the leader one ``get_children`` and one ``get``: reads grow linearly.
* ``herd`` — the naive recipe: every member watches the membership children and, on every change,
  re-reads the list and every registration to see whether it now leads. One join costs
  N ``get_children`` and N² ``get``s.

Publishing (leader only) is one ``multi``: ``check`` of the leader's own member znode (gone once
its session expired, so a deposed leader cannot overwrite a newer decision) and ``set`` of
``assignment`` at the version the leader read. The assignment znode's version is the generation.
A leader announces ``leader_elected`` once its publication succeeded, then ``assignment_computed``;
the others announce ``leader_elected`` when they read the decision.
Every member keeps a data watch on ``assignment`` and takes its share through the claims in
:mod:`zk_mode.member`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError
from kazoo.protocol.states import EventType, WatchedEvent

from group_api import EventKind
from group_api.assignors import assign
from group_api.events import TopicPartition

from .member import ZkMember, decode_json, encode_json, parse_share, parse_subscription
from .paths import sequence_of

log = logging.getLogger(__name__)

#: What ZooKeeper names an EPHEMERAL_SEQUENTIAL child of ``members`` created as ``m-``.
MEMBER_NODE = re.compile(r"m-\d{10}")


class LeaderElectedMember(ZkMember):
    """Registration, election and publication shared by ``chain`` and ``herd``."""

    #: Whether every member watches the membership (herd) or only the leader does (chain).
    watch_all: ClassVar[bool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node: str | None = None  # our member znode's name, e.g. m-0000000003
        self.is_leader = False
        self._registrations: dict[str, dict[str, Any] | None] = {}  # node -> parsed data (leader cache)
        self._seen_generation: int | None = None
        self._elected_generation: int | None = None  # the generation we announced leader_elected for

    # -- registration and election -------------------------------------------------------------

    def _join(self) -> None:
        self.client.ensure_path(self.paths.members)
        try:
            self.client.create(self.paths.assignment, b"{}")
        except NodeExistsError:
            pass
        path = self.client.create(
            f"{self.paths.members}/m-", encode_json(self.subscription()), ephemeral=True, sequence=True
        )
        self.node = path.rsplit("/", 1)[1]
        self.is_leader = False
        self._registrations.clear()
        self.emit(EventKind.JOINED, znode=self.node)
        self._elect()
        self._task_assignment()

    def _task_elect(self) -> None:
        if self.node is not None:
            self._elect()

    def _elect(self) -> None:
        watch = self._members_changed if self.watch_all else None
        children = self._member_nodes(self.client.get_children(self.paths.members, watch=watch))
        if self.node not in children:
            return  # our session is ending; the state listener rejoins
        below = children[: children.index(self.node)]
        if self.watch_all:
            # The naive recipe: read every registration on every change; the lowest valid one leads.
            registrations = {node: self._read_registration(node) for node in children}
            if not any(registrations[node] for node in below):
                self._lead(registrations)
            return
        # Watch the nearest predecessor that is a real member; garbage in a znode is not a member.
        for node in reversed(below):
            if self._read_registration(node, watch=self._predecessor_changed) is not None:
                return
        self._lead(None)

    def _predecessor_changed(self, event: WatchedEvent) -> None:
        if event.type == EventType.DELETED:
            self.submit("elect")

    def _members_changed(self, event: WatchedEvent) -> None:
        self.submit("elect" if self.watch_all else "lead")

    def _task_lead(self) -> None:
        if self.is_leader:
            self._lead(None)

    # -- the leader ------------------------------------------------------------------------------

    def _lead(self, registrations: dict[str, dict[str, Any] | None] | None) -> None:
        """Compute the assignment for the current members and publish it, fenced.

        ``registrations`` are the ones herd just read; chain reads new members only (cached).
        """
        self.is_leader = True
        if registrations is None:
            registrations = self._current_registrations()
        subscriptions: dict[str, list[str]] = {}
        for data in registrations.values():
            parsed = parse_subscription(data, self.paths.members, self.partitions_per_topic)
            if parsed is not None:
                subscriptions[parsed[0]] = parsed[1]
        raw, stat = self.client.get(self.paths.assignment)
        previous = decode_json(raw, self.paths.assignment) or {}
        prev_members = previous.get("members") if isinstance(previous.get("members"), dict) else {}
        if (
            previous.get("leader") == self.member_id
            and set(prev_members) == set(subscriptions)
            and stat.version == self._seen_generation
        ):
            return  # nothing changed since our last decision
        result = assign(
            self.config.assignor,
            subscriptions,
            self.partitions_per_topic,
            previous=self._previous_shares(prev_members, subscriptions),
        )
        generation = stat.version + 1
        decision = {
            "generation": generation,
            "leader": self.member_id,
            "leader_node": self.node,
            "assignor": self.config.assignor,
            "members": {m: [[t, p] for t, p in parts] for m, parts in result.items()},
        }
        if not self._publish(decision, stat.version):
            self.is_leader = False
            self.submit("elect")
            return
        # The documented order: a leader learns that it leads, then computes (as in coordinator mode).
        self._elected_generation = generation
        self.emit(EventKind.LEADER_ELECTED, generation=generation, leader=self.member_id, is_leader=True)
        self.emit(
            EventKind.ASSIGNMENT_COMPUTED,
            generation=generation,
            members=len(result),
            assignment=decision["members"],
        )

    def _member_nodes(self, children: list[str]) -> list[str]:
        """The children that are member registrations (``m-<10 digits>``), by sequence; any other
        name no member created and is skipped (logged)."""
        nodes = [c for c in children if MEMBER_NODE.fullmatch(c)]
        for other in set(children) - set(nodes):
            log.warning("skipping %s/%s: not a member registration's name", self.paths.members, other[:80])
        return sorted(nodes, key=sequence_of)

    def _current_registrations(self) -> dict[str, dict[str, Any] | None]:
        """The members' registrations, re-watching the membership; only new members are read."""
        children = self._member_nodes(
            self.client.get_children(self.paths.members, watch=self._members_changed)
        )
        for gone in set(self._registrations) - set(children):
            del self._registrations[gone]
        registrations = {
            node: self._registrations[node] if node in self._registrations else self._read_registration(node)
            for node in children
        }
        self._registrations.update(registrations)
        return registrations

    def _previous_shares(
        self, members: dict[str, Any], subscriptions: dict[str, list[str]]
    ) -> dict[str, list[TopicPartition]]:
        """The last decision's shares of current members; a share of the wrong shape is skipped."""
        shares = {
            m: parse_share(parts, self.all_partitions(), self.paths.assignment)
            for m, parts in members.items()
            if m in subscriptions
        }
        return {m: share for m, share in shares.items() if share is not None}

    def _publish(self, decision: dict[str, Any], version: int) -> bool:
        """One ``multi``: our member znode must still exist and ``assignment`` still be at
        ``version``; False (nothing written) when either fence holds us off."""
        tx = self.client.transaction()
        tx.check(f"{self.paths.members}/{self.node}", 0)
        tx.set_data(self.paths.assignment, encode_json(decision), version=version)
        results = tx.commit()
        if any(isinstance(r, BadVersionError | NoNodeError | RolledBackError) for r in results):
            log.info(
                "%s: publication of generation %s fenced off (%s)",
                self.member_id,
                decision["generation"],
                results,
            )
            return False
        return True

    def _read_registration(self, node: str, watch: Any = None) -> dict[str, Any] | None:
        """A member znode's registration; None when it is gone or holds garbage (logged)."""
        path = f"{self.paths.members}/{node}"
        try:
            raw, _ = self.client.get(path, watch=watch)
        except NoNodeError:
            return None
        data = decode_json(raw, path)
        return data if parse_subscription(data, path, self.partitions_per_topic) is not None else None

    # -- every member: follow the published assignment ------------------------------------------

    def _assignment_changed(self, event: WatchedEvent) -> None:
        self.submit("assignment")

    def _task_assignment(self) -> None:
        try:
            raw, stat = self.client.get(self.paths.assignment, watch=self._assignment_changed)
        except NoNodeError:
            return
        decision = decode_json(raw, self.paths.assignment)
        if not decision or not isinstance(decision.get("members"), dict):
            return  # empty (no leader decision yet) or garbage: wait for the next publication
        generation = stat.version
        if generation == self._seen_generation:
            return
        self._seen_generation = generation
        leader = decision.get("leader")
        leader = leader if isinstance(leader, str) else None
        share = decision["members"].get(self.member_id)
        if share is None:
            # Not part of this generation (we joined after it was computed): hold nothing.
            self._apply_unannounced()
            return
        target = parse_share(share, self.all_partitions(), self.paths.assignment)
        if target is None:
            return  # wait for the next publication
        if generation != self._elected_generation:  # a leader announced its own election on publishing
            self.emit(
                EventKind.LEADER_ELECTED,
                generation=generation,
                leader=leader,
                is_leader=leader == self.member_id,
            )
        self._apply(generation, target, leader)

    def _apply_unannounced(self) -> None:
        self._give_up(self._owned, reason="rebalance")
        self._release(self._claims)
        self._target = None

    def _leave_group(self) -> None:
        if self.node is not None:
            try:
                self.client.delete(f"{self.paths.members}/{self.node}")
            except NoNodeError:
                pass
            self.node = None


class ChainMember(LeaderElectedMember):
    """Predecessor-watch election: no herd effect."""

    watch_all = False


class HerdMember(LeaderElectedMember):
    """Everyone watches the membership and reacts to every change."""

    watch_all = True

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

Round trips on the critical path (the floor this code keeps; a watch notification counts half, as
it travels one way; commits on), step by step in :data:`bench.model.zookeeper.CRITICAL_PATHS`:

* join, 12.5: the newcomer's session handshake, catalog read and registration (its group znodes
  in the same pipeline: 3); the leader's membership notification (0.5), its ``get_children`` with
  the assignment's get (pipelined: 1), the new registration's get (1) and its publishing multi (1);
  the members' notification and get (1.5); an old owner's commit (pipelined: 1) and release multi
  (1); the new owner's probe notification and claim multi (1.5) and its offsets' read-back (1).
* graceful leave, 10.5: the leaver's commit and one multi of its claims and registration (2), then
  the leader's reaction as for a join without the new registration's read (2.5) and the hand-over (6).
* crash, 8.5 after the session's expiry: the leader's reaction (2.5) and the hand-over (6).
* cold start, 9.5 for the last member to start: registration (3), membership and predecessor (2),
  the publication (1), the members' notification and get (1.5), the claims (1), the read-back (1).

herd's critical path is chain's: it reads N registrations per member, but pipelined, in one round
trip; what it costs more is reads and the CPU they take.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import EventType, WatchedEvent

from group_api import EventKind
from group_api.assignors import assign
from group_api.events import TopicPartition

from .member import ZkMember, decode_json, encode_json, parse_share, parse_subscription
from .paths import sequence_of
from .pipeline import gather, value

log = logging.getLogger(__name__)


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
        self._decided: dict[str, Any] = {}  # the members' shares in the last decision we read

    # -- registration and election -------------------------------------------------------------

    def _join(self) -> None:
        """One round trip to register (the group's persistent znodes are created, or found there,
        in the same pipeline), one for the membership with the assignment, one for the predecessor."""
        *made, registered = gather(
            [
                self.client.create_async(self.paths.assignment, b"{}", makepath=True),
                self.client.create_async(self.paths.owners, makepath=True),
                self.client.create_async(
                    f"{self.paths.members}/m-",
                    encode_json(self.subscription()),
                    ephemeral=True,
                    sequence=True,
                    makepath=True,
                ),
            ]
        )
        for answer in made:
            if not isinstance(answer, NodeExistsError):
                value(answer)
        self.node = value(registered).rsplit("/", 1)[1]
        self.is_leader = False
        self._registrations.clear()
        self.emit(EventKind.JOINED, znode=self.node)
        assignment = self.client.get_async(self.paths.assignment, watch=self._assignment_changed)
        seen = self._seen_generation
        self._elect(assignment)
        if self._seen_generation == seen:  # unless we led and took our share of what we published
            self._on_assignment(assignment)

    def _task_elect(self) -> None:
        if self.node is not None:
            self._elect()

    def _elect(self, assignment: IAsyncResult | None = None) -> None:
        """``assignment``: a read of the assignment already in flight (a join's), for the leader."""
        watch = self._members_changed if self.watch_all else None
        children = sorted(self.client.get_children(self.paths.members, watch=watch), key=sequence_of)
        if self.node not in children:
            return  # our session is ending; the state listener rejoins
        below = children[: children.index(self.node)]
        if self.watch_all:
            # The naive recipe: read every registration on every change (pipelined: one round
            # trip); the lowest valid one leads.
            if not below and assignment is None:
                assignment = self.client.get_async(self.paths.assignment)  # in the same round trip
            registrations = self._read_registrations(children)
            if not any(registrations[node] for node in below):
                self._lead(registrations, assignment)
            return
        # Watch the nearest predecessor that is a real member; garbage in a znode is not a member.
        for node in reversed(below):
            if self._read_registration(node, watch=self._predecessor_changed) is not None:
                return
        self._lead(None, assignment)

    def _predecessor_changed(self, event: WatchedEvent) -> None:
        if event.type == EventType.DELETED:
            self.submit("elect")

    def _members_changed(self, event: WatchedEvent) -> None:
        self.submit("elect" if self.watch_all else "lead")

    def _task_lead(self) -> None:
        if self.is_leader:
            self._lead(None)

    # -- the leader ------------------------------------------------------------------------------

    def _lead(
        self,
        registrations: dict[str, dict[str, Any] | None] | None,
        assignment: IAsyncResult | None = None,
    ) -> None:
        """Compute the assignment for the current members and publish it, fenced, then take our
        own share from the decision we wrote (our data watch's read of it then changes nothing).

        ``registrations`` are the ones herd just read; chain reads new members only (cached).
        ``assignment`` is a read of the assignment already in flight; without one, the read goes
        out with the membership's, in the same round trip.
        """
        self.is_leader = True
        if assignment is None:
            assignment = self.client.get_async(self.paths.assignment)
        if registrations is None:
            registrations = self._current_registrations()
        subscriptions: dict[str, list[str]] = {}
        for data in registrations.values():
            parsed = parse_subscription(data, self.paths.members, self.partitions_per_topic)
            if parsed is not None:
                subscriptions[parsed[0]] = parsed[1]
        raw, stat = value(gather([assignment])[0])
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
        self._take_decision(decision, generation)

    def _current_registrations(self) -> dict[str, dict[str, Any] | None]:
        """The members' registrations, re-watching the membership; only new members are read
        (pipelined: one round trip for the membership, one for all new registrations)."""
        children = self.client.get_children(self.paths.members, watch=self._members_changed)
        for gone in set(self._registrations) - set(children):
            del self._registrations[gone]
        self._registrations.update(
            self._read_registrations([node for node in children if node not in self._registrations])
        )
        return {node: self._registrations[node] for node in children}

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
        return self._read_registrations([node], watch)[node]

    def _read_registrations(self, nodes: list[str], watch: Any = None) -> dict[str, dict[str, Any] | None]:
        """Registrations read pipelined (one round trip); None for one gone or holding garbage."""
        paths = [f"{self.paths.members}/{node}" for node in nodes]
        out: dict[str, dict[str, Any] | None] = {}
        for node, path, answer in zip(
            nodes, paths, gather(self.client.get_async(p, watch=watch) for p in paths), strict=True
        ):
            if isinstance(answer, NoNodeError):
                out[node] = None
                continue
            data = decode_json(value(answer)[0], path)
            out[node] = (
                data if parse_subscription(data, path, self.partitions_per_topic) is not None else None
            )
        return out

    # -- every member: follow the published assignment ------------------------------------------

    def _assignment_changed(self, event: WatchedEvent) -> None:
        self.submit("assignment")

    def _task_assignment(self) -> None:
        self._on_assignment(self.client.get_async(self.paths.assignment, watch=self._assignment_changed))

    def _on_assignment(self, read: IAsyncResult) -> None:
        """Act on a read of the assignment (with our data watch)."""
        answer = gather([read])[0]
        if isinstance(answer, NoNodeError):
            return
        raw, stat = value(answer)
        decision = decode_json(raw, self.paths.assignment)
        if not decision or not isinstance(decision.get("members"), dict):
            return  # empty (no leader decision yet) or garbage: wait for the next publication
        self._take_decision(decision, stat.version)

    def _take_decision(self, decision: dict[str, Any], generation: int) -> None:
        """Take our share of a decision (once per generation)."""
        if generation == self._seen_generation:
            return
        self._seen_generation = generation
        previous, self._decided = self._decided, decision["members"]
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
        self._handed_from = self._handed_over(previous, target)
        self._probed.clear()
        self._released.clear()
        if generation != self._elected_generation:  # a leader announced its own election on publishing
            self.emit(
                EventKind.LEADER_ELECTED,
                generation=generation,
                leader=leader,
                is_leader=leader == self.member_id,
            )
        self._apply(generation, target, leader)

    def _handed_over(
        self, previous: dict[str, Any], target: list[TopicPartition]
    ) -> dict[TopicPartition, str]:
        """Partitions of ``target`` that another member, still in the group, held in the previous
        decision: its claim is likely still there, so we probe it rather than race its release."""
        mine = set(target)
        handed: dict[TopicPartition, str] = {}
        for member, parts in previous.items():
            if member == self.member_id or member not in self._decided or not isinstance(parts, list):
                continue
            for tp in parts:
                if isinstance(tp, list) and len(tp) == 2 and (tp[0], tp[1]) in mine:
                    handed[(tp[0], tp[1])] = member
        return handed

    def _apply_unannounced(self) -> None:
        self._give_up(self._owned, reason="rebalance")
        self._release(self._claims)
        self._target = None

    def _registration(self) -> str | None:
        return f"{self.paths.members}/{self.node}" if self.node is not None else None

    def _leave_group(self) -> None:
        self.node = None


class ChainMember(LeaderElectedMember):
    """Predecessor-watch election: no herd effect."""

    watch_all = False


class HerdMember(LeaderElectedMember):
    """Everyone watches the membership and reacts to every change."""

    watch_all = True

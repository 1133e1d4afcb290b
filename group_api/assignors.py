"""Partition assignors with Kafka's semantics: pure functions, standard library only.

Both modes run the same assignor, so an assignment difference between them can only come from the
group protocol, never from the assignor. Each function takes ``member_id -> subscribed topics`` and
``topic -> partition count`` and returns ``member_id -> sorted partitions`` with every member present.

* ``range`` (Kafka ``RangeAssignor``): per topic, the members subscribed to it sorted by id split the
  partitions into contiguous ranges; ``partitions // members`` each, and the first
  ``partitions % members`` members get one extra. Balanced per topic, but the extras pile up on the
  lowest member ids when there are many topics.
* ``roundrobin`` (Kafka ``RoundRobinAssignor``): every partition of every subscribed topic, sorted by
  ``(topic, partition)``, is dealt to the members in id order, skipping a member not subscribed to
  that topic. Balanced within one when all subscriptions are equal.
* ``sticky`` (Kafka ``StickyAssignor``'s goals, own algorithm): every subscribed partition goes to
  exactly one subscribed member; no partition could move from a member to a subscribed member with at
  least two fewer; and a partition validly owned before (by exactly one present, still subscribed
  member) stays put unless balance forces it away. With identical subscriptions exactly the fewest
  partitions move; with differing ones that is best effort (greedy, as in Kafka). Ties are broken by
  member id and partition, so the same input always gives the same output.
* ``cooperative-sticky`` (Kafka ``CooperativeStickyAssignor``, KIP-429): ``sticky``'s target, less
  every partition another member still owns; those are withheld for one round, their owners revoke
  them and rejoin, and the next round places them (see :func:`cooperative_sticky_assign`). Only the
  COOPERATIVE rebalance protocol runs it (``coordinator/cooperative``), so it is not one of the
  eager names every mode accepts (:data:`group_api.config.ASSIGNOR_NAMES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from .config import ConfigError
from .events import TopicPartition

Subscriptions = Mapping[str, Sequence[str]]
PartitionCounts = Mapping[str, int]
Previous = Mapping[str, Iterable[TopicPartition]]
AssignmentMap = dict[str, list[TopicPartition]]


def _topics_by_member(
    subscriptions: Subscriptions, partitions_per_topic: PartitionCounts
) -> dict[str, set[str]]:
    """Validate once, so every assignor fails the same way on the same bad input."""
    topics = {member: set(subs) for member, subs in subscriptions.items()}
    for topic in sorted(set().union(*topics.values())):
        if topic not in partitions_per_topic:
            raise ConfigError(f"partitions_per_topic: no partition count for subscribed topic {topic!r}")
        if partitions_per_topic[topic] < 0:
            raise ConfigError(f"partitions_per_topic: {topic!r} has a negative count")
    return topics


def _members_of(topic: str, topics: Mapping[str, set[str]]) -> list[str]:
    return sorted(member for member, subs in topics.items() if topic in subs)


def _result(assignment: Mapping[str, Iterable[TopicPartition]]) -> AssignmentMap:
    return {member: sorted(assignment[member]) for member in sorted(assignment)}


def range_assign(
    subscriptions: Subscriptions, partitions_per_topic: PartitionCounts, previous: Previous | None = None
) -> AssignmentMap:
    """Kafka's RangeAssignor: contiguous per-topic ranges; ``previous`` is ignored (eager)."""
    topics = _topics_by_member(subscriptions, partitions_per_topic)
    out: dict[str, list[TopicPartition]] = {member: [] for member in topics}
    for topic in sorted(set().union(*topics.values())):
        members = _members_of(topic, topics)
        share, extra = divmod(partitions_per_topic[topic], len(members))
        start = 0
        for i, member in enumerate(members):
            length = share + (1 if i < extra else 0)
            out[member].extend((topic, p) for p in range(start, start + length))
            start += length
    return _result(out)


def roundrobin_assign(
    subscriptions: Subscriptions, partitions_per_topic: PartitionCounts, previous: Previous | None = None
) -> AssignmentMap:
    """Kafka's RoundRobinAssignor: one deal over all partitions; ``previous`` is ignored (eager)."""
    topics = _topics_by_member(subscriptions, partitions_per_topic)
    out: dict[str, list[TopicPartition]] = {member: [] for member in topics}
    members = sorted(topics)
    nxt = 0  # the dealer's position carries over between topics, as Kafka's cycling iterator does
    for topic in sorted(set().union(*topics.values())):
        for p in range(partitions_per_topic[topic]):
            while topic not in topics[members[nxt % len(members)]]:
                nxt += 1
            out[members[nxt % len(members)]].append((topic, p))
            nxt += 1
    return _result(out)


def _valid_previous(
    topics: Mapping[str, set[str]], counts: PartitionCounts, previous: Previous | None
) -> dict[TopicPartition, str]:
    """Partitions to keep where they were: valid, and claimed by exactly one eligible member.

    A doubly claimed partition has no single owner to stick to, so it is reassigned like a new one.
    """
    claims: dict[TopicPartition, set[str]] = {}
    for member, owned in (previous or {}).items():
        if member not in topics:
            continue
        for topic, p in owned:
            if topic in topics[member] and 0 <= p < counts[topic]:
                claims.setdefault((topic, int(p)), set()).add(member)
    return {tp: next(iter(owners)) for tp, owners in claims.items() if len(owners) == 1}


def sticky_assign(
    subscriptions: Subscriptions, partitions_per_topic: PartitionCounts, previous: Previous | None = None
) -> AssignmentMap:
    """Balanced and sticky: keep valid previous owners, place the rest greedily, then rebalance.

    Every rebalancing move goes from a member to a subscribed member with at least two fewer, which
    strictly lowers the sum of squared counts, so the loop ends, and it ends exactly when the
    balance rule holds. Each move takes the largest gap and, among those, a partition the sender did
    not own before, so old ownership moves only when nothing new can go instead.
    """
    topics = _topics_by_member(subscriptions, partitions_per_topic)
    kept = _valid_previous(topics, partitions_per_topic, previous)
    owned: dict[str, set[TopicPartition]] = {member: set() for member in topics}
    for tp, member in kept.items():
        owned[member].add(tp)
    eligible = {topic: _members_of(topic, topics) for topic in set().union(*topics.values())}
    free = [(t, p) for t in sorted(eligible) for p in range(partitions_per_topic[t]) if (t, p) not in kept]
    # Hardest to place first: partitions with the fewest possible owners (Kafka's sticky does too).
    for tp in sorted(free, key=lambda tp: (len(eligible[tp[0]]), tp)):
        owned[min(eligible[tp[0]], key=lambda m: (len(owned[m]), m))].add(tp)
    while (move := _best_move(owned, topics, kept)) is not None:
        tp, src, dst = move
        owned[src].remove(tp)
        owned[dst].add(tp)
    return _result(owned)


def _best_move(
    owned: Mapping[str, set[TopicPartition]],
    topics: Mapping[str, set[str]],
    kept: Mapping[TopicPartition, str],
) -> tuple[TopicPartition, str, str] | None:
    """The move the balance rule most wants (largest gap, then a partition not owned before), or None.

    Members are scanned by count, so the scan stops as soon as no later pair can beat the best found.
    """
    order = sorted(owned, key=lambda m: (len(owned[m]), m))
    best: tuple[tuple[int, bool], TopicPartition, str, str] | None = None
    for src in reversed(order):
        if best is not None and (len(owned[order[0]]) - len(owned[src]), False) >= best[0]:
            break
        candidates: dict[str, tuple[bool, TopicPartition]] = {}  # topic -> src's best partition of it
        for tp in owned[src]:
            candidates[tp[0]] = min(candidates.get(tp[0], (True, tp)), (kept.get(tp) == src, tp))
        for dst in order:
            gap = len(owned[src]) - len(owned[dst])
            if gap < 2 or best is not None and (-gap, False) >= best[0]:
                break
            movable = [candidates[t] for t in topics[dst] if t in candidates]
            if movable and (best is None or (-gap, min(movable)[0]) < best[0]):
                was_kept, tp = min(movable)
                best = ((-gap, was_kept), tp, src, dst)
    return None if best is None else best[1:]


def _claims(
    topics: Mapping[str, set[str]], counts: PartitionCounts, owned: Previous | None
) -> dict[TopicPartition, set[str]]:
    """Every existing partition and the present members that say they own it (subscribed or not:
    a member owns what it owns until it revokes it)."""
    claims: dict[TopicPartition, set[str]] = {}
    for member, parts in (owned or {}).items():
        if member not in topics:
            continue
        for topic, p in parts:
            if 0 <= p < counts.get(topic, 0):
                claims.setdefault((topic, int(p)), set()).add(member)
    return claims


def _newest_claims(
    claims: Mapping[TopicPartition, set[str]], generations: Mapping[str, int] | None
) -> dict[str, list[TopicPartition]]:
    """Who keeps a claimed partition, as ``AbstractStickyAssignor.allSubscriptionsEqual`` (Kafka 3.9)
    decides: the claimant of the newest generation; two of that generation invalidate the claim,
    and nobody keeps it."""
    gens = generations or {}
    kept: dict[str, list[TopicPartition]] = {}
    for tp, members in sorted(claims.items()):
        newest = max(gens.get(m, -1) for m in members)
        top = [m for m in members if gens.get(m, -1) == newest]
        if len(top) == 1:
            kept.setdefault(top[0], []).append(tp)
    return kept


def cooperative_sticky_assign(
    subscriptions: Subscriptions,
    partitions_per_topic: PartitionCounts,
    previous: Previous | None = None,
    generations: Mapping[str, int] | None = None,
) -> AssignmentMap:
    """Kafka 3.9's ``CooperativeStickyAssignor.assignPartitions``: the sticky target, then
    ``adjustAssignment``.

    ``previous`` is each member's ``owned_partitions`` (ConsumerProtocol subscription v1+) and
    ``generations`` the generation each was owned in (subscription v2+ ``generation_id``, or the
    assignor's user data; -1 unknown). The target is :func:`sticky_assign` over the claims each
    member keeps (:func:`_newest_claims`). Then every partition the target gives to a member while
    another present member claims it is withheld (``partitionsTransferringOwnership``): that owner
    sees it missing from its assignment, revokes it and rejoins, and the next round, where nobody
    claims it, gives it to its new owner. So no partition is ever assigned to a member while
    another still owns it. Doubly claimed partitions are withheld from whoever gets them, as
    ``ConstrainedAssignmentBuilder`` does (``partitionsWithMultiplePreviousOwners``).
    """
    topics = _topics_by_member(subscriptions, partitions_per_topic)
    claims = _claims(topics, partitions_per_topic, previous)
    target = sticky_assign(subscriptions, partitions_per_topic, _newest_claims(claims, generations))
    return {
        member: [tp for tp in parts if claims.get(tp, {member}) == {member}]
        for member, parts in target.items()
    }


ASSIGNORS: dict[str, Callable[..., AssignmentMap]] = {
    "range": range_assign,
    "roundrobin": roundrobin_assign,
    "sticky": sticky_assign,
}

#: Kafka's ``CooperativeStickyAssignor.COOPERATIVE_STICKY_ASSIGNOR_NAME``.
COOPERATIVE_STICKY = "cooperative-sticky"


def assign(
    name: str,
    subscriptions: Subscriptions,
    partitions_per_topic: PartitionCounts,
    previous: Previous | None = None,
    generations: Mapping[str, int] | None = None,
) -> AssignmentMap:
    """Run the assignor Kafka calls ``name`` (its ``partition.assignment.strategy`` name);
    ``generations`` (each member's, for its ``previous``) only matter to ``cooperative-sticky``."""
    if name == COOPERATIVE_STICKY:
        return cooperative_sticky_assign(subscriptions, partitions_per_topic, previous, generations)
    if name not in ASSIGNORS:
        names = ", ".join([*ASSIGNORS, COOPERATIVE_STICKY])
        raise ConfigError(f"assignor: expected one of {names}, got {name!r}")
    return ASSIGNORS[name](subscriptions, partitions_per_topic, previous)

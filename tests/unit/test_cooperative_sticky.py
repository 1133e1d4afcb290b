"""The cooperative-sticky assignor (KIP-429): properties, two rounds, and kafka-python's as a check.

Inputs are drawn as in :mod:`tests.unit.test_assignors` (messy ``owned_partitions``: gone members,
vanished partitions, double claims), plus a generation per member.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from hypothesis import given
from hypothesis import strategies as st
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.protocol.consumer.group import JoinGroupResponse
from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription

from group_api.assignors import COOPERATIVE_STICKY, assign, cooperative_sticky_assign, sticky_assign
from tests.unit.test_assignors import (
    ClusterStandIn,
    fast,
    groups,
    min_moves,
    previous_for,
    shuffled,
    spread,
    subscribed_partitions,
    tps,
)

TopicPartition = tuple[str, int]


def present_claims(subs: dict, counts: dict, previous: dict) -> dict[TopicPartition, set[str]]:
    """Existing partitions and the present members claiming them."""
    out: dict[TopicPartition, set[str]] = defaultdict(set)
    for m, owned in previous.items():
        for t, p in owned:
            if m in subs and p < counts.get(t, 0):
                out[(t, p)].add(m)
    return out


def generations_for(draw: st.DrawFn, subs: dict) -> dict[str, int]:
    return {m: draw(st.integers(-1, 3), label=f"generation of {m}") for m in subs}


def two_rounds(subs: dict, counts: dict, owned: dict) -> tuple[dict, dict]:
    """Round 1 from ``owned``; the owners revoke what round 1 left out; round 2 from what is left."""
    first = cooperative_sticky_assign(subs, counts, owned, dict.fromkeys(subs, 1))
    return first, cooperative_sticky_assign(subs, counts, first, dict.fromkeys(subs, 2))


@fast
@given(data=st.data())
def test_never_assigned_while_another_member_owns_it(data: st.DataObject) -> None:
    subs, counts = data.draw(groups())
    previous = data.draw(previous_for(subs, counts))
    out = assign(COOPERATIVE_STICKY, subs, counts, previous, generations_for(data.draw, subs))
    assert sorted(out) == sorted(subs)
    owners = Counter(tp for parts in out.values() for tp in parts)
    assert set(owners) <= subscribed_partitions(subs, counts) and set(owners.values()) <= {1}
    claims = present_claims(subs, counts, previous)
    for member, parts in out.items():
        assert parts == sorted(parts) and all(t in subs[member] for t, _ in parts)
        for tp in parts:
            assert claims.get(tp, {member}) == {member}, f"{tp} to {member} while {claims[tp]} own it"


@fast
@given(data=st.data())
def test_only_partitions_changing_owner_are_withheld(data: st.DataObject) -> None:
    """What round 1 leaves out is exactly what the sticky target moves away from an owner."""
    subs, counts = data.draw(groups())
    previous = data.draw(previous_for(subs, counts))
    generations = generations_for(data.draw, subs)
    out = cooperative_sticky_assign(subs, counts, previous, generations)
    assigned = {tp for parts in out.values() for tp in parts}
    claims = present_claims(subs, counts, previous)
    for tp in subscribed_partitions(subs, counts) - assigned:
        assert claims.get(tp), f"{tp} is withheld but nobody owns it"
    for tp in subscribed_partitions(subs, counts):
        if not claims.get(tp):
            assert tp in assigned, f"{tp} is owned by nobody, yet not assigned"


@fast
@given(data=st.data())
def test_an_owner_the_target_keeps_keeps_it_and_only_balance_moves_partitions(data: st.DataObject) -> None:
    subs, counts = data.draw(groups(identical=True))
    previous = data.draw(previous_for(subs, counts))
    claims = present_claims(subs, counts, previous)
    out = cooperative_sticky_assign(subs, counts, previous)
    # a subscribed partition one present member owns is withheld only when balance moves it away
    wanted = subscribed_partitions(subs, counts)
    kept = {tp: next(iter(ms)) for tp, ms in claims.items() if len(ms) == 1 and tp in wanted}
    moved = sum(tp not in out[m] for tp, m in kept.items())
    kept_counts = [sum(1 for m in kept.values() if m == member) for member in subs]
    assert moved == min_moves(kept_counts, len(subscribed_partitions(subs, counts)))


@fast
@given(data=st.data())
def test_second_round_completes_a_balanced_assignment_and_moves_nothing_back(data: st.DataObject) -> None:
    subs, counts = data.draw(groups(identical=True))
    owned = sticky_assign(subs, counts, data.draw(previous_for(subs, counts)))
    if data.draw(st.booleans(), label="join") or len(subs) == 1:
        subs = {**subs, "~newcomer": next(iter(subs.values()))}
    else:
        del subs[data.draw(st.sampled_from(sorted(subs)), label="leaver")]
    first, second = two_rounds(subs, counts, owned)
    assert sorted(tp for parts in second.values() for tp in parts) == sorted(
        subscribed_partitions(subs, counts)
    )
    assert spread(second) <= 1
    for m in subs:
        assert set(first[m]) <= set(second[m]), f"{m} lost in round 2 what round 1 left it"
    # and a third round changes nothing: the group is settled
    assert cooperative_sticky_assign(subs, counts, second, dict.fromkeys(subs, 3)) == second


@fast
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_same_input_in_another_order_gives_the_same_output(data: st.DataObject, rnd: random.Random) -> None:
    subs, counts = data.draw(groups())
    previous = data.draw(previous_for(subs, counts))
    generations = generations_for(data.draw, subs)
    expected = cooperative_sticky_assign(subs, counts, previous, generations)
    again = cooperative_sticky_assign(
        shuffled(subs, rnd), shuffled(counts, rnd), shuffled(previous, rnd), shuffled(generations, rnd)
    )
    assert again == expected


def test_a_join_takes_two_rounds() -> None:
    """Two members own 4 of 8 each; a third joins: round 1 withholds one of each, round 2 hands them over."""
    subs = {"a": ["t0"], "b": ["t0"], "c": ["t0"]}
    owned = {"a": tps("t0p0 t0p1 t0p2 t0p3"), "b": tps("t0p4 t0p5 t0p6 t0p7")}
    first, second = two_rounds(subs, {"t0": 8}, owned)
    assert first == {"a": tps("t0p1 t0p2 t0p3"), "b": tps("t0p5 t0p6 t0p7"), "c": []}
    assert second == {"a": tps("t0p1 t0p2 t0p3"), "b": tps("t0p5 t0p6 t0p7"), "c": tps("t0p0 t0p4")}


def test_the_newest_generation_keeps_a_claim_but_waits_for_the_older_claimant() -> None:
    """``a`` (generation 3) and ``b`` (generation 2) both claim t0p0: the target keeps it with ``a``,
    as Kafka's assignor does, but it is withheld until ``b`` has revoked it (Kafka would assign it to
    ``a`` at once, trusting the newer generation); a same-generation double claim is nobody's."""
    subs = {"a": ["t0"], "b": ["t0"]}
    owned = {"a": tps("t0p0"), "b": tps("t0p0 t0p1")}
    assert cooperative_sticky_assign(subs, {"t0": 2}, owned, {"a": 3, "b": 2}) == {"a": [], "b": tps("t0p1")}
    target = sticky_assign(subs, {"t0": 2}, {"a": tps("t0p0"), "b": tps("t0p1")})
    assert target == {"a": tps("t0p0"), "b": tps("t0p1")}
    assert cooperative_sticky_assign(subs, {"t0": 2}, owned, {"a": 2, "b": 2}) == {"a": [], "b": tps("t0p1")}


# -- kafka-python's CooperativeStickyAssignor on the same inputs --------------------------------


class Cluster(ClusterStandIn):
    def topics(self) -> set[str]:
        return set(self.counts)


def kafka_python_cooperative(subs: dict, counts: dict, owned: dict, generation: int) -> dict[str, list]:
    """kafka-python 3's CooperativeStickyAssignor on the subscriptions a JoinGroup answer would list
    (ConsumerProtocolSubscription v2: ``owned_partitions`` and ``generation_id``)."""
    sub = ConsumerProtocolSubscription
    members = []
    for m, topics in subs.items():
        by_topic: dict[str, list[int]] = defaultdict(list)
        for t, p in owned.get(m, ()):
            by_topic[t].append(p)
        metadata = sub(
            version=2,
            topics=sorted(topics),
            user_data=b"",
            owned_partitions=[
                sub.TopicPartition(topic=t, partitions=sorted(ps)) for t, ps in by_topic.items()
            ],
            generation_id=generation,
        )
        members.append(
            JoinGroupResponse.JoinGroupResponseMember(member_id=m, group_instance_id=None, metadata=metadata)
        )
    out = CooperativeStickyAssignor().assign(Cluster(counts), members)
    return {m: sorted((t, p) for t, ps in a.assigned_partitions for p in ps) for m, a in out.items()}


@st.composite
def membership_changes(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    """A stable group (identical subscriptions, each partition owned once, as after a completed
    rebalance), then members leave and new ones join: (subscriptions after, counts, owned before)."""
    counts = {f"t{i}": draw(st.integers(0, 12)) for i in range(draw(st.integers(1, 3)))}
    old = [f"m{i:02d}" for i in range(draw(st.integers(1, 8)))]
    owned = sticky_assign(dict.fromkeys(old, sorted(counts)), counts)
    stay = draw(st.lists(st.sampled_from(old), min_size=1, unique=True))
    new = [f"n{i:02d}" for i in range(draw(st.integers(0, 8)))]
    return {m: sorted(counts) for m in sorted(stay) + new}, counts, owned


@fast
@given(change=membership_changes())
def test_revocations_and_shares_match_kafka_python(change: tuple[dict, dict, dict]) -> None:
    """Compared, on the same subscriptions and owned partitions: how many partitions round 1 revokes
    (owned before, not assigned), the multiset of member shares after round 1 and after round 2,
    that both rounds are complete after round 2, and that neither round assigns a partition another
    member still owns. Not compared: which member gets which partition (the two break ties
    differently; both are sticky and balanced)."""
    subs, counts, owned = change
    ours = two_rounds(subs, counts, owned)
    first = kafka_python_cooperative(subs, counts, owned, 1)
    theirs = (first, kafka_python_cooperative(subs, counts, first, 2))

    def revoked(first: dict) -> int:
        return sum(len(set(owned.get(m, ())) - set(first[m])) for m in subs)

    def shares(r: dict) -> list[int]:
        return sorted(len(parts) for parts in r.values())

    assert revoked(ours[0]) == revoked(theirs[0])
    assert [shares(r) for r in ours] == [shares(r) for r in theirs]
    everything = sorted(subscribed_partitions(subs, counts))
    for rounds in (ours, theirs):
        assert sorted(tp for parts in rounds[1].values() for tp in parts) == everything
        claims = present_claims(subs, counts, owned)
        assert all(claims.get(tp, {m}) == {m} for m, parts in rounds[0].items() for tp in parts)

"""Assignors: validity, balance and stickiness as properties; kafka-python's assignors as the oracle.

Member ids, subscriptions (identical or per-member subsets), partition counts (zero included) and
previous assignments (with gone members, vanished partitions and double claims) are all random.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.protocol.consumer.group import JoinGroupResponse

from group_api.assignors import ASSIGNORS, assign
from group_api.config import ASSIGNOR_NAMES, ConfigError

#: Per test, not a global profile: loading a profile here would change every other test file's runs.
fast = settings(max_examples=2 * settings().max_examples, deadline=None)  # 200; fewer in test-fast

TOPICS = ("alpha", "beta", "t0", "t1", "zeta")
member_ids = st.lists(
    st.text(alphabet="abcxyz019-_", min_size=1, max_size=5), min_size=1, max_size=7, unique=True
)


@st.composite
def groups(draw: st.DrawFn, identical: bool = False) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(subscriptions, partition counts); some topics in the counts may have no subscriber."""
    members = draw(member_ids)
    counts = draw(st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 9), min_size=1))
    topics = sorted(counts)
    if identical:
        shared = draw(st.lists(st.sampled_from(topics), min_size=1, unique=True))
        return {m: list(shared) for m in members}, counts
    return {m: draw(st.lists(st.sampled_from(topics), unique=True)) for m in members}, counts


@st.composite
def previous_for(draw: st.DrawFn, subs: dict[str, list[str]], counts: dict[str, int]) -> dict:
    """A messy previous assignment: gone members, partitions that no longer exist, double claims."""
    owners = draw(st.lists(st.sampled_from([*sorted(subs), "gone-1", "gone-2"]), unique=True))
    tps = [(t, p) for t in sorted(counts) for p in range(counts[t] + 2)] + [("ghost", 0)]
    return {m: draw(st.lists(st.sampled_from(tps), max_size=12)) for m in owners}


def shuffled(d: dict, rnd: random.Random) -> dict:
    """The same mapping with another insertion order and shuffled value lists."""
    items = [(k, v if isinstance(v, int) else rnd.sample(list(v), len(v))) for k, v in d.items()]
    rnd.shuffle(items)
    return dict(items)


def subscribed_partitions(subs: dict[str, list[str]], counts: dict[str, int]) -> set[tuple[str, int]]:
    return {(t, p) for topics in subs.values() for t in topics for p in range(counts[t])}


def kept_claims(subs: dict, counts: dict, previous: dict) -> dict[tuple[str, int], str]:
    """The spec of 'sticky-worthy': valid and claimed by exactly one present, subscribed member."""
    claims: dict[tuple[str, int], set[str]] = {}
    for m, owned in previous.items():
        for t, p in owned:
            if m in subs and t in subs[m] and p < counts.get(t, 0):
                claims.setdefault((t, p), set()).add(m)
    return {tp: next(iter(ms)) for tp, ms in claims.items() if len(ms) == 1}


def min_moves(kept_counts: list[int], total: int) -> int:
    """Fewest kept partitions that must move so counts end within one (identical subscriptions).

    Final counts are q or q+1; giving the r larger targets to the members that kept most is best.
    """
    q, r = divmod(total, len(kept_counts))
    ranked = sorted(kept_counts, reverse=True)
    return sum(ranked) - sum(min(k, q + 1 if i < r else q) for i, k in enumerate(ranked))


def spread(assignment: dict[str, list]) -> int:
    sizes = [len(v) for v in assignment.values()]
    return max(sizes) - min(sizes)


# -- properties of all three -------------------------------------------------------------------


@pytest.mark.parametrize("name", ASSIGNOR_NAMES)
@fast
@given(data=st.data())
def test_every_subscribed_partition_once_to_a_subscriber(name: str, data: st.DataObject) -> None:
    subs, counts = data.draw(groups())
    previous = data.draw(previous_for(subs, counts))
    out = assign(name, subs, counts, previous)
    assert sorted(out) == sorted(subs)
    owners = Counter(tp for tps in out.values() for tp in tps)
    assert set(owners) == subscribed_partitions(subs, counts)  # nothing missing, nothing unsubscribed
    assert set(owners.values()) <= {1}
    for member, tps in out.items():
        assert tps == sorted(tps)
        assert all(t in subs[member] for t, _ in tps)


@pytest.mark.parametrize("name", ASSIGNOR_NAMES)
@fast
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_same_input_in_another_order_gives_the_same_output(
    name: str, data: st.DataObject, rnd: random.Random
) -> None:
    subs, counts = data.draw(groups())
    previous = data.draw(previous_for(subs, counts))
    expected = assign(name, subs, counts, previous)
    assert assign(name, shuffled(subs, rnd), shuffled(counts, rnd), shuffled(previous, rnd)) == expected


@pytest.mark.parametrize("name", ["roundrobin", "sticky"])
@fast
@given(data=st.data())
def test_identical_subscriptions_are_balanced_within_one(name: str, data: st.DataObject) -> None:
    subs, counts = data.draw(groups(identical=True))
    assert spread(assign(name, subs, counts, data.draw(previous_for(subs, counts)))) <= 1


@pytest.mark.parametrize("name", ["range", "roundrobin"])
@fast
@given(data=st.data())
def test_eager_assignors_ignore_previous(name: str, data: st.DataObject) -> None:
    subs, counts = data.draw(groups())
    assert assign(name, subs, counts, data.draw(previous_for(subs, counts))) == assign(name, subs, counts)


@pytest.mark.parametrize("name", ASSIGNOR_NAMES)
def test_no_members_no_assignment(name: str) -> None:
    assert assign(name, {}, {"t0": 3}) == {}
    assert assign(name, {"b": [], "a": []}, {"t0": 3}) == {"a": [], "b": []}


# -- range -------------------------------------------------------------------------------------


@fast
@given(groups())
def test_range_splits_each_topic_into_contiguous_ranges_larger_first(group: tuple) -> None:
    subs, counts = group
    out = assign("range", subs, counts)
    for topic in {t for ts in subs.values() for t in ts}:
        members = sorted(m for m in subs if topic in subs[m])
        ranges = [[p for t, p in out[m] if t == topic] for m in members]
        assert [p for r in ranges for p in r] == list(range(counts[topic]))  # contiguous, in id order
        sizes = [len(r) for r in ranges]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1


# -- sticky ------------------------------------------------------------------------------------


@fast
@given(data=st.data())
def test_sticky_no_partition_could_move_to_a_subscriber_with_two_fewer(data: st.DataObject) -> None:
    subs, counts = data.draw(groups())
    out = assign("sticky", subs, counts, data.draw(previous_for(subs, counts)))
    for src, tps in out.items():
        for dst in subs:
            if len(out[src]) - len(out[dst]) >= 2:
                assert not any(t in subs[dst] for t, _ in tps), (src, dst, out)


@fast
@given(data=st.data())
def test_sticky_moves_only_what_balance_needs(data: st.DataObject) -> None:
    subs, counts = data.draw(groups(identical=True))
    previous = data.draw(previous_for(subs, counts))
    kept = kept_claims(subs, counts, previous)
    out = assign("sticky", subs, counts, previous)
    moved = sum(tp not in out[m] for tp, m in kept.items())
    kept_counts = [sum(1 for m in kept.values() if m == member) for member in subs]
    assert moved == min_moves(kept_counts, len(subscribed_partitions(subs, counts)))
    for member in subs:  # nobody loses an old partition while gaining a new one
        owned_before = {tp for tp, m in kept.items() if m == member}
        assert len(owned_before & set(out[member])) == min(len(owned_before), len(out[member]))


@fast
@given(data=st.data())
def test_sticky_join_or_leave_moves_the_minimum(data: st.DataObject) -> None:
    subs, counts = data.draw(groups(identical=True))
    before = assign("sticky", subs, counts)
    after_subs = dict(subs)
    if len(subs) > 1 and data.draw(st.booleans(), label="leave"):
        del after_subs[data.draw(st.sampled_from(sorted(subs)), label="leaver")]
    else:
        after_subs["~newcomer"] = next(iter(subs.values()))
    after = assign("sticky", after_subs, counts, before)
    survivors = [m for m in after_subs if m in before]
    moved = sum(len(set(before[m]) - set(after[m])) for m in survivors)
    total = len(subscribed_partitions(subs, counts))
    assert moved == min_moves(
        [len(before[m]) for m in survivors] + [0] * (len(after_subs) - len(survivors)), total
    )
    for m in survivors:
        assert len(set(before[m]) & set(after[m])) == min(len(before[m]), len(after[m]))


@fast
@given(data=st.data())
def test_sticky_leaves_a_balanced_assignment_alone(data: st.DataObject) -> None:
    subs, counts = data.draw(groups())
    first = assign("sticky", subs, counts, data.draw(previous_for(subs, counts)))
    assert assign("sticky", subs, counts, first) == first


# -- kafka-python as the oracle ----------------------------------------------------------------


class ClusterStandIn:
    """Test data in the one shape kafka-python's assignors read: ``partitions_for_topic``."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None


def kafka_python_assign(oracle: type, subs: dict, counts: dict) -> dict[str, list[tuple[str, int]]]:
    """Run a kafka-python assignor on the members as its JoinGroup response would list them."""
    members = [
        JoinGroupResponse.JoinGroupResponseMember(
            member_id=m, group_instance_id=None, metadata=oracle.metadata(ts)
        )
        for m, ts in subs.items()
    ]
    return {
        m: sorted((tp.topic, tp.partition) for tp in a.partitions())
        for m, a in oracle.assign(ClusterStandIn(counts), members).items()
    }


@fast
@given(group=groups(), rnd=st.randoms(use_true_random=False))
def test_range_equals_kafka_python(group: tuple, rnd: random.Random) -> None:
    subs, counts = group
    assert assign("range", subs, counts) == kafka_python_assign(
        RangePartitionAssignor, shuffled(subs, rnd), counts
    )


@fast
@given(group=groups(identical=True), rnd=st.randoms(use_true_random=False))
def test_roundrobin_equals_kafka_python(group: tuple, rnd: random.Random) -> None:
    """Identical subscriptions only: kafka-python 3.0.12 crashes whenever it must skip a member."""
    subs, counts = group
    theirs = kafka_python_assign(RoundRobinPartitionAssignor, shuffled(subs, rnd), counts)
    assert assign("roundrobin", subs, counts) == theirs


@pytest.mark.xfail(raises=KeyError, strict=True, reason="kafka-python 3.0.12 bug, see below")
def test_kafka_python_roundrobin_skipping_a_member() -> None:
    """Its skip loop does ``member_id = next(member_iter)``, which yields a ``(group_instance_id,
    member_id)`` tuple, so the lookup raises KeyError. Strict: when a release fixes it, this test
    fails, and the roundrobin oracle above should go back to random subscriptions."""
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    counts = {"t0": 1, "t1": 2, "t2": 3}
    assert kafka_python_assign(RoundRobinPartitionAssignor, subs, counts) == assign(
        "roundrobin", subs, counts
    )


# -- examples from the Kafka / kafka-python docs -----------------------------------------------


def tps(spec: str) -> list[tuple[str, int]]:
    """``"t0p0 t1p2"`` -> ``[("t0", 0), ("t1", 2)]``, sorted."""
    return sorted((s.split("p")[0], int(s.split("p")[1])) for s in spec.split())


ALL4 = {"t0": 2, "t1": 2, "t2": 2, "t3": 2}


@pytest.mark.parametrize(
    ("name", "subs", "counts", "previous", "expected"),
    [
        (  # RangeAssignor javadoc
            "range",
            {"C1": ["t0", "t1"], "C0": ["t1", "t0"]},
            {"t0": 3, "t1": 3},
            None,
            {"C0": tps("t0p0 t0p1 t1p0 t1p1"), "C1": tps("t0p2 t1p2")},
        ),
        (  # RoundRobinAssignor javadoc, identical subscriptions
            "roundrobin",
            {"C0": ["t0", "t1"], "C1": ["t0", "t1"]},
            {"t0": 3, "t1": 3},
            None,
            {"C0": tps("t0p0 t0p2 t1p1"), "C1": tps("t0p1 t1p0 t1p2")},
        ),
        (  # RoundRobinAssignor javadoc, different subscriptions: the skipping leaves C2 heavy
            "roundrobin",
            {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]},
            {"t0": 1, "t1": 2, "t2": 3},
            None,
            {"C0": tps("t0p0"), "C1": tps("t1p0"), "C2": tps("t1p1 t2p0 t2p1 t2p2")},
        ),
        (  # StickyAssignor javadoc: C1 leaves; C0 and C2 keep theirs and share C1's
            "sticky",
            {"C0": list(ALL4), "C2": list(ALL4)},
            ALL4,
            {"C0": tps("t0p0 t1p1 t3p0"), "C1": tps("t0p1 t2p0 t3p1"), "C2": tps("t1p0 t2p1")},
            {"C0": tps("t0p0 t1p1 t3p0 t2p0"), "C2": tps("t1p0 t2p1 t0p1 t3p1")},
        ),
        (  # StickyAssignor javadoc, different subscriptions: balanced where round robin is not
            "sticky",
            {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]},
            {"t0": 1, "t1": 2, "t2": 3},
            None,
            {"C0": tps("t0p0"), "C1": tps("t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")},
        ),
        (  # ... then C0 leaves: only t0p0 moves
            "sticky",
            {"C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]},
            {"t0": 1, "t1": 2, "t2": 3},
            {"C0": tps("t0p0"), "C1": tps("t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")},
            {"C1": tps("t0p0 t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")},
        ),
        (  # c's t1p0 must go to b (b's only topic); a then sheds a new t2 partition, not its old t2p0
            "sticky",
            {"a": ["t2", "t1"], "b": ["t1"], "c": ["t1", "t2", "t0"]},
            {"t0": 1, "t1": 1, "t2": 3},
            {"a": [("t2", 0)], "c": [("t1", 0)]},
            {"a": tps("t2p0 t2p2"), "b": tps("t1p0"), "c": tps("t0p0 t2p1")},
        ),
        (  # a doubly claimed partition is nobody's to keep; a vanished one is dropped
            "sticky",
            {"a": ["t0"], "b": ["t0"]},
            {"t0": 2},
            {"a": [("t0", 0), ("t0", 1), ("t0", 7)], "b": [("t0", 0)]},
            {"a": [("t0", 1)], "b": [("t0", 0)]},
        ),
    ],
)
def test_documented_examples(
    name: str, subs: dict, counts: dict, previous: dict | None, expected: dict
) -> None:
    assert assign(name, subs, counts, previous) == expected


# -- errors ------------------------------------------------------------------------------------


def test_registry_matches_the_config_names() -> None:
    assert tuple(ASSIGNORS) == ASSIGNOR_NAMES


def test_unknown_assignor_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="range, roundrobin, sticky, cooperative-sticky.*'bogus'"):
        assign("bogus", {"a": ["t0"]}, {"t0": 1})


@pytest.mark.parametrize("name", ASSIGNOR_NAMES)
def test_subscribed_topic_without_partition_count_is_named(name: str) -> None:
    with pytest.raises(ConfigError, match="'orders'"):
        assign(name, {"a": ["t0"], "b": ["orders"]}, {"t0": 1})
    with pytest.raises(ConfigError, match="'t0'"):
        assign(name, {"a": ["t0"]}, {"t0": -1})

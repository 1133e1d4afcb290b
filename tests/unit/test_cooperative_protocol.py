"""KIP-429 without sockets: the member's reconciliation, the subscription it writes, and our
coordinator choosing ``cooperative-sticky`` among the members' protocols as Kafka's does."""

from __future__ import annotations

from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription

from coordinator_mode.client.rebalance_protocol import RebalanceProtocol, assignor_for, protocol_of, reconcile
from coordinator_mode.group.errors import ErrorCode
from coordinator_mode.group.state import ClassicGroupState
from coordinator_mode.subscription import decode_subscription, encode_subscription
from tests.unit.test_group_state import finish_initial_delay, join, make_env, new_member, sync

COOP = "cooperative-sticky"


def test_cooperative_revokes_only_what_the_assignment_took_away() -> None:
    owned = [("t", 0), ("t", 1), ("t", 2)]
    change = reconcile(RebalanceProtocol.COOPERATIVE, owned, [("t", 1), ("t", 2), ("t", 5)])
    assert change.revoked == (("t", 0),) and change.added == (("t", 5),)
    assert reconcile(RebalanceProtocol.COOPERATIVE, None, [("t", 1)]).revoked == ()
    # eager revoked everything before the join: nothing to revoke now, everything is new
    eager = reconcile(RebalanceProtocol.EAGER, owned, [("t", 1)])
    assert eager.revoked == () and eager.added == (("t", 1),)


def test_the_variant_names_the_protocol_and_the_assignor() -> None:
    assert protocol_of("cooperative") is RebalanceProtocol.COOPERATIVE
    assert protocol_of("classic") is protocol_of(None) is RebalanceProtocol.EAGER
    assert assignor_for(RebalanceProtocol.COOPERATIVE, "range") == COOP
    assert assignor_for(RebalanceProtocol.EAGER, "sticky") == "sticky"


def test_cooperative_subscription_is_what_java_writes() -> None:
    """v3 (Kafka 3.9's ``ConsumerProtocol``): owned partitions, their generation in the field and,
    as ``CooperativeStickyAssignor.subscriptionUserData`` writes it, in the user data."""
    data = encode_subscription(COOP, ["b", "a"], [("a", 2), ("b", 0), ("a", 1)], 7)
    raw = ConsumerProtocolSubscription.decode(data)
    assert raw.version == 3 and raw.topics == ["a", "b"] and raw.generation_id == 7
    assert bytes(raw.user_data) == (7).to_bytes(4, "big")
    sub = decode_subscription(data)
    assert sub.previous == (("a", 1), ("a", 2), ("b", 0)) and sub.previous_generation == 7


def test_a_v1_cooperative_subscription_carries_its_generation_in_the_user_data() -> None:
    v1 = ConsumerProtocolSubscription(
        version=1,
        topics=["a"],
        user_data=(4).to_bytes(4, "big"),
        owned_partitions=[ConsumerProtocolSubscription.TopicPartition(topic="a", partitions=[0])],
    )
    sub = decode_subscription(bytes(v1.encode()))
    assert sub.previous == (("a", 0),) and sub.previous_generation == 4
    # a newcomer owns nothing: its 4 bytes are no sticky user data to parse
    empty = ConsumerProtocolSubscription(
        version=3, topics=["a"], user_data=(-1).to_bytes(4, "big", signed=True)
    )
    assert decode_subscription(bytes(empty.encode())).previous == ()


def test_coordinator_chooses_cooperative_sticky_when_every_member_supports_it() -> None:
    """``ClassicGroup.select_protocol``: Java's default list is [range, cooperative-sticky]; with a
    member that offers only cooperative-sticky that is the one common protocol, and an eager-only
    member is then refused with INCONSISTENT_GROUP_PROTOCOL, as Kafka does."""
    env = make_env()
    a, box_a = new_member(env, "a", protocols=((COOP, b"a"),))
    b, box_b = new_member(env, "b", protocols=(("range", b"b"), (COOP, b"b")))
    finish_initial_delay(env)
    assert box_a.value.protocol_name == box_b.value.protocol_name == COOP
    assert (
        join(env, "", "c", protocols=(("range", b"c"),)).value.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )


def test_a_member_rejoining_with_fewer_owned_partitions_starts_the_second_round() -> None:
    """KIP-429's second round needs no broker change: a follower's rejoin with other metadata (it
    revoked partitions, so ``owned_partitions`` changed) rebalances a Stable group."""
    env = make_env()
    a, _ = new_member(env, "a", protocols=((COOP, b"owns 0 1"),))
    b, _ = new_member(env, "b", protocols=((COOP, b"owns 2 3"),))
    finish_initial_delay(env)
    sync(env, b, 1)
    sync(env, a, 1, [(a, b"A"), (b, b"B")])
    assert env.group.state is ClassicGroupState.STABLE
    join(env, b, "b", protocols=((COOP, b"owns 2"),))
    assert env.group.state is ClassicGroupState.PREPARING_REBALANCE

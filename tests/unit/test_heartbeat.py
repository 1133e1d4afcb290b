"""Heartbeat timing (pure, on a fake clock) and the consumer-protocol embedding round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.coordinator.assignors.sticky.user_data import StickyAssignorUserData
from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription

from coordinator_mode.client.heartbeat import Heartbeat
from coordinator_mode.subscription import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from group_api import ConfigError


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    clock: FakeClock, interval_ms: int = 1_000, session_ms: int = 6_000, backoff_ms: int = 100
) -> Heartbeat:
    return Heartbeat(
        interval_ms=interval_ms, session_timeout_ms=session_ms, retry_backoff_ms=backoff_ms, clock=clock
    )


def test_interval_must_be_below_session_timeout() -> None:
    with pytest.raises(ConfigError):
        make(FakeClock(), interval_ms=6_000, session_ms=6_000)


def test_first_heartbeat_is_due_one_interval_after_the_session_starts() -> None:
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    assert hb.time_to_next_heartbeat() == pytest.approx(1.0)
    clock.advance(0.4)
    assert not hb.should_heartbeat()
    assert hb.time_to_next_heartbeat() == pytest.approx(0.6)
    clock.advance(0.6)
    assert hb.should_heartbeat()


def test_a_failed_heartbeat_is_retried_after_the_backoff_not_the_interval() -> None:
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    clock.advance(1.0)
    hb.sent()
    hb.fail()
    assert hb.time_to_next_heartbeat() == pytest.approx(0.1)
    clock.advance(0.1)
    assert hb.should_heartbeat()
    hb.sent()  # a new attempt clears the failure
    assert hb.time_to_next_heartbeat() == pytest.approx(1.0)


def test_session_expires_a_session_timeout_after_the_last_answered_send() -> None:
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    for _ in range(3):
        clock.advance(1.0)
        sent = hb.sent()
        clock.advance(0.01)
        hb.acknowledged(sent)
    last_acked = clock() - 0.01
    clock.advance(5.0)
    assert not hb.session_expired()
    assert hb.session_deadline() == pytest.approx(last_acked + 6.0)
    clock.advance(1.0)
    assert hb.session_expired()
    assert hb.time_to_session_expiry() == 0.0


def test_an_answer_read_after_a_pause_does_not_extend_the_session() -> None:
    """The SIGSTOP case: a heartbeat went out, the process froze past the session timeout, and the
    answer is read on resume. The session counts from the send, so it is already expired."""
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    clock.advance(1.0)
    sent = hb.sent()
    clock.advance(30.0)  # paused
    hb.acknowledged(sent)
    assert hb.session_expired()


def test_unanswered_heartbeats_do_not_extend_the_session() -> None:
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    for _ in range(6):
        clock.advance(1.0)
        hb.sent()
        hb.fail()
    clock.advance(0.5)
    assert hb.session_expired()


def test_a_late_answer_to_an_old_request_never_moves_the_session_back() -> None:
    clock = FakeClock()
    hb = make(clock)
    hb.start_session(clock())
    clock.advance(1.0)
    first = hb.sent()
    clock.advance(1.0)
    second = hb.sent()
    hb.acknowledged(second)
    hb.acknowledged(first)
    assert hb.session_deadline() == pytest.approx(second + 6.0)


# -- consumer protocol embedding ---------------------------------------------------------------------

topic_names = st.text(alphabet="abcxyz-_.", min_size=1, max_size=8)
partitions = st.lists(st.tuples(topic_names, st.integers(0, 500)), unique=True, max_size=30)


@given(topics=st.lists(topic_names, min_size=1, max_size=5, unique=True), previous=partitions)
def test_sticky_subscription_round_trips_the_previous_assignment(topics: list[str], previous: list) -> None:
    decoded = decode_subscription(encode_subscription("sticky", topics, previous, generation=7))
    assert decoded.topics == tuple(sorted(topics))
    assert decoded.previous == tuple(sorted(previous))
    assert decoded.previous_generation == 7


@given(parts=partitions)
def test_assignment_round_trips(parts: list) -> None:
    assert decode_assignment(encode_assignment(parts)) == tuple(sorted(parts))


def test_range_subscription_carries_no_user_data() -> None:
    raw = encode_subscription("range", ["t2", "t1"], [("t1", 0)], generation=3)
    sub = ConsumerProtocolSubscription.decode(raw)
    assert sub.topics == ["t1", "t2"] and sub.user_data is None


def test_java_style_sticky_user_data_without_a_version_prefix_is_read() -> None:
    bare = bytes(StickyAssignorUserData([("t", [3, 4])], 9).encode(header=False))
    raw = bytes(ConsumerProtocolSubscription(version=0, topics=["t"], user_data=bare).encode())
    decoded = decode_subscription(raw)
    assert decoded.previous == (("t", 3), ("t", 4)) and decoded.previous_generation == 9


def test_owned_partitions_of_a_newer_subscription_version_count_as_previous() -> None:
    raw = bytes(
        ConsumerProtocolSubscription(
            version=2, topics=["t"], user_data=None, owned_partitions=[("t", [1])], generation_id=4
        ).encode()
    )
    decoded = decode_subscription(raw)
    assert decoded.previous == (("t", 1),) and decoded.previous_generation == 4


def test_an_empty_assignment_means_no_partitions() -> None:
    assert decode_assignment(b"") == ()
    assert decode_assignment(None) == ()

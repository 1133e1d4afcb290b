"""The leader's bookkeeping of one replicated offsets partition: followers' log ends, the in-sync
replica set (ISR) and the high watermark. A pure state machine: no IO, time is passed in.

It follows Kafka 3.9's ``kafka.cluster.Partition`` and ``kafka.cluster.Replica``:

* A follower's Fetch at ``fetch_offset`` tells the leader the follower's log end offset
  (``Partition.updateFollowerFetchState`` → ``Replica.updateFetchStateOrThrow``). The follower was
  *caught up* at the time of this fetch if it asked for the leader's log end, or at the time of its
  previous fetch if it asked for at least the log end the leader had then (``lastCaughtUpTimeMs``).
* The high watermark is the smallest log end offset among the leader and the ISR, and never goes
  back (``Partition.maybeIncrementLeaderHW``).
* A write with acks=all is done once the high watermark reaches its end offset
  (``Partition.checkEnoughReplicasReachOffset``; ``min.insync.replicas`` is 1, Kafka's default, and
  the offsets topic sets none).
* A follower outside the ISR rejoins once its log end reaches the high watermark and the start of the
  leader's epoch (``Partition.maybeExpandIsr`` / ``isFollowerInSync``).
* A follower in the ISR that has not been caught up within ``replica.lag.time.max.ms`` leaves it
  (``Partition.maybeShrinkIsr`` / ``getOutOfSyncReplicas`` / ``Replica.isCaughtUp``).

The ISR changes are proposed here and applied only once they are recorded in ZooKeeper
(:meth:`LeaderPartition.apply_isr`); until then the high watermark counts the current ISR, which is
the larger set while a shrink is in flight, as Kafka's ``maximalIsr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FollowerState:
    """What the leader knows of one follower (Kafka's ``ReplicaState``)."""

    end_offset: int = -1  # unknown until it fetches
    last_caught_up_ms: float = 0.0
    last_fetch_ms: float = 0.0
    last_fetch_leader_end: int = -1


@dataclass
class LeaderPartition:
    """One partition this broker leads at ``epoch``."""

    partition: int
    broker_id: int
    epoch: int
    replicas: tuple[int, ...]
    isr: frozenset[int]
    end_offset: int  # the leader's log end offset
    high_watermark: int
    now_ms: float
    epoch_start_offset: int = field(init=False)
    followers: dict[int, FollowerState] = field(init=False)

    def __post_init__(self) -> None:
        self.epoch_start_offset = self.end_offset
        self.high_watermark = min(self.high_watermark, self.end_offset)
        # Partition.makeLeader: followers in the ISR count as caught up when the leadership starts.
        self.followers = {
            r: FollowerState(last_caught_up_ms=self.now_ms if r in self.isr else 0.0)
            for r in self.replicas
            if r != self.broker_id
        }

    def on_append(self, end_offset: int) -> bool:
        """The leader appended up to ``end_offset``; whether the high watermark moved."""
        self.end_offset = end_offset
        return self._maybe_increment_hw()

    def on_follower_fetch(self, follower: int, fetch_offset: int, now_ms: float) -> bool:
        """A follower fetched from ``fetch_offset`` (so its log ends there); whether the HW moved."""
        state = self.followers.get(follower)
        if state is None:
            return False
        if fetch_offset >= self.end_offset:
            state.last_caught_up_ms = max(state.last_caught_up_ms, now_ms)
        elif fetch_offset >= state.last_fetch_leader_end:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        state.end_offset = fetch_offset
        state.last_fetch_ms = now_ms
        state.last_fetch_leader_end = self.end_offset
        return self._maybe_increment_hw()

    def _maybe_increment_hw(self) -> bool:
        ends = [self.end_offset] + [self.followers[r].end_offset for r in self.isr if r in self.followers]
        new_hw = min(ends)
        if new_hw > self.high_watermark:
            self.high_watermark = new_hw
            return True
        return False

    def reached(self, offset: int) -> bool:
        """acks=all: every ISR member has the log up to ``offset`` (exclusive)."""
        return self.high_watermark >= offset

    def expand_candidates(self) -> set[int]:
        """Followers outside the ISR that have caught up and may rejoin it."""
        return {
            r
            for r, s in self.followers.items()
            if r not in self.isr
            and s.end_offset >= self.high_watermark
            and s.end_offset >= self.epoch_start_offset
        }

    def out_of_sync(self, now_ms: float, max_lag_ms: float) -> set[int]:
        """ISR followers that were not caught up within ``max_lag_ms``."""
        return {
            r
            for r in self.isr
            if r in self.followers
            and self.followers[r].end_offset != self.end_offset
            and now_ms - self.followers[r].last_caught_up_ms > max_lag_ms
        }

    def apply_isr(self, isr: frozenset[int]) -> bool:
        """The ISR as recorded in ZooKeeper; whether the high watermark moved (a shrink may advance it)."""
        self.isr = isr | {self.broker_id}
        return self._maybe_increment_hw()

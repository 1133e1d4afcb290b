"""The rebalance protocol a coordinator-mode member follows: EAGER, or COOPERATIVE (KIP-429).

Kafka's ``ConsumerPartitionAssignor.RebalanceProtocol``. The group protocol on the wire is the same
classic JoinGroup/SyncGroup for both; what differs is what the member does around it, which Kafka
3.9's ``ConsumerCoordinator`` decides in two places:

``onJoinPrepare`` (before JoinGroup)
    EAGER revokes everything it owns. COOPERATIVE keeps what it owns and lists it in its
    subscription's ``owned_partitions``; it revokes only partitions of topics it no longer
    subscribes to (never, for our members: their subscription is fixed). Both lose everything when
    the generation was reset (``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``: the member handles
    those before it rejoins).
``onJoinComplete`` (the SyncGroup answer)
    EAGER owns exactly the new assignment. COOPERATIVE revokes ``owned - assigned`` (only those,
    through ``invokePartitionsRevoked``), owns the assignment, and when it revoked anything
    requests another rejoin: the leader withheld those partitions from their new owners
    (``CooperativeStickyAssignor.adjustAssignment``), and the next round gives them out.

The variant names the protocol: ``classic`` is EAGER with the configured assignor; ``cooperative``
is COOPERATIVE with ``cooperative-sticky``, Kafka's one built-in assignor for it (the configured
eager assignor does not apply: a consumer's protocol is the newest one all its assignors support).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from group_api import TopicPartition
from group_api.assignors import COOPERATIVE_STICKY


class RebalanceProtocol(StrEnum):
    EAGER = "eager"
    COOPERATIVE = "cooperative"


#: variant -> the protocol it follows (the Python variants of coordinator mode).
VARIANT_PROTOCOLS: dict[str, RebalanceProtocol] = {
    "classic": RebalanceProtocol.EAGER,
    "cooperative": RebalanceProtocol.COOPERATIVE,
}


def protocol_of(variant: str | None) -> RebalanceProtocol:
    """The protocol a variant follows; EAGER for the default and for variants without one here."""
    return VARIANT_PROTOCOLS.get(variant or "classic", RebalanceProtocol.EAGER)


def assignor_for(protocol: RebalanceProtocol, configured: str) -> str:
    """The JoinGroup protocol name (assignor) a member offers."""
    return COOPERATIVE_STICKY if protocol is RebalanceProtocol.COOPERATIVE else configured


@dataclass(frozen=True)
class Reconciliation:
    """What a SyncGroup answer means for a member that owned ``owned`` (``onJoinComplete``)."""

    revoked: tuple[TopicPartition, ...]  # owned, not assigned: revoke these, then rejoin (COOPERATIVE)
    added: tuple[TopicPartition, ...]  # assigned, not owned: read their committed offsets


def reconcile(
    protocol: RebalanceProtocol, owned: Iterable[TopicPartition] | None, assigned: Iterable[TopicPartition]
) -> Reconciliation:
    """``ConsumerCoordinator.onJoinComplete``: an EAGER member owns nothing at this point (it revoked
    everything in ``onJoinPrepare``), so it revokes nothing here and every assigned partition is
    added."""
    assigned_set = set(assigned)
    before = set(owned or ()) if protocol is RebalanceProtocol.COOPERATIVE else set()
    return Reconciliation(
        revoked=tuple(sorted(before - assigned_set)), added=tuple(sorted(assigned_set - before))
    )

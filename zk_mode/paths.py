"""Where each variant keeps its state, all under ``<root>/groups/<group>``.

=====================================  ================================================
``members/m-<seq>`` (chain, herd)      EPHEMERAL_SEQUENTIAL registration: JSON member id,
                                       subscribed topics; the lowest sequence leads
``members/<member id>`` (selfbalance)  EPHEMERAL registration, Kafka 0.8's ``ids``
``assignment``                         persistent; the leader's published decision; its
                                       znode version is the generation
``owners/<topic>-<partition>``         EPHEMERAL ownership claim holding the owner's id
``partitioner/``                       kazoo SetPartitioner's party and locks
=====================================  ================================================

Committed offsets live where Kafka 0.8's ZooKeeper consumer kept them (``ZKGroupTopicDirs``), under
the root rather than the group: ``<root>/consumers/<group>/offsets/<topic>/<partition>``, persistent,
the offset as a decimal string (:mod:`zk_mode.offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupPaths:
    root: str
    group: str

    @property
    def base(self) -> str:
        return f"{self.root.rstrip('/')}/groups/{self.group}"

    @property
    def members(self) -> str:
        return f"{self.base}/members"

    @property
    def assignment(self) -> str:
        return f"{self.base}/assignment"

    @property
    def owners(self) -> str:
        return f"{self.base}/owners"

    def owner(self, topic: str, partition: int) -> str:
        return f"{self.owners}/{topic}-{partition}"

    def offset(self, topic: str, partition: int) -> str:
        """Kafka 0.8's ``ZKGroupTopicDirs.consumerOffsetDir`` + ``/<partition>``, under our root."""
        return f"{self.root.rstrip('/')}/consumers/{self.group}/offsets/{topic}/{partition}"

    @property
    def partitioner(self) -> str:
        return f"{self.base}/partitioner"


def sequence_of(node: str) -> int:
    """The sequence number ZooKeeper appended to an EPHEMERAL_SEQUENTIAL node name."""
    return int(node[-10:])

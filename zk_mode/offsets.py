"""Offsets in ZooKeeper, as Kafka 0.8's ZooKeeper consumer kept them.

Kafka 0.8.2's ``kafka.consumer.ZookeeperConsumerConnector`` (``offsets.storage=zookeeper``, its
default) stores one persistent znode per partition, ``/consumers/<group>/offsets/<topic>/<partition>``,
holding the offset as a decimal string; here it lives under the member's ``zk_root``
(:meth:`~zk_mode.paths.GroupPaths.offset`). What this module takes from 0.8.2:

* ``commitOffsetToZooKeeper``: a partition is written only when its offset differs from the last one
  written or read for it (``checkpointedZkOffsets``), with ``updatePersistentPath`` (set, or create
  with its parents when the znode is missing);
* ``fetchOffsetFromZooKeeper``: a missing znode means no offset stored (-1 here, as OffsetFetch says);
* ``ZKRebalancerListener.addPartitionTopicInfo``: the offset a new owner read counts as checkpointed,
  so its next commit writes only what moved.

Both are pipelined (:mod:`zk_mode.pipeline`): a commit or a read-back of any number of
partitions costs one round trip (a commit one more for znodes not created yet).

When the member commits (every ``auto_commit_interval_ms``, before giving partitions up, on a graceful
leave) and reads back (before it reports new partitions assigned) is the member's business
(:mod:`zk_mode.member`); this class keeps the checkpoint and does the ZooKeeper calls. No records flow
in this project, so a commit advances each position by one, as coordinator-mode members do: both
modes' commit payloads are the same size.

Garbage in an offset znode (not a decimal integer) is logged as an error and read as "no offset
stored": the fetch reports -1 for it, listed under ``unreadable`` in the ``offsets_fetched`` event, so
the checker's lost-offset check names the partition instead of the member crashing on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from group_api.events import TopicPartition

from .paths import GroupPaths
from .pipeline import gather, value

log = logging.getLogger(__name__)

#: What a fetch reports for a partition with no (readable) stored offset, as Kafka's OffsetFetch.
NO_OFFSET = -1


#: Kafka's offsets are int64.
MAX_OFFSET = 2**63 - 1


def parse_offset(raw: bytes | None) -> int | None:
    """The offset a znode holds (0.8.2 wrote ``offset.toString``): a decimal in ``[0, 2**63)``; None
    for anything else (not ASCII digits, negative, or past an int64)."""
    try:
        text = (raw or b"").decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not text.isdigit() or len(text) > len(str(MAX_OFFSET)):
        return None
    offset = int(text)
    return offset if offset <= MAX_OFFSET else None


@dataclass(frozen=True)
class Fetched:
    """One read-back: the offset per partition (-1: none stored) and the znodes holding garbage."""

    offsets: dict[TopicPartition, int]
    unreadable: tuple[str, ...] = ()


@dataclass
class ZkOffsets:
    """A member's committed offsets in ZooKeeper and its consumed positions."""

    client: KazooClient
    paths: GroupPaths
    #: the next offset to commit per owned partition (the position, in Kafka's words)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    #: 0.8.2's ``checkpointedZkOffsets``: the last offset written or read per partition
    checkpointed: dict[TopicPartition, int] = field(default_factory=dict)

    def fetch(self, partitions: Iterable[TopicPartition]) -> Fetched:
        """Read the stored offsets of ``partitions`` (one ``get`` each, pipelined: one round trip)
        and resume from them."""
        offsets: dict[TopicPartition, int] = {}
        unreadable: list[str] = []
        tps = sorted(partitions)
        answers = gather(self.client.get_async(self.paths.offset(*tp)) for tp in tps)
        for tp, answer in zip(tps, answers, strict=True):
            path = self.paths.offset(*tp)
            if isinstance(answer, NoNodeError):
                offsets[tp] = NO_OFFSET
                continue
            raw, _ = value(answer)
            offset = parse_offset(raw)
            if offset is None:
                log.error(
                    "offset znode %s holds %r, not an offset: reading it as none stored",
                    path,
                    (raw or b"")[:60],
                )
                unreadable.append(path)
                offsets[tp] = NO_OFFSET
                continue
            offsets[tp] = offset
            self.checkpointed[tp] = offset
        for tp, offset in offsets.items():
            self.positions[tp] = max(offset, 0)
        return Fetched(offsets, tuple(unreadable))

    def commit(
        self, partitions: Iterable[TopicPartition], reached: dict[TopicPartition, int] | None = None
    ) -> dict[TopicPartition, int]:
        """Write each partition's position where it differs from the checkpoint (0.8.2's
        ``commitOffsets``, only changed offsets), pipelined: one round trip, one more for the znodes
        that do not exist yet; returns what was written. ``reached``: the positions the member's
        records reached (partitions without one are skipped); None, when no records flow: each
        position advances by one."""
        written: dict[TopicPartition, int] = {}
        for tp in sorted(partitions):
            if reached is not None and tp not in reached:
                continue
            offset = reached[tp] if reached is not None else self.positions.get(tp, 0) + 1
            if self.checkpointed.get(tp) != offset:
                written[tp] = offset
        self._write({self.paths.offset(*tp): str(o).encode() for tp, o in written.items()})
        for tp, offset in written.items():
            self.positions[tp] = offset
            self.checkpointed[tp] = offset
        return written

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions we no longer own: their next owner's commits make our checkpoint stale."""
        for tp in partitions:
            self.positions.pop(tp, None)
            self.checkpointed.pop(tp, None)

    def _write(self, data: dict[str, bytes]) -> None:
        """0.8's ``ZkUtils.updatePersistentPath`` for each znode: set, or create with the parents if
        missing; every step pipelined."""
        paths = sorted(data)
        answers = gather(self.client.set_async(p, data[p]) for p in paths)
        missing = [p for p, a in zip(paths, answers, strict=True) if isinstance(a, NoNodeError)]
        for a in answers:
            if not isinstance(a, NoNodeError):
                value(a)
        created = gather(self.client.create_async(p, data[p], makepath=True) for p in missing)
        # Created meanwhile (a previous owner): set it after all.
        raced = [p for p, a in zip(missing, created, strict=True) if isinstance(a, NodeExistsError)]
        for a in created:
            if not isinstance(a, NodeExistsError):
                value(a)
        for a in gather(self.client.set_async(p, data[p]) for p in raced):
            value(a)

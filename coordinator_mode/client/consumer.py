"""The coordinator-mode member's records routine: fetch what it owns, process, advance the position.

What the Java consumer's ``poll`` loop does for an application, with the group protocol's rules on
ownership (the member, :mod:`.member`, runs the protocol; this routine only reads its state):

* It consumes only in a stable generation, once the committed offsets of the assignment are read
  (``offsets_fetched``); a partition without a committed offset starts at ``auto_offset_reset``
  (:meth:`~.fetcher.Fetcher.reset_positions`), and an out-of-range position is reset again.
* Each fetched partition's records are processed (``processing_ms`` per record, a sleep standing for
  the application's work), then one ``consumed`` event is emitted and the position moves past them;
  the member commits that position (auto-commit, and before it gives partitions up).
* The member bumps ``_consume_token`` when it revokes or starts the commit that precedes giving
  partitions up: records fetched or being processed under an older token are dropped unprocessed,
  so nothing is processed past a committed position on a graceful hand-over and a revoked partition
  stops at once (the Java consumer gets the same by running rebalances inside ``poll``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import kafka.errors as Errors

from group_api import EventKind, MemberState
from group_api.consumption import ConsumeSettings

from .connection import KafkaClient
from .fetcher import FetchedRecords, Fetcher
from .settings import Backoff

if TYPE_CHECKING:
    from .member import CoordinatorMember

log = logging.getLogger(__name__)


class RecordsConsumer:
    def __init__(self, member: CoordinatorMember, client: KafkaClient, settings: ConsumeSettings) -> None:
        self.member = member
        self.settings = settings
        self.fetcher = Fetcher(client, settings.auto_offset_reset)

    def _ready(self) -> bool:
        m = self.member
        waiting_offsets = m._fetch_needed and m.settings.enable_auto_commit
        return m.state is MemberState.STABLE and bool(m._owned) and not waiting_offsets

    async def run(self) -> None:
        m = self.member
        backoff = Backoff(m.settings.retry_backoff_ms, m.settings.retry_backoff_max_ms)
        while not m._leaving:
            m._consume_wakeup.clear()
            if not self._ready():
                await m._consume_wakeup.wait()
                continue
            try:
                await self._round()
                backoff.reset()
            except Errors.KafkaError as exc:
                log.info("%s: fetch: %s", m.member_id, exc)
                await asyncio.sleep(backoff.next())

    async def _round(self) -> None:
        m = self.member
        token, owned = m._consume_token, tuple(m._owned or ())
        missing = [tp for tp in owned if tp not in m._positions]
        if missing:
            found = await self.fetcher.reset_positions(missing)
            if token == m._consume_token:
                m._positions.update(found)
            if len(found) < len(missing):
                await asyncio.sleep(m.settings.retry_backoff_ms / 1000)
            return
        fetched, out_of_range = await self.fetcher.fetch({tp: m._positions[tp] for tp in owned})
        if token != m._consume_token:
            return  # revoked or committing meanwhile: this answer is not ours to process
        for tp in out_of_range:
            log.warning("%s: position %d of %s out of range; resetting", m.member_id, m._positions[tp], tp)
            m._positions.pop(tp, None)
        for records in fetched:
            if not await self._process(records, token):
                return

    async def _process(self, records: FetchedRecords, token: int) -> bool:
        """Process one partition's records; False (nothing counted) if the token moved meanwhile."""
        m = self.member
        if self.settings.processing_ms:
            await asyncio.sleep(self.settings.processing_ms * len(records.offsets) / 1000)
        if token != m._consume_token:
            return False
        m.emit(
            EventKind.CONSUMED,
            generation=m._generation.generation_id,
            partitions=[records.tp],
            first_offset=records.offsets[0],
            last_offset=records.offsets[-1],
            count=len(records.offsets),
            produce_ms_min=min(records.produce_ms, default=None),
            produce_ms_max=max(records.produce_ms, default=None),
        )
        m._positions[records.tp] = records.next_offset
        return True

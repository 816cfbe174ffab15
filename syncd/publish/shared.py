"""What the parts of one account's pusher share (:class:`Shared`).

The pusher (:mod:`syncd.publish.pusher`) builds one :class:`Shared` per account and hands
it to its parts: the call runner (:mod:`syncd.publish.calls`), the parking and probes
(:mod:`syncd.publish.parking`) and the read-back (:mod:`syncd.publish.readback`). It
holds the account's collaborators, its :class:`~syncd.core.sending.SendQueue`, counters
and action book, and the three effects every part needs: queue a listing
(:meth:`Shared.place`), hand offsets over (:meth:`Shared.resolve`) and write changed
manual actions (:meth:`Shared.write_actions`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from syncd.channels.base import Channel
from syncd.core.actions import ActionBook
from syncd.core.errortable import ErrorTable
from syncd.core.sending import SendQueue
from syncd.publish.limits import Limiter
from syncd.publish.types import ActionWriter, Sink


@dataclass(slots=True)
class Shared:
    """One account's collaborators and state shared by the pusher's parts."""

    account: str
    partition: int
    channel: Channel
    limiter: Limiter
    sink: Sink
    table: ErrorTable
    queue: SendQueue
    log: Any
    """The structlog logger bound to the account and partition."""
    action_writer: ActionWriter | None = None
    book: ActionBook = field(init=False)
    counts: Counter[str] = field(default_factory=Counter)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when there may be something to send."""

    def __post_init__(self) -> None:
        self.book = ActionBook(self.account)

    @property
    def platform(self) -> str:
        return self.channel.platform

    def place(self, key: str) -> None:
        """Queue the listing's pending quantity (or hand it over when the platform
        already holds it) and wake a sender."""
        dropped = self.queue.place(key)
        if dropped is not None:  # the platform already holds it
            self.sink.resolve(self.partition, dropped.offsets)
            self.counts["unchanged"] += 1
            return
        self.wake.set()

    def resolve(self, offsets: Iterable[int]) -> None:
        """These desired-topic offsets need nothing more from this account."""
        self.sink.resolve(self.partition, offsets)

    async def write_actions(self, ids: list[str]) -> None:
        """Log and write the records of the changed actions ``ids``."""
        if not ids:
            return
        records = self.book.records(ids)
        for _key, value in records:
            self.log.info(
                "action_" + value["state"],
                action=value["action"],
                listings=len(value["listings"]),
                count=value["count"],
            )
        if self.action_writer is not None:
            await self.action_writer(records)

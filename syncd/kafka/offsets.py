"""Offsets that are safe to commit when records finish out of order: :class:`OffsetTracker`.

The publish stage resolves a partition's records out of order (accounts send at their own
pace, a newer quantity supersedes an older one); its commit may only move past records
that are all resolved. One tracker per assigned partition keeps the unresolved offsets;
:meth:`OffsetTracker.position` is the offset :meth:`syncd.kafka.stage.KafkaStage.commit`
is given.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

__all__ = ["MAX_OPEN_OFFSETS", "OffsetTracker"]

MAX_OPEN_OFFSETS = 200_000
"""A partition with this many unresolved records is paused until half of them resolve."""


class OffsetTracker:
    """Unresolved offsets of one partition; :meth:`position` is the offset safe to commit."""

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._open: set[int] = set()
        self.next: int | None = None

    def add(self, offset: int) -> None:
        heapq.heappush(self._heap, offset)
        self._open.add(offset)
        self.next = offset + 1

    def done(self, offsets: Iterable[int]) -> None:
        self._open.difference_update(offsets)

    @property
    def open(self) -> int:
        return len(self._open)

    def position(self) -> int | None:
        """The lowest unresolved offset, else one past the newest offset seen."""
        while self._heap and self._heap[0] not in self._open:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self.next

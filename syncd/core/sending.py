"""The per-account send queue, pure: what to send next and what a call's answers mean.

Owns :class:`Desired` (the newest desired quantity of one listing and the desired-topic
offsets it answers for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Desired:
    """The newest desired quantity of one listing and the records it answers for."""

    key: str
    """``<account>/<listing ref>``, the desired topic's key."""
    listing: dict[str, Any]
    listing_ref: str
    sku: str
    quantity: int
    source_ts: int | None
    offsets: list[int] = field(default_factory=list)
    """Offsets (in the account's desired partition) resolved when this value is (kept by
    the reader, not on the wire)."""

    @property
    def account(self) -> str:
        return self.key.split("/", 1)[0]

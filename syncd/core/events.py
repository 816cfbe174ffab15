"""Typed input events: what ``contract`` decodes records into.

Plain frozen dataclasses, no I/O. Times are Unix epoch milliseconds (UTC);
the contract's RFC 3339 strings are parsed once, at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    event_id: str
    sku: str
    warehouse: str
    on_hand: int
    as_of: int


@dataclass(frozen=True, slots=True)
class StockAdjusted:
    event_id: str
    sku: str
    warehouse: str
    delta: int
    as_of: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    qty: int
    warehouse: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    event_id: str
    order_id: str
    channel: str
    placed_at: int
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    event_id: str
    order_id: str
    cancelled_at: int
    lines: tuple[OrderLine, ...] | None = None


@dataclass(frozen=True, slots=True)
class OrderShipped:
    event_id: str
    order_id: str
    shipped_at: int
    lines: tuple[OrderLine, ...] | None = None


@dataclass(frozen=True, slots=True)
class ListingLinked:
    event_id: str
    channel: str
    listing: dict[str, Any]
    listing_ref: str
    """Canonical text of ``listing``: JSON with sorted keys, no spaces."""
    sku: str
    warehouses: tuple[str, ...] | None = None
    rules: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ListingUnlinked:
    event_id: str
    channel: str
    listing: dict[str, Any]
    listing_ref: str


@dataclass(frozen=True, slots=True)
class ListingTombstone:
    """A null-valued catalog record: the same as ``listing.unlinked`` for ``key``."""

    key: str


StockEvent = StockSnapshot | StockAdjusted
OrderEvent = OrderPlaced | OrderCancelled | OrderShipped
CatalogEvent = ListingLinked | ListingUnlinked | ListingTombstone

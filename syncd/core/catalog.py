"""The listing catalog: which channel listing sells which SKU.

A table built from the compacted ``catalog.listings`` topic. Every process
reads the whole topic (it is small next to the event streams), so the SKU
side can find a SKU's listings without a repartition. Applying an event says
which SKUs it affected, so only their quantities are recomputed.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.core.events import CatalogEvent, ListingLinked, ListingTombstone, ListingUnlinked
from syncd.core.keys import listing_key


@dataclass(frozen=True, slots=True)
class Listing:
    channel: str
    """Channel account id, ``<platform>:<account name>``."""
    listing: dict[str, Any]
    ref: str
    sku: str
    warehouses: tuple[str, ...] | None
    rules: Mapping[str, Any] | None

    @property
    def key(self) -> str:
        """The listing's key on the desired-quantity topic: ``<account>/<listing ref>``."""
        return listing_key(self.channel, self.ref)

    @property
    def platform(self) -> str:
        return self.channel.split(":", 1)[0]


class Catalog:
    def __init__(self) -> None:
        self._by_key: dict[str, Listing] = {}
        self._record_key: dict[str, str] = {}
        """Catalog record key -> listing key (tombstones name only the record key)."""
        self._by_sku: dict[str, dict[str, Listing]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def listings_for(self, sku: str) -> list[Listing]:
        return list(self._by_sku.get(sku, {}).values())

    def skus(self) -> list[str]:
        return list(self._by_sku)

    def get(self, key: str) -> Listing | None:
        return self._by_key.get(key)

    def all(self) -> list[Listing]:
        return list(self._by_key.values())

    def apply(self, record_key: str, event: CatalogEvent) -> set[str]:
        """Apply one catalog record; returns the SKUs whose listings changed."""
        if isinstance(event, ListingLinked):
            new = Listing(
                channel=event.channel,
                listing=event.listing,
                ref=event.listing_ref,
                sku=event.sku,
                warehouses=event.warehouses,
                rules=event.rules,
            )
            affected = self._remove(new.key)
            self._by_key[new.key] = new
            self._record_key[record_key] = new.key
            self._by_sku.setdefault(new.sku, {})[new.key] = new
            return affected | {new.sku}
        if isinstance(event, ListingUnlinked):
            return self._remove(listing_key(event.channel, event.listing_ref))
        if isinstance(event, ListingTombstone):
            key = self._record_key.pop(event.key, None)
            return self._remove(key) if key is not None else set()
        raise TypeError(type(event).__name__)  # pragma: no cover

    def _remove(self, key: str) -> set[str]:
        old = self._by_key.pop(key, None)
        if old is None:
            return set()
        per_sku = self._by_sku.get(old.sku, {})
        per_sku.pop(key, None)
        if not per_sku:
            self._by_sku.pop(old.sku, None)
        return {old.sku}

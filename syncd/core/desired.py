"""Desired quantities: what every listing of one SKU should show now.

Joins the SKU's ledger state, its listings from the catalog and the merged
rule layers, and applies the policy. Shared by the compute stage (which emits
the changed values) and ``syncd inspect`` (which prints the terms).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.config import Config
from syncd.core.catalog import Listing
from syncd.core.ledger import SkuState
from syncd.core.policy import Inputs, Quantity, Rules, compute


@dataclass(frozen=True, slots=True)
class ListingQuantity:
    listing: Listing
    rules: Rules
    quantity: Quantity


class RulesCache:
    """Merged rules per listing object (listings are immutable; a change replaces the object)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._by_id: dict[int, tuple[Listing, Rules]] = {}

    def get(self, listing: Listing) -> Rules:
        hit = self._by_id.get(id(listing))
        if hit is not None and hit[0] is listing:
            return hit[1]
        rules = self.cfg.rules_for(listing.channel, listing.sku, listing.rules)
        if len(self._by_id) > 1_000_000:
            self._by_id.clear()
        self._by_id[id(listing)] = (listing, rules)
        return rules


def for_sku(
    state: SkuState, listings: list[Listing], cfg: Config, rules: RulesCache | None = None
) -> list[ListingQuantity]:
    c = cfg.compute
    velocity = state.velocity_per_hour(bucket_ms=c.bucket_ms, window_ms=c.window_ms)
    stock: dict[tuple[str, ...] | None, tuple[int, int]] = {}
    out = []
    for listing in listings:
        r = (
            rules.get(listing)
            if rules is not None
            else cfg.rules_for(listing.channel, state.sku, listing.rules)
        )
        whs = listing.warehouses
        if whs not in stock:
            stock[whs] = (state.on_hand(whs), state.reserved(whs))
        on_hand, reserved = stock[whs]
        inputs = Inputs(
            on_hand=on_hand,
            reserved=reserved,
            held_by_others=state.held_by_others(listing.channel),
            velocity_per_hour=velocity,
        )
        out.append(ListingQuantity(listing, r, compute(r, inputs)))
    return out

"""Desired quantities: what every listing of one SKU should show now.

Joins the SKU's ledger state, its listings from the catalog and the merged
rule layers (:class:`~syncd.core.policy.RuleLayers`), and applies the policy.
Shared by the compute stage (which emits the changed values) and
``syncd inspect`` (which prints the terms).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.core.catalog import Listing
from syncd.core.ledger import SkuState
from syncd.core.policy import Inputs, Quantity, RuleLayers, Rules, compute


@dataclass(frozen=True, slots=True)
class ListingQuantity:
    listing: Listing
    rules: Rules
    quantity: Quantity


class RulesCache:
    """Merged rules per listing object (listings are immutable; a change replaces the object)."""

    def __init__(self, layers: RuleLayers) -> None:
        self.layers = layers
        self._by_id: dict[int, tuple[Listing, Rules]] = {}

    def get(self, listing: Listing) -> Rules:
        hit = self._by_id.get(id(listing))
        if hit is not None and hit[0] is listing:
            return hit[1]
        rules = self.layers.rules_for(listing.channel, listing.sku, listing.rules)
        if len(self._by_id) > 1_000_000:
            self._by_id.clear()
        self._by_id[id(listing)] = (listing, rules)
        return rules


def for_sku(
    state: SkuState,
    listings: list[Listing],
    rules: RuleLayers | RulesCache,
    *,
    bucket_ms: int,
    window_ms: int,
) -> list[ListingQuantity]:
    """Every listing's quantity; ``bucket_ms``/``window_ms`` give the sales velocity's
    window (``[compute]``)."""
    velocity = state.velocity_per_hour(bucket_ms=bucket_ms, window_ms=window_ms)
    stock: dict[tuple[str, ...] | None, tuple[int, int]] = {}
    out = []
    for listing in listings:
        r = (
            rules.get(listing)
            if isinstance(rules, RulesCache)
            else rules.rules_for(listing.channel, state.sku, listing.rules)
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

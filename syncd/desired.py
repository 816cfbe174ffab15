"""Desired quantities: what every listing of one SKU should show now.

Joins the SKU's ledger state, its listings from the catalog and the merged
rule layers, and applies the policy. Shared by the compute stage (which emits
the changed values) and ``syncd inspect`` (which prints the terms).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.catalog import Listing
from syncd.config import Config
from syncd.ledger import SkuState
from syncd.policy import Inputs, Quantity, Rules, compute


@dataclass(frozen=True, slots=True)
class ListingQuantity:
    listing: Listing
    rules: Rules
    quantity: Quantity


def for_sku(state: SkuState, listings: list[Listing], cfg: Config) -> list[ListingQuantity]:
    c = cfg.compute
    velocity = state.velocity_per_hour(bucket_ms=c.bucket_ms, window_ms=c.window_ms)
    out = []
    for listing in listings:
        rules = cfg.rules_for(listing.channel, state.sku, listing.rules)
        inputs = Inputs(
            on_hand=state.on_hand(listing.warehouses),
            reserved=state.reserved(listing.warehouses),
            held_by_others=state.held_by_others(listing.channel),
            velocity_per_hour=velocity,
        )
        out.append(ListingQuantity(listing, rules, compute(rules, inputs)))
    return out

"""The quantity policy: how many units a channel listing should show.

    available = on_hand(listing's warehouses) - reserved - held by other channels
    buffer    = safety stock: none, fixed units, a percentage of available, or
                sales velocity (units/hour) x the time syncd needs to react
    shown     = clamp(floor((available - buffer) x share), 0, max_quantity)
                0 when available - buffer is under zero_below
    sent      = max(shown, unpaid-order minimum the platform locks)

Rules come in layers, each a partial mapping of the keys of :class:`Rules`:
the global ``[policy]`` table, the channel account's, the SKU's override, and
the listing's own ``rules`` from the catalog (most specific wins);
:class:`RuleLayers` holds the configured ones and merges them for a listing.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

SafetyKind = Literal["none", "fixed", "percent", "velocity"]
SAFETY_KINDS: tuple[str, ...] = ("none", "fixed", "percent", "velocity")


class RuleError(ValueError):
    """A rule value is invalid; ``key`` names it (callers wrap it with their context)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rules:
    """The quantity rules for one listing, after merging every layer."""

    safety: SafetyKind = "fixed"
    """How the safety buffer is computed."""
    safety_units: int = 0
    """Fixed buffer; with ``velocity``, the least buffer."""
    safety_percent: float = 0.0
    """With ``percent``: this share of available stock, rounded up."""
    react_minutes: float = 30.0
    """With ``velocity``: how long until the next update lands (buffer = rate x this)."""
    share: float = 1.0
    """Fraction of the remaining stock this channel may show (0..1)."""
    max_quantity: int | None = None
    """Never show more than this (None: no cap)."""
    zero_below: int = 0
    """Show 0 when fewer than this many units are left after the buffer."""

    def merged(self, layer: Mapping[str, Any] | None) -> Rules:
        """These rules with ``layer``'s keys on top; raises RuleError naming a bad key."""
        if not layer:
            return self
        return replace(self, **parse_layer(layer))


@dataclass(frozen=True, slots=True)
class RuleLayers:
    """The configured rule layers: global, per channel account, per SKU (from the config)."""

    base: Rules = field(default_factory=Rules)
    """The global ``[policy]`` table, validated."""
    accounts: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """Channel account id -> its ``policy`` layer."""
    skus: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """SKU -> its override layer."""

    def rules_for(self, account: str, sku: str, listing_rules: Mapping[str, Any] | None) -> Rules:
        """Merge the rule layers: global, channel account, SKU, listing."""
        rules = self.base.merged(self.accounts.get(account))
        rules = rules.merged(self.skus.get(sku))
        return rules.merged(listing_rules)


_FIELDS = {f.name for f in fields(Rules)}


def parse_layer(layer: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a partial rules mapping; unknown keys and bad values raise RuleError."""
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if key not in _FIELDS:
            raise RuleError(key, f"unknown rule; known rules: {', '.join(sorted(_FIELDS))}")
        out[key] = _check(key, value)
    return out


def _check(key: str, value: Any) -> Any:
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    if key == "safety":
        if value not in SAFETY_KINDS:
            raise RuleError(key, f"must be one of {', '.join(SAFETY_KINDS)}, got {value!r}")
        return value
    if key == "max_quantity":
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise RuleError(key, f"must be a whole number >= 0, got {value!r}")
    if key in ("safety_units", "zero_below"):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise RuleError(key, f"must be a whole number >= 0, got {value!r}")
    if key == "share":
        if is_num and 0 <= value <= 1:
            return float(value)
        raise RuleError(key, f"must be a number from 0 to 1, got {value!r}")
    if key == "safety_percent":
        if is_num and 0 <= value <= 100:
            return float(value)
        raise RuleError(key, f"must be a number from 0 to 100, got {value!r}")
    # react_minutes
    if is_num and math.isfinite(value) and value >= 0:
        return float(value)
    raise RuleError(key, f"must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the policy needs to know about one listing of one SKU."""

    on_hand: int
    reserved: int
    held_by_others: int
    velocity_per_hour: float
    unpaid_minimum: int = 0


@dataclass(frozen=True, slots=True)
class Quantity:
    """The result, with every term kept so that ``syncd inspect`` can explain it."""

    on_hand: int
    reserved: int
    held_by_others: int
    available: int
    buffer: int
    buffer_reason: str
    after_buffer: int
    share: float
    max_quantity: int | None
    zero_below: int
    shown: int
    unpaid_minimum: int
    sent: int

    def explain(self) -> list[tuple[str, str]]:
        """(term, text) pairs, in the order the formula applies them."""
        cap = "none" if self.max_quantity is None else str(self.max_quantity)
        if self.after_buffer <= 0:
            zero = "nothing left after the buffer: show 0"
        elif self.after_buffer < self.zero_below:
            zero = f"{self.after_buffer} < zero_below {self.zero_below}: show 0"
        else:
            zero = f"{self.after_buffer} >= zero_below {self.zero_below}"
        return [
            ("on_hand", f"{self.on_hand} units in the listing's warehouses"),
            ("reserved", f"- {self.reserved} units reserved by open or unsettled orders"),
            ("held_by_others", f"- {self.held_by_others} units held by other channels' campaigns"),
            ("available", f"= {self.available}"),
            ("buffer", f"- {self.buffer} safety stock ({self.buffer_reason})"),
            ("after_buffer", f"= {self.after_buffer}"),
            ("threshold", zero),
            ("share", f"x {self.share:g}, rounded down, capped at max_quantity {cap}"),
            ("shown", f"= {self.shown}"),
            ("unpaid_minimum", f"platform locks {self.unpaid_minimum} units for unpaid orders"),
            ("sent", f"= {self.sent}"),
        ]


def buffer_for(rules: Rules, available: int, velocity_per_hour: float) -> tuple[int, str]:
    """The safety buffer in units and a short text saying how it was computed."""
    if rules.safety == "none":
        return 0, "none"
    if rules.safety == "fixed":
        return rules.safety_units, f"fixed {rules.safety_units}"
    if rules.safety == "percent":
        units = math.ceil(round(max(available, 0) * rules.safety_percent / 100, 9))
        return units, f"{rules.safety_percent:g}% of {max(available, 0)}, rounded up"
    expected = velocity_per_hour * rules.react_minutes / 60
    units = max(rules.safety_units, math.ceil(round(expected, 9)))
    return units, (
        f"velocity {velocity_per_hour:.2f}/h x {rules.react_minutes:g} min = {expected:.2f},"
        f" rounded up, at least {rules.safety_units}"
    )


def compute(rules: Rules, inputs: Inputs) -> Quantity:
    """The quantity a listing should show, term by term."""
    available = inputs.on_hand - inputs.reserved - inputs.held_by_others
    buffer, reason = buffer_for(rules, available, inputs.velocity_per_hour)
    after = available - buffer
    if after < rules.zero_below or after <= 0:
        shown = 0
    else:
        shown = math.floor(round(after * rules.share, 9))
        if rules.max_quantity is not None:
            shown = min(shown, rules.max_quantity)
    return Quantity(
        on_hand=inputs.on_hand,
        reserved=inputs.reserved,
        held_by_others=inputs.held_by_others,
        available=available,
        buffer=buffer,
        buffer_reason=reason,
        after_buffer=after,
        share=rules.share,
        max_quantity=rules.max_quantity,
        zero_below=rules.zero_below,
        shown=shown,
        unpaid_minimum=inputs.unpaid_minimum,
        sent=max(shown, inputs.unpaid_minimum),
    )

"""The order book: one order's state, whatever order its events arrive in.

Order events are keyed by order id, but stock state is per SKU. This module
keeps, per order id, the raw facts (the placement, every cancel and ship with
its time) and derives from them the *view* of the order for each SKU it
touches: per line, the units still reserved and the units shipped (with the
ship time). The compute stage writes each changed view to the internal
order-lines topic keyed by SKU, stamped with a ``version`` (the order event's
source offset) so the SKU side can keep the newest view and ignore replays.

Because the view is recomputed from all facts sorted by their own time,
events of one order may arrive in any order (a cancel before its placement)
and the result is the same. A placement for an order that is already closed
reserves nothing; a repeated ``event_id`` has no effect.

Pure: no I/O, no clock; times are epoch milliseconds from the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from syncd.core.events import OrderCancelled, OrderEvent, OrderLine, OrderPlaced, OrderShipped

Outcome = Literal["applied", "duplicate", "replayed", "repeat_placement"]


def compact_bytes(raw: bytes) -> bytes:
    """An exact-size copy: orjson's result keeps a 4 KiB buffer, costly for long-lived state."""
    return bytes(memoryview(raw))


# A line of a placement: (sku, qty, warehouse or None).
_Line = tuple[str, int, str | None]


class LineView(NamedTuple):
    """One order line as the SKU side needs it (a tuple: cheap to build and compare)."""

    warehouse: str | None
    placed: int
    open: int
    """Units still reserved and not shipped."""
    shipped: tuple[tuple[int, int], ...]
    """(units, shipped_at) parts: reservations until a later snapshot settles them."""


class SkuOrderView(NamedTuple):
    """The part of one order that concerns one SKU."""

    order_id: str
    version: int
    channel: str
    placed_at: int
    lines: tuple[LineView, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "order_id": self.order_id,
                "version": self.version,
                "channel": self.channel,
                "placed_at": self.placed_at,
                "lines": [
                    [ln.warehouse, ln.placed, ln.open, [list(p) for p in ln.shipped]]
                    for ln in self.lines
                ],
            }
        )

    @staticmethod
    def from_json(raw: bytes) -> SkuOrderView:
        d = orjson.loads(raw)
        return SkuOrderView(
            d["order_id"],
            d["version"],
            d["channel"],
            d["placed_at"],
            tuple(LineView(w, p, o, tuple((q, t) for q, t in s)) for w, p, o, s in d["lines"]),
        )


@dataclass(slots=True)
class OrderState:
    """Everything known about one order id."""

    version: int = -1
    """Source offset of the newest event applied (the replay guard)."""
    event_ids: list[str] = field(default_factory=list)
    channel: str | None = None
    placed_at: int | None = None
    lines: list[_Line] | None = None
    ops: list[tuple[str, int, list[_Line] | None]] = field(default_factory=list)
    """Cancels ("c") and ships ("s"): (kind, at, lines or None for all)."""
    last_at: int = 0
    """Newest event time seen for this order (for retention)."""

    # -- persistence -------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The changelog record; an exact-size copy, since it is kept in memory."""
        return compact_bytes(
            orjson.dumps(
                [
                    self.version,
                    self.event_ids,
                    self.channel,
                    self.placed_at,
                    self.lines,
                    self.ops,
                    self.last_at,
                ]
            )
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> OrderState:
        v, ids, ch, pat, lines, ops, last = orjson.loads(raw)
        return cls(
            version=v,
            event_ids=ids,
            channel=ch,
            placed_at=pat,
            lines=None if lines is None else [(s, q, w) for s, q, w in lines],
            ops=[
                (k, at, None if ls is None else [(s, q, w) for s, q, w in ls]) for k, at, ls in ops
            ],
            last_at=last,
        )

    # -- derived -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        """Placed, and nothing left open (all cancelled or shipped)."""
        views = self.views(order_id="")
        return self.lines is not None and all(
            ln.open == 0 for v in views.values() for ln in v.lines
        )

    def views(self, order_id: str) -> dict[str, SkuOrderView]:
        """The per-SKU views of this order; empty until the placement is known."""
        if self.lines is None or self.channel is None or self.placed_at is None:
            return {}
        work: list[list[Any]] = [[s, w, q, q, []] for s, q, w in self.lines]
        # Facts sorted by their own time, ties broken by content: arrival order
        # never changes the result.
        for kind, at, op_lines in sorted(self.ops, key=lambda o: (o[1], o[0], repr(o[2]))):
            if op_lines is None:
                for ln in work:
                    _take(ln, ln[3], kind, at)
                continue
            for sku, qty, wh in op_lines:
                remaining = qty
                for ln in work:
                    if remaining == 0:
                        break
                    if ln[0] == sku and (wh is None or ln[1] == wh):
                        taken = min(remaining, ln[3])
                        _take(ln, taken, kind, at)
                        remaining -= taken
        by_sku: dict[str, list[LineView]] = {}
        for sku, wh, placed, open_, shipped in work:
            by_sku.setdefault(sku, []).append(LineView(wh, placed, open_, tuple(shipped)))
        return {
            sku: SkuOrderView(order_id, self.version, self.channel, self.placed_at, tuple(lv))
            for sku, lv in by_sku.items()
        }


def _take(line: list[Any], units: int, kind: str, at: int) -> None:
    if units <= 0:
        return
    line[3] -= units
    if kind == "s":
        line[4].append((units, at))


def _lines(lines: tuple[OrderLine, ...] | None) -> list[_Line] | None:
    if lines is None:
        return None
    return [(ln.sku, ln.qty, ln.warehouse) for ln in lines]


def apply(
    state: OrderState | None, event: OrderEvent, offset: int
) -> tuple[OrderState, Outcome, dict[str, SkuOrderView]]:
    """Apply one order event at source ``offset``.

    Returns the new state, what happened, and the per-SKU views that changed
    (to be written to the order-lines topic). ``state`` is modified in place
    when given.
    """
    st = state if state is not None else OrderState()
    if offset <= st.version:
        return st, "replayed", {}
    if event.event_id in st.event_ids:
        st.version = offset
        return st, "duplicate", {}
    before = st.views(event.order_id)
    outcome: Outcome = "applied"
    if isinstance(event, OrderPlaced):
        if st.lines is not None:
            outcome = "repeat_placement"
        else:
            st.channel = event.channel
            st.placed_at = event.placed_at
            st.lines = _lines(event.lines)
        at = event.placed_at
    elif isinstance(event, OrderCancelled):
        st.ops.append(("c", event.cancelled_at, _lines(event.lines)))
        at = event.cancelled_at
    elif isinstance(event, OrderShipped):
        st.ops.append(("s", event.shipped_at, _lines(event.lines)))
        at = event.shipped_at
    else:  # pragma: no cover - exhaustive over OrderEvent
        raise TypeError(type(event).__name__)
    st.event_ids.append(event.event_id)
    st.version = offset
    st.last_at = max(st.last_at, at)
    after = st.views(event.order_id)
    changed = {
        sku: v for sku, v in after.items() if sku not in before or before[sku].lines != v.lines
    }
    return st, outcome, changed


def expired(state: OrderState, now_ms: int, retention_ms: int) -> bool:
    """Whether a closed (or never placed) order may be forgotten.

    Open orders are reservations and are kept however old they are.
    """
    if state.last_at > now_ms - retention_ms:
        return False
    return state.lines is None or state.closed

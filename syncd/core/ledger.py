"""The stock ledger: exact per-SKU stock state.

Owns, for one SKU: the on-hand count per warehouse (the newest snapshot and
the adjustments after it), the open reservations of every order (as order
views from :mod:`syncd.core.orders`), shipped units still awaiting a snapshot,
recent sales for velocity, and the last quantity emitted per listing.

Contract rules implemented here (shared/contract/events.md):
- a snapshot older than the newest applied one for the warehouse is stale;
- an adjustment not after the newest snapshot is contained in it;
- on-hand never goes below 0 through adjustments (clamped, reported);
- a shipped line stays reserved until a snapshot at or after its ship time
  (of its warehouse; of any warehouse when the line names none);
- a repeated ``event_id`` changes nothing.

Every fact is kept with its own time, so the final state does not depend on
the arrival order of events on the two input topics. The state serialises to
a compact JSON array (:meth:`SkuState.to_bytes`): that is both the changelog
record and the in-memory form between batches.

Pure: no I/O, no clock; times are epoch milliseconds from the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import orjson

from syncd.core.events import StockAdjusted, StockEvent, StockSnapshot
from syncd.core.orders import LineView, SkuOrderView, compact_bytes

StockOutcome = Literal["applied", "stale", "contained", "duplicate", "replayed", "clamped"]
LineOutcome = Literal["applied", "replayed"]

NO_SNAPSHOT = -1


@dataclass(slots=True)
class Warehouse:
    """On-hand of one SKU in one warehouse."""

    snap_qty: int = 0
    snap_at: int = NO_SNAPSHOT
    snap_id: str = ""
    pending: list[tuple[str, int, int]] = field(default_factory=list)
    """Adjustments after the snapshot: (event_id, as_of, delta as sent)."""

    @property
    def on_hand(self) -> int:
        """The snapshot plus the later adjustments in time order, never below 0 on the way."""
        qty = self.snap_qty
        for _, _, delta in sorted(self.pending, key=lambda p: (p[1], p[0])):
            qty = max(0, qty + delta)
        return qty


@dataclass(slots=True)
class OrderEntry:
    """One order's lines for this SKU (empty lines: closed, kept as a replay guard)."""

    version: int
    placed_at: int
    lines: tuple[LineView, ...]


@dataclass(slots=True)
class SkuState:
    sku: str
    warehouses: dict[str, Warehouse] = field(default_factory=dict)
    orders: dict[str, OrderEntry] = field(default_factory=dict)
    sales: dict[int, int] = field(default_factory=dict)
    """Units ordered per velocity bucket (bucket index = placed_at // bucket_ms)."""
    holds: dict[str, int] = field(default_factory=dict)
    """Units a channel account holds for a campaign (they leave every other channel)."""
    emitted: dict[str, int] = field(default_factory=dict)
    """Last desired quantity written per listing key."""
    stock_offset: int = -1
    """Source offset of the newest stock event applied (the replay guard)."""
    last_at: int = 0
    """Newest event time seen for this SKU: the clock of velocity and retention."""

    # -- persistence -------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The changelog record; an exact-size copy, since it is kept in memory."""
        return compact_bytes(
            orjson.dumps(
                [
                    1,  # format version
                    {
                        w: [h.snap_qty, h.snap_at, h.snap_id, h.pending]
                        for w, h in self.warehouses.items()
                    },
                    {
                        o: [e.version, e.placed_at, [_line_out(ln) for ln in e.lines]]
                        for o, e in self.orders.items()
                    },
                    [[b, u] for b, u in self.sales.items()],
                    self.holds,
                    self.emitted,
                    self.stock_offset,
                    self.last_at,
                ]
            )
        )

    @classmethod
    def from_bytes(cls, sku: str, raw: bytes) -> SkuState:
        _fmt, whs, orders, sales, holds, emitted, off, last = orjson.loads(raw)
        return cls(
            sku=sku,
            warehouses={
                w: Warehouse(q, at, sid, [(i, a, d) for i, a, d in pend])
                for w, (q, at, sid, pend) in whs.items()
            },
            orders={
                o: OrderEntry(v, pat, tuple(_line_in(ln) for ln in lines))
                for o, (v, pat, lines) in orders.items()
            },
            sales={int(b): int(u) for b, u in sales},
            holds=holds,
            emitted=emitted,
            stock_offset=off,
            last_at=last,
        )

    # -- stock -------------------------------------------------------------
    def apply_stock(self, event: StockEvent, offset: int) -> StockOutcome:
        """Apply a stock event read at source ``offset``."""
        if offset <= self.stock_offset:
            return "replayed"
        self.stock_offset = offset
        self.last_at = max(self.last_at, event.as_of)
        wh = self.warehouses.setdefault(event.warehouse, Warehouse())
        if isinstance(event, StockSnapshot):
            return _apply_snapshot(wh, event)
        return _apply_adjustment(wh, event)

    # -- orders ------------------------------------------------------------
    def apply_order_view(self, view: SkuOrderView, *, bucket_ms: int) -> LineOutcome:
        """Keep the newest view of an order; count its units once for velocity."""
        entry = self.orders.get(view.order_id)
        if entry is not None and view.version <= entry.version:
            return "replayed"
        if entry is None:
            units = sum(ln.placed for ln in view.lines)
            bucket = view.placed_at // bucket_ms
            self.sales[bucket] = self.sales.get(bucket, 0) + units
        self.orders[view.order_id] = OrderEntry(view.version, view.placed_at, view.lines)
        self.last_at = max(self.last_at, view.placed_at)
        self._settle(view.order_id)
        return "applied"

    def reserved(self, warehouses: Iterable[str] | None = None) -> int:
        """Units reserved against the given warehouses (None: all).

        A line without a warehouse counts against every listing (conservative).
        """
        allowed = None if warehouses is None else set(warehouses)
        total = 0
        for entry in self.orders.values():
            for ln in entry.lines:
                if allowed is not None and ln.warehouse is not None and ln.warehouse not in allowed:
                    continue
                total += ln.open + sum(q for q, at in ln.shipped if not self._settled(ln, at))
        return total

    def on_hand(self, warehouses: Iterable[str] | None = None) -> int:
        if warehouses is None:
            return sum(h.on_hand for h in self.warehouses.values())
        return sum(self.warehouses[w].on_hand for w in warehouses if w in self.warehouses)

    def set_hold(self, account: str, units: int) -> Literal["applied", "unchanged"]:
        """Record the units ``account`` holds for a campaign (0: the hold ended).

        Absolute, so a replayed record changes nothing."""
        if self.holds.get(account, 0) == units:
            return "unchanged"
        if units > 0:
            self.holds[account] = units
        else:
            del self.holds[account]
        return "applied"

    def held_by_others(self, account: str) -> int:
        return sum(u for a, u in self.holds.items() if a != account)

    def velocity_per_hour(self, *, bucket_ms: int, window_ms: int) -> float:
        """Units ordered per hour over the window ending at this SKU's newest event."""
        first = (self.last_at - window_ms) // bucket_ms + 1
        units = sum(u for b, u in self.sales.items() if b >= first)
        return units * 3_600_000 / window_ms

    # -- housekeeping --------------------------------------------------------
    def compact(self, *, bucket_ms: int, window_ms: int, retention_ms: int) -> None:
        """Drop what can no longer matter: settled shipments, old sales, old closed orders."""
        for order_id in list(self.orders):
            self._settle(order_id)
            entry = self.orders[order_id]
            if not entry.lines and entry.placed_at < self.last_at - retention_ms:
                del self.orders[order_id]
        first = (self.last_at - window_ms) // bucket_ms + 1
        for b in [b for b in self.sales if b < first]:
            del self.sales[b]

    def _settle(self, order_id: str) -> None:
        """Forget shipped parts a snapshot has counted; close finished orders."""
        entry = self.orders[order_id]
        lines = []
        for ln in entry.lines:
            shipped = tuple(p for p in ln.shipped if not self._settled(ln, p[1]))
            if ln.open or shipped:
                lines.append(LineView(ln.warehouse, ln.placed, ln.open, shipped))
        entry.lines = tuple(lines)

    def _settled(self, line: LineView, shipped_at: int) -> bool:
        if line.warehouse is not None:
            wh = self.warehouses.get(line.warehouse)
            return wh is not None and wh.snap_at >= shipped_at
        return any(h.snap_at >= shipped_at for h in self.warehouses.values())


def _apply_snapshot(wh: Warehouse, ev: StockSnapshot) -> StockOutcome:
    if ev.as_of < wh.snap_at:
        return "stale"
    if ev.as_of == wh.snap_at and ev.event_id == wh.snap_id:
        return "duplicate"
    wh.snap_qty, wh.snap_at, wh.snap_id = ev.on_hand, ev.as_of, ev.event_id
    wh.pending = [p for p in wh.pending if p[1] > ev.as_of]
    return "applied"


def _apply_adjustment(wh: Warehouse, ev: StockAdjusted) -> StockOutcome:
    if ev.as_of <= wh.snap_at:
        return "contained"
    if any(p[0] == ev.event_id for p in wh.pending):
        return "duplicate"
    wh.pending.append((ev.event_id, ev.as_of, ev.delta))
    # Clamped when the adjustment, in time order, would take the count below 0.
    qty = wh.snap_qty
    for eid, _, delta in sorted(wh.pending, key=lambda p: (p[1], p[0])):
        if eid == ev.event_id and qty + delta < 0:
            return "clamped"
        qty = max(0, qty + delta)
    return "applied"


def _line_out(ln: LineView) -> list[object]:
    return [ln.warehouse, ln.placed, ln.open, [list(p) for p in ln.shipped]]


def _line_in(raw: list[object]) -> LineView:
    w, p, o, s = raw
    assert isinstance(s, list)
    return LineView(w, p, o, tuple((q, t) for q, t in s))  # type: ignore[arg-type]

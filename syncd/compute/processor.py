"""The compute stage's work on one batch of records, without Kafka.

Takes consumed records (stock events, order events, order-line views,
catalog records) and the state held for the partitions this process owns,
and returns what must be written, in two waves:

1. ``outputs``: order-line views (repartitioned by SKU), desired quantities,
   dead letters. Written and acknowledged first.
2. ``changelog``: the new state of every order and SKU the batch touched,
   each carrying the source offsets it reflects. Written second, so a state
   record never claims an event whose outputs were lost.

After both waves are acknowledged, the service commits the consumed offsets.
A crash anywhere in between replays records the changelog already reflects;
the per-key replay guards (order ``version``, SKU ``stock_offset``, order-view
``version``) make them no-ops, so every event counts exactly once.

State is held serialised (the changelog bytes) and decoded only for keys a
batch touches: memory per SKU is its changelog record plus a dict slot.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from syncd import contract, records
from syncd.config import Config
from syncd.contract import decode_listing
from syncd.contract.deadletter import dead_letter_headers
from syncd.core import desired, orders
from syncd.core.catalog import Catalog
from syncd.core.events import (
    ListingLinked,
    ListingTombstone,
    ListingUnlinked,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    StockAdjusted,
    StockSnapshot,
)
from syncd.core.keys import account_of
from syncd.core.ledger import SkuState
from syncd.core.orders import OrderState, SkuOrderView
from syncd.errors import InvalidRecord
from syncd.kafka.partitioning import partition_for

log = structlog.get_logger("syncd.compute")


class Record(Protocol):
    """What the processor reads of a consumed record (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Out:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


@dataclass(slots=True)
class _Work:
    """What one batch touches, decoded once and written once."""

    skus: dict[str, tuple[int, SkuState]] = field(default_factory=dict)
    source_ts: dict[str, int] = field(default_factory=dict)
    """SKU -> newest produce time of the records that changed it (for latency)."""
    orders: dict[str, tuple[int, OrderState]] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    outputs: list[Out] = field(default_factory=list)
    changelog: list[Out] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(topic kind, outcome) -> events."""
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(topic, event type, outcome) -> records (``syncd_events_total``)."""


_EVENT_TYPE: dict[type, str] = {
    StockSnapshot: "stock.snapshot",
    StockAdjusted: "stock.adjusted",
    OrderPlaced: "order.placed",
    OrderCancelled: "order.cancelled",
    OrderShipped: "order.shipped",
    ListingLinked: "listing.linked",
    ListingUnlinked: "listing.unlinked",
    ListingTombstone: "listing.tombstone",
}
"""Decoded event class -> its ``type`` in the contract (a record that does not decode:
``unknown``; internal records: ``order_view``, ``hold``)."""


class Processor:
    def __init__(self, cfg: Config, catalog: Catalog, stock_partitions: int) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.stock_partitions = stock_partitions
        self.sku_state: dict[int, dict[str, bytes]] = {}
        """Stock partition -> SKU -> serialised SkuState."""
        self.order_state: dict[int, dict[str, bytes]] = {}
        """Order partition -> order id -> serialised OrderState."""
        self.order_clock: dict[int, int] = {}
        """Order partition -> newest order event time seen (the retention clock)."""
        self._sweep: list[tuple[int, str]] = []
        self._rules = desired.RulesCache(cfg.rule_layers())

    def use_rules(self, cfg: Config) -> None:
        """Take the rule layers of a reloaded configuration (SIGHUP)."""
        self.cfg = cfg
        self._rules = desired.RulesCache(cfg.rule_layers())

    # -- ownership -----------------------------------------------------------
    def owns_sku(self, sku: str) -> bool:
        return partition_for(sku, self.stock_partitions) in self.sku_state

    def adopt(self, kind: str, partition: int, state: dict[str, bytes]) -> None:
        """Take over a restored partition's state (kind: 'sku' or 'order')."""
        (self.sku_state if kind == "sku" else self.order_state)[partition] = state

    def drop(self, kind: str, partition: int) -> None:
        (self.sku_state if kind == "sku" else self.order_state).pop(partition, None)

    # -- one batch -------------------------------------------------------------
    def process(self, records: Iterable[Record], dirty_skus: Iterable[str] = ()) -> BatchResult:
        t = self.cfg.topics
        res = BatchResult()
        work = _Work()
        skus = work.skus
        for rec in records:
            try:
                if rec.topic == t.orders:
                    self._order_event(rec, res, work)
                elif rec.topic == t.stock:
                    self._stock_event(rec, res, work)
                elif rec.topic == t.order_lines:
                    self._order_view(rec, res, work)
                elif rec.topic == t.holds:
                    self._hold(rec, res, work)
                elif rec.topic == t.catalog:
                    self._catalog_check(rec, res)
            except Exception:  # a bug must not block the partition: park the record, say why
                log.exception(
                    "record_failed", topic=rec.topic, partition=rec.partition, offset=rec.offset
                )
                err = InvalidRecord("internal_error", "syncd failed on this record; see its log")
                self._dead_letter(rec, err, res, "internal")
        for sku in dirty_skus:
            if sku not in skus and self.owns_sku(sku):
                p = partition_for(sku, self.stock_partitions)
                skus[sku] = (p, self._load_sku(p, sku))
        for order_id, (q, st) in work.orders.items():
            raw = st.to_bytes()
            self.order_state[q][order_id] = raw
            res.changelog.append(Out(t.order_state, q, order_id.encode(), raw))
        now = int(time.time() * 1000)
        for sku, (p, state) in skus.items():
            self._emit_desired(state, work.source_ts.get(sku), now, res)
            c = self.cfg.compute
            state.compact(bucket_ms=c.bucket_ms, window_ms=c.window_ms, retention_ms=c.retention_ms)
            raw = state.to_bytes()
            if self.sku_state[p].get(sku) != raw:
                self.sku_state[p][sku] = raw
                res.changelog.append(Out(t.sku_state, p, sku.encode(), raw))
        return res

    def _order_event(self, rec: Record, res: BatchResult, work: _Work) -> None:
        try:
            ev = contract.decode_order(
                rec.key, rec.value, max_bytes=self.cfg.compute.max_record_bytes
            )
        except InvalidRecord as e:
            self._dead_letter(rec, e, res, "order")
            return
        q = rec.partition
        hit = work.orders.get(ev.order_id)
        if hit is None:
            raw = self.order_state[q].get(ev.order_id)
            hit = (q, OrderState.from_bytes(raw) if raw is not None else OrderState())
        st, outcome, views = orders.apply(hit[1], ev, rec.offset)
        res.counts["order", outcome] += 1
        res.events[rec.topic, _EVENT_TYPE[type(ev)], outcome] += 1
        self.order_clock[q] = max(self.order_clock.get(q, 0), st.last_at)
        if outcome == "replayed":
            return
        work.orders[ev.order_id] = (q, st)
        for sku, view in views.items():
            p = partition_for(sku, self.stock_partitions)
            res.outputs.append(
                Out(
                    self.cfg.topics.order_lines,
                    p,
                    sku.encode(),
                    view.to_json(),
                    [("syncd.source.timestamp", str(rec.timestamp).encode())],
                )
            )

    def _stock_event(self, rec: Record, res: BatchResult, work: _Work) -> None:
        try:
            ev = contract.decode_stock(
                rec.key, rec.value, max_bytes=self.cfg.compute.max_record_bytes
            )
            expected = partition_for(ev.sku, self.stock_partitions)
            if expected != rec.partition:
                raise InvalidRecord(
                    "wrong_partition",
                    f"SKU {ev.sku!r} hashes to partition {expected} (murmur2, as the Java"
                    f" client's default partitioner) but the record is in {rec.partition};"
                    " per-SKU state needs every event of a SKU in one partition",
                )
        except InvalidRecord as e:
            self._dead_letter(rec, e, res, "stock")
            return
        state = self._touch(work, rec.partition, ev.sku)
        outcome = state.apply_stock(ev, rec.offset)
        res.counts["stock", outcome] += 1
        res.events[rec.topic, _EVENT_TYPE[type(ev)], outcome] += 1
        if outcome != "replayed":
            _newest(work.source_ts, ev.sku, rec.timestamp)
        if outcome == "clamped":
            log.warning(
                "stock_clamped_at_zero",
                sku=ev.sku,
                warehouse=ev.warehouse,
                event_id=ev.event_id,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
            )

    def _order_view(self, rec: Record, res: BatchResult, work: _Work) -> None:
        assert rec.key is not None and rec.value is not None
        sku = rec.key.decode()
        view = SkuOrderView.from_json(rec.value)
        state = self._touch(work, rec.partition, sku)
        outcome = state.apply_order_view(view, bucket_ms=self.cfg.compute.bucket_ms)
        res.counts["order_line", outcome] += 1
        res.events[rec.topic, "order_view", outcome] += 1
        if outcome == "applied":
            ts = next((int(v) for k, v in rec.headers if k == "syncd.source.timestamp"), 0)
            _newest(work.source_ts, sku, ts)

    def _hold(self, rec: Record, res: BatchResult, work: _Work) -> None:
        """A channel account's campaign hold on this SKU (written by the publish stage)."""
        assert rec.value is not None
        hold = records.decode_hold(rec.value)
        state = self._touch(work, rec.partition, hold.sku)
        outcome = state.set_hold(hold.account, hold.held)
        res.counts["hold", outcome] += 1
        res.events[rec.topic, "hold", outcome] += 1
        if outcome == "applied":
            _newest(work.source_ts, state.sku, rec.timestamp)

    def _catalog_check(self, rec: Record, res: BatchResult) -> None:
        """Catalog records are applied by the catalog reader; here only bad ones are parked."""
        try:
            ev = decode_listing(rec.key, rec.value, max_bytes=self.cfg.compute.max_record_bytes)
        except InvalidRecord as e:
            self._dead_letter(rec, e, res, "catalog")
            return
        res.counts["catalog", "applied"] += 1
        res.events[rec.topic, _EVENT_TYPE[type(ev)], "applied"] += 1

    # -- helpers ---------------------------------------------------------------
    def _touch(self, work: _Work, p: int, sku: str) -> SkuState:
        hit = work.skus.get(sku)
        if hit is None:
            hit = (p, self._load_sku(p, sku))
            work.skus[sku] = hit
        return hit[1]

    def _load_sku(self, p: int, sku: str) -> SkuState:
        raw = self.sku_state[p].get(sku)
        return SkuState.from_bytes(sku, raw) if raw is not None else SkuState(sku)

    def _emit_desired(
        self, state: SkuState, source_ts: int | None, now: int, res: BatchResult
    ) -> None:
        if not state.warehouses:
            return  # no stock fact yet: unknown is not zero, so nothing is sent
        listings = self.catalog.listings_for(state.sku)
        live = {lst.key for lst in listings}
        t = self.cfg.topics
        c = self.cfg.compute
        quantities = desired.for_sku(
            state, listings, self._rules, bucket_ms=c.bucket_ms, window_ms=c.window_ms
        )
        for lq in quantities:
            lst = lq.listing
            qty = lq.quantity.sent
            if state.emitted.get(lst.key) == qty:
                continue
            state.emitted[lst.key] = qty
            value = records.encode_desired(
                account=lst.channel,
                listing=lst.listing,
                listing_ref=lst.ref,
                sku=state.sku,
                quantity=qty,
                source_ts=source_ts,
                computed_at=now,
            )
            res.outputs.append(
                Out(t.desired, self._desired_partition(lst.channel), lst.key.encode(), value)
            )
            res.counts["desired", "changed"] += 1
        for key in [k for k in state.emitted if k not in live]:
            del state.emitted[key]
            res.outputs.append(
                Out(t.desired, self._desired_partition(account_of(key)), key.encode(), None)
            )
            res.counts["desired", "unlinked"] += 1

    def _desired_partition(self, account: str) -> int:
        return partition_for(account, self.cfg.topics.desired_partitions)

    def _dead_letter(self, rec: Record, err: InvalidRecord, res: BatchResult, kind: str) -> None:
        log.warning(
            "record_dead_lettered",
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            code=err.code,
            reason=err.reason,
        )
        headers = dead_letter_headers(rec.topic, rec.partition, rec.offset, err.code, err.reason)
        res.outputs.append(Out(self.cfg.topics.dead_letter, 0, rec.key, rec.value, headers))
        res.counts[kind, "dead_lettered"] += 1
        res.events[rec.topic, "unknown", "dead_lettered"] += 1

    def start_sweep(self) -> None:
        """Queue every order key for a retention check (done in slices by sweep_step)."""
        self._sweep = [(q, k) for q, states in self.order_state.items() for k in states]

    def sweep_step(self, retention_ms: int, limit: int) -> list[Out]:
        """Check up to ``limit`` queued orders; forget closed ones older than the retention.

        Returns the changelog tombstones. The clock is the partition's newest order event time.
        """
        out = []
        step, self._sweep = self._sweep[-limit:], self._sweep[:-limit]
        for q, order_id in step:
            raw = self.order_state.get(q, {}).get(order_id)
            if raw is None:
                continue
            if orders.expired(OrderState.from_bytes(raw), self.order_clock.get(q, 0), retention_ms):
                del self.order_state[q][order_id]
                out.append(Out(self.cfg.topics.order_state, q, order_id.encode(), None))
        return out


def _newest(times: dict[str, int], key: str, ts: int) -> None:
    times[key] = max(times.get(key, 0), ts)

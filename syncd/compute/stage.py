"""The compute stage as a running service: Kafka in, Kafka out.

:class:`ComputeStage` is a :class:`~syncd.kafka.stage.KafkaStage` (the shared consumer
lifecycle: clients, rebalance, pause -> restore -> resume, the commit rule, bounded mode,
health probe, metrics) over :class:`~syncd.compute.processor.Processor`:

- one group consumer on the stock, order, order-lines, holds and catalog topics
  (range assignment, so partition ``p`` of the stock and order-lines topics
  land on the same process), offsets committed only after a batch's outputs
  and changelog records are acknowledged (the write order below);
- on every assignment the new partitions are paused, their state restored
  from the changelog topics by the main loop (the rebalance callback itself
  stays short), then resumed;
- a catalog reader (no group) keeps the whole listing table;
- a bounded mode: stop when caught up, or after N input events, so tests and
  the demo drive the real loop without sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from syncd.compute.processor import Out, Processor
from syncd.config import Config
from syncd.contract import decode_listing
from syncd.core.catalog import Catalog
from syncd.errors import InvalidRecord
from syncd.kafka.reading import at_end, read_to_end
from syncd.kafka.stage import KafkaStage
from syncd.obs import metrics
from syncd.obs.health import StageHealth

__all__ = ["ComputeStage"]

log = structlog.get_logger("syncd.compute.stage")

_Offsets = dict[TopicPartition, int]
_Kind = tuple[str, int]
"""What a restore reads: ``("sku", p)`` (``<p>.sku-state``) or ``("order", p)``."""

COMMIT_INTERVAL_S = 0.2
"""Under load the writer commits at most this often; when its queue is empty, at once."""


class ComputeStage(KafkaStage[_Kind]):
    """The compute stage; see the module docstring."""

    name: ClassVar[str] = "compute"

    def __init__(
        self,
        cfg: Config,
        *,
        until_caught_up: bool = False,
        max_events: int | None = None,
        health: StageHealth | None = None,
    ) -> None:
        super().__init__(cfg, until_caught_up=until_caught_up, health=health)
        self.max_events = max_events
        self.catalog = Catalog()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.events = 0
        self.restore_seconds = 0.0
        self.busy_seconds = 0.0
        """Wall time from the first non-empty batch to the end of the last one."""
        self._dirty: set[str] = set()
        self._catalog_ready = asyncio.Event()
        self._catalog_tps: list[TopicPartition] = []
        self._catalog_task: asyncio.Task[None] | None = None
        self.processor: Processor | None = None
        # Batch N is written while batch N+1 is processed; one writer keeps the order
        # outputs -> changelog -> commit per batch, so a crash loses nothing (see processor).
        self._jobs: asyncio.Queue[tuple[list[asyncio.Future[Any]], list[Out], _Offsets]] = (
            asyncio.Queue(2)
        )
        self._writer: asyncio.Task[None] | None = None
        self._uncommitted: _Offsets = {}

    def request_stop(self) -> None:
        """Stop fetching; the batches in hand are written and committed, then the consumer
        leaves the group (:meth:`run` returns)."""
        super().request_stop()
        self._catalog_ready.set()  # a stop need not wait for the catalog

    def use_rules(self, cfg: Config) -> None:
        """Take the rule layers of ``cfg`` (policy, channel policies, SKU overrides; SIGHUP)
        and recompute every owned SKU with them. Runs between batches (one event loop)."""
        self.cfg = cfg
        if self.processor is not None:
            self.processor.use_rules(cfg)
            self._dirty |= {s for s in self.catalog.skus() if self.processor.owns_sku(s)}

    async def run(self) -> Counter[tuple[str, str]]:
        """Run until stopped (or, in a bounded mode, done); returns the outcome counts."""
        try:
            await self.run_stage()
        finally:
            log.info(
                "compute_stopped",
                events=self.events,
                busy_seconds=round(self.busy_seconds, 3),
                restore_seconds=round(self.restore_seconds, 3),
                **_flat(self.counts),
            )
        return self.counts

    # -- what KafkaStage asks ------------------------------------------------------------
    def group_id(self) -> str:
        return self.cfg.kafka.group_id

    def topics(self) -> list[str]:
        t = self.cfg.topics
        return [t.stock, t.orders, t.order_lines, t.holds, t.catalog]

    def restore_key(self, tp: TopicPartition) -> _Kind | None:
        t = self.cfg.topics
        if tp.topic in (t.stock, t.order_lines, t.holds):
            return ("sku", tp.partition)
        if tp.topic == t.orders:
            return ("order", tp.partition)
        return None

    def resume_of(self, key: _Kind) -> list[TopicPartition]:
        t = self.cfg.topics
        kind, p = key
        topics = (t.stock, t.order_lines, t.holds) if kind == "sku" else (t.orders,)
        return [TopicPartition(topic, p) for topic in topics]

    def describe(self, tps: Sequence[TopicPartition]) -> dict[str, Any]:
        return {"partitions": [f"{tp.topic}/{tp.partition}" for tp in tps]}

    def producer_settings(self) -> dict[str, Any]:
        return {
            "acks": "all",
            "linger_ms": 5,
            "max_batch_size": 262144,
            "max_request_size": 4194304,
        }

    async def prepare(self, partitions: Mapping[str, int]) -> None:
        t = self.cfg.topics
        self.processor = Processor(self.cfg, self.catalog, partitions[t.stock])
        self._catalog_tps = [TopicPartition(t.catalog, p) for p in range(partitions[t.catalog])]

    async def opened(self, settings: Mapping[str, Any]) -> None:
        self.catalog_reader = AIOKafkaConsumer(**settings, enable_auto_commit=False)
        await self.catalog_reader.start()
        self._catalog_task = asyncio.create_task(self._read_catalog(), name="catalog-reader")
        self._writer = asyncio.create_task(self._write_jobs(), name="batch-writer")

    async def closing(self, failed: bool) -> None:
        tasks = [t for t in (self._catalog_task, self._writer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def closed(self) -> None:
        await self.catalog_reader.stop()

    async def release(self, revoked: Sequence[TopicPartition]) -> None:
        # Waits for the batch being processed (the lock) and the (at most two) batches being
        # written: tens of milliseconds, so the callback stays short.
        await self.drain()
        assert self.processor is not None
        for tp in revoked:
            kind = self.restore_key(tp)
            if kind is not None:
                self.processor.drop(*kind)

    async def settled(self) -> bool:
        return await self.drain() and not self._dirty

    async def at_end(self) -> bool:
        return await super().at_end() and await at_end(self.catalog_reader, self._catalog_tps)

    # -- the loop ------------------------------------------------------------------------
    async def serve(self) -> None:
        await self._loop()
        await self.drain()

    async def _loop(self) -> None:
        assert self.processor is not None
        await self._catalog_ready.wait()
        next_sweep = time.monotonic() + 60
        first_batch: float | None = None
        while not self.stopping:
            await self.restore_pending()  # the catalog is loaded too
            limit = self.cfg.compute.batch_max_records
            batch = await self.consumer.getmany(timeout_ms=200, max_records=limit)
            records = [r for recs in batch.values() for r in recs]
            dirty = [self._dirty.pop() for _ in range(min(limit, len(self._dirty)))]
            if time.monotonic() > next_sweep:
                next_sweep = time.monotonic() + 60
                self.processor.start_sweep()
            if not records and not dirty:
                async with self.lock:
                    tombstones = self.processor.sweep_step(self.cfg.compute.retention_ms, limit)
                if tombstones:
                    await self._submit([], tombstones, {})
                if self.until_caught_up and await self.done():
                    log.info("caught_up", events=self.events)
                    return
                continue
            if first_batch is None:
                first_batch = time.monotonic()
            async with self.lock:
                res = self.processor.process(records, dirty)
            offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
            await self._submit(res.outputs, res.changelog, offsets)
            self.busy_seconds = time.monotonic() - first_batch
            self.counts.update(res.counts)
            metrics.count_batch(res.events, res.counts)
            internal = (self.cfg.topics.order_lines, self.cfg.topics.holds)
            self.events += sum(1 for r in records if r.topic not in internal)
            if self.max_events is not None and self.events >= self.max_events:
                return

    async def _submit(self, outputs: list[Out], changelog: list[Out], offsets: _Offsets) -> None:
        """Send a batch's outputs now; queue its changelog and commit behind their acks.

        Outputs of later batches may reach Kafka before this batch's changelog: a replay
        after a crash only repeats absolute values. What must hold, and does: a changelog
        record is written only after its batch's outputs are acknowledged, and a commit only
        after its changelog is.
        """
        assert self._writer is not None
        if self._writer.done():  # the writer failed: surface its error here
            self._writer.result()
        sent = await self._send(outputs)
        await self._jobs.put((sent, changelog, offsets))

    async def drain(self) -> bool:
        """Wait until every queued batch is written and committed (or the writer fails)."""
        assert self._writer is not None
        joined = asyncio.ensure_future(self._jobs.join())
        done, _ = await asyncio.wait({joined, self._writer}, return_when=asyncio.FIRST_COMPLETED)
        if joined not in done:
            joined.cancel()
            self._writer.result()  # raises the writer's error
        return True

    async def _write_jobs(self) -> None:
        while True:
            sent, changelog, offsets = await self._jobs.get()
            try:
                if sent:
                    await asyncio.gather(*sent)
                written = await self._send(changelog)
                if written:
                    await asyncio.gather(*written)
                self._uncommitted.update(offsets)
                # Under load, commit at most every 200 ms; when the queue is empty, at once.
                if self.commit_due(COMMIT_INTERVAL_S, idle=self._jobs.empty()):
                    await self.commit(self._uncommitted)
                    self._uncommitted = {}
            finally:
                self._jobs.task_done()

    async def _send(self, outs: Sequence[Out]) -> list[asyncio.Future[Any]]:
        """Hand records to the producer in per-partition batches; returns the ack futures."""
        by_tp: dict[tuple[str, int], list[Out]] = {}
        for o in outs:
            by_tp.setdefault((o.topic, o.partition), []).append(o)
        futures = []
        for (topic, partition), group in by_tp.items():
            batch = self.producer.create_batch()
            for o in group:
                meta = batch.append(
                    key=o.key, value=o.value, timestamp=None, headers=o.headers or []
                )
                if meta is not None:
                    continue
                futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = self.producer.create_batch()
                batch.append(key=o.key, value=o.value, timestamp=None, headers=o.headers or [])
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        return futures

    async def restore_state(self, pending: set[_Kind]) -> None:
        """Restore every pending partition's state from its changelog in one read (the
        partitions are resumed after this returns)."""
        assert self.processor is not None
        t = self.cfg.topics
        changelog = {"sku": t.sku_state, "order": t.order_state}
        kind_of = {changelog[k]: k for k in changelog}
        states: dict[tuple[str, int], dict[str, bytes]] = {kp: {} for kp in pending}
        started = time.monotonic()
        tps = [TopicPartition(changelog[k], p) for k, p in pending]
        async for rec in read_to_end(self.restorer, tps):
            state = states[kind_of[rec.topic], rec.partition]
            key = rec.key.decode() if rec.key is not None else ""
            if rec.value is None:
                state.pop(key, None)
            else:
                state[key] = rec.value
        self.restorer.unsubscribe()
        took = time.monotonic() - started
        self.restore_seconds += took
        metrics.restored("compute", took)
        for (kind, p), state in states.items():
            self.processor.adopt(kind, p, state)
        # Listings may have changed while nobody owned these partitions.
        self._dirty |= {s for s in self.catalog.skus() if self.processor.owns_sku(s)}
        log.info(
            "state_restored",
            partitions=sorted(f"{changelog[k]}/{p}" for k, p in pending),
            keys=sum(len(s) for s in states.values()),
            seconds=round(took, 3),
        )

    async def _read_catalog(self) -> None:
        """Keep the whole listing table; mark the SKUs whose listings change."""
        reader = self.catalog_reader
        reader.assign(self._catalog_tps)
        await reader.seek_to_beginning(*self._catalog_tps)
        ends = await reader.end_offsets(self._catalog_tps)
        max_bytes = self.cfg.compute.max_record_bytes
        while True:
            got = await reader.getmany(timeout_ms=200, max_records=5000)
            for recs in got.values():
                for rec in recs:
                    try:
                        ev = decode_listing(rec.key, rec.value, max_bytes=max_bytes)
                    except InvalidRecord:
                        continue  # the group member owning this partition dead-letters it
                    key = rec.key.decode() if rec.key is not None else ""
                    self._dirty |= self.catalog.apply(key, ev)
            if not self._catalog_ready.is_set():
                positions = [await reader.position(tp) for tp in self._catalog_tps]
                if all(
                    pos >= ends[tp] for pos, tp in zip(positions, self._catalog_tps, strict=True)
                ):
                    log.info("catalog_loaded", listings=len(self.catalog))
                    self._catalog_ready.set()


def _flat(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    return {f"{kind}_{outcome}": n for (kind, outcome), n in sorted(counts.items())}

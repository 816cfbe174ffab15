"""The compute stage as a running service: Kafka in, Kafka out.

Owns the aiokafka clients and the loop around :class:`~syncd.compute.processor.Processor`:

- one group consumer on the stock, order, order-lines and catalog topics
  (range assignment, so partition ``p`` of the stock and order-lines topics
  land on the same process), offsets committed only after a batch's outputs
  and changelog records are acknowledged;
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
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from syncd.compute.processor import Out, Processor
from syncd.config import Config
from syncd.core.catalog import Catalog, decode_listing
from syncd.errors import InvalidRecord
from syncd.kafka.clients import client_settings, ensure_topics
from syncd.kafka.reading import at_end, read_to_end
from syncd.obs import metrics
from syncd.obs.health import StageHealth, watch_kafka

log = structlog.get_logger("syncd.compute.stage")

_Offsets = dict[TopicPartition, OffsetAndMetadata]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Waits for the batch being processed and the (at most two) batches being written:
        # tens of milliseconds, so the callback stays short.
        async with self.svc.lock:
            await self.svc.drain()
            self.svc.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.svc.assign(list(assigned))


class ComputeService:
    def __init__(
        self,
        cfg: Config,
        *,
        until_caught_up: bool = False,
        max_events: int | None = None,
        health: StageHealth | None = None,
    ) -> None:
        self.cfg = cfg
        self.health = health or StageHealth("compute")
        self.until_caught_up = until_caught_up
        self.max_events = max_events
        self.lock = asyncio.Lock()
        self.catalog = Catalog()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.events = 0
        self.restore_seconds = 0.0
        self.busy_seconds = 0.0
        """Wall time from the first non-empty batch to the end of the last one."""
        self._stop = asyncio.Event()
        self._to_restore: set[tuple[str, int]] = set()
        self._dirty: set[str] = set()
        self._catalog_ready = asyncio.Event()
        self._catalog_tps: list[TopicPartition] = []
        self.processor: Processor | None = None
        # Batch N is written while batch N+1 is processed; one writer keeps the order
        # outputs -> changelog -> commit per batch, so a crash loses nothing (see processor).
        self._jobs: asyncio.Queue[tuple[list[asyncio.Future[Any]], list[Out], _Offsets]] = (
            asyncio.Queue(2)
        )
        self._writer: asyncio.Task[None] | None = None
        self._uncommitted: _Offsets = {}
        self._committed_at = 0.0

    def request_stop(self) -> None:
        """Stop fetching; the batches in hand are written and committed, then the consumer
        leaves the group (:meth:`run` returns)."""
        self._stop.set()
        self._catalog_ready.set()  # a stop need not wait for the catalog

    def use_rules(self, cfg: Config) -> None:
        """Take the rule layers of ``cfg`` (policy, channel policies, SKU overrides; SIGHUP)
        and recompute every owned SKU with them. Runs between batches (one event loop)."""
        self.cfg = cfg
        if self.processor is not None:
            self.processor.use_rules(cfg)
            self._dirty |= {s for s in self.catalog.skus() if self.processor.owns_sku(s)}

    # -- rebalance -------------------------------------------------------------
    def _kinds(self, tp: TopicPartition) -> tuple[str, int] | None:
        t = self.cfg.topics
        if tp.topic in (t.stock, t.order_lines, t.holds):
            return ("sku", tp.partition)
        if tp.topic == t.orders:
            return ("order", tp.partition)
        return None

    def assign(self, assigned: Sequence[TopicPartition]) -> None:
        stateful = [tp for tp in assigned if self._kinds(tp) is not None]
        if stateful:
            self.consumer.pause(*stateful)
        for tp in stateful:
            kind = self._kinds(tp)
            assert kind is not None
            self._to_restore.add(kind)
        self.health.assigned = True
        self.health.restoring = self.health.restoring or bool(stateful)
        log.info(
            "partitions_assigned", partitions=[f"{tp.topic}/{tp.partition}" for tp in assigned]
        )

    def revoke(self, revoked: Sequence[TopicPartition]) -> None:
        assert self.processor is not None
        for tp in revoked:
            kind = self._kinds(tp)
            if kind is not None:
                self.processor.drop(*kind)
                self._to_restore.discard(kind)
        self.health.assigned = False
        log.info("partitions_revoked", partitions=[f"{tp.topic}/{tp.partition}" for tp in revoked])

    # -- lifecycle ---------------------------------------------------------------
    async def run(self) -> Counter[tuple[str, str]]:
        cfg = self.cfg
        t = cfg.topics
        counts = await ensure_topics(cfg)
        self.processor = Processor(cfg, self.catalog, counts[t.stock])
        settings = client_settings(cfg.kafka)
        self.producer = AIOKafkaProducer(
            **settings, acks="all", linger_ms=5, max_batch_size=262144, max_request_size=4194304
        )
        self.restorer = AIOKafkaConsumer(**settings, enable_auto_commit=False, fetch_max_wait_ms=50)
        self.catalog_reader = AIOKafkaConsumer(**settings, enable_auto_commit=False)
        self.consumer = AIOKafkaConsumer(
            **settings,
            group_id=cfg.kafka.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            # One fetch is in flight per broker; a long poll delays partitions that just got
            # data (the order-lines hop waits on it twice), so keep it short.
            fetch_max_wait_ms=50,
            # aiokafka prefetches every assigned partition; the default 1 MiB per partition
            # keeps that buffer (and peak RSS) bounded.
        )
        self._catalog_tps = [TopicPartition(t.catalog, p) for p in range(counts[t.catalog])]
        await self.producer.start()
        await self.restorer.start()
        await self.catalog_reader.start()
        catalog_task = asyncio.create_task(self._read_catalog(), name="catalog-reader")
        self._writer = asyncio.create_task(self._write_jobs(), name="batch-writer")
        probe: asyncio.Task[None] | None = None
        metrics.watch(self)  # consumer lag at every scrape
        try:
            self.consumer.subscribe(
                [t.stock, t.orders, t.order_lines, t.holds, t.catalog],
                listener=_Rebalance(self),
            )
            await self.consumer.start()
            probe = asyncio.create_task(watch_kafka(self.health, self.consumer), name="probe")
            await self._loop()
            await self.drain()
        finally:
            metrics.unwatch(self)
            catalog_task.cancel()
            self._writer.cancel()
            tasks = [catalog_task, self._writer]
            if probe is not None:
                probe.cancel()
                tasks.append(probe)
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.consumer.stop()  # leaves the group
            await self.catalog_reader.stop()
            await self.restorer.stop()
            await self.producer.stop()
            log.info(
                "compute_stopped",
                events=self.events,
                busy_seconds=round(self.busy_seconds, 3),
                restore_seconds=round(self.restore_seconds, 3),
                **_flat(self.counts),
            )
        return self.counts

    async def _loop(self) -> None:
        assert self.processor is not None
        await self._catalog_ready.wait()
        next_sweep = time.monotonic() + 60
        first_batch: float | None = None
        while not self._stop.is_set():
            await self._restore_pending()
            self.health.restoring = bool(self._to_restore)  # the catalog is loaded too
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
                if self.until_caught_up and await self.drain() and await self._caught_up():
                    log.info("caught_up", events=self.events)
                    return
                continue
            if first_batch is None:
                first_batch = time.monotonic()
            async with self.lock:
                res = self.processor.process(records, dirty)
            offsets = {tp: OffsetAndMetadata(recs[-1].offset + 1, "") for tp, recs in batch.items()}
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
                if self._jobs.empty() or time.monotonic() - self._committed_at >= 0.2:
                    await self._commit(self._uncommitted)
                    self._uncommitted = {}
                    self._committed_at = time.monotonic()
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

    async def _commit(self, offsets: _Offsets) -> None:
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as e:
            # A rebalance took the partitions; the next owner replays the batch and the
            # changelog's replay guards make that a no-op.
            log.warning("commit_failed", error=type(e).__name__)

    async def _restore_pending(self) -> None:
        """Restore every pending partition's state from its changelog in one read."""
        assert self.processor is not None
        t = self.cfg.topics
        if not self._to_restore:
            return
        pending, self._to_restore = self._to_restore, set()
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
        mine = self.consumer.assignment()
        for (kind, p), state in states.items():
            self.processor.adopt(kind, p, state)
            topics = (t.stock, t.order_lines, t.holds) if kind == "sku" else (t.orders,)
            resume = [TopicPartition(topic, p) for topic in topics]
            self.consumer.resume(*[tp for tp in resume if tp in mine])
        # Listings may have changed while nobody owned these partitions.
        self._dirty |= {s for s in self.catalog.skus() if self.processor.owns_sku(s)}
        log.info(
            "state_restored",
            partitions=sorted(f"{changelog[k]}/{p}" for k, p in pending),
            keys=sum(len(s) for s in states.values()),
            seconds=round(took, 3),
        )

    async def _caught_up(self) -> bool:
        if self._to_restore or self._dirty:
            return False
        return await at_end(self.consumer, self.consumer.assignment()) and await at_end(
            self.catalog_reader, self._catalog_tps
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

"""The publish stage as a running service: desired quantities in, marketplace calls out.

Owns the wiring, the main loop and the routing of desired records (the per-account
sending is :mod:`syncd.publish.pusher`, the pacing and retry rules
:mod:`syncd.publish.limits`, what is written back :mod:`syncd.publish.results`, what is
read back on assignment :mod:`syncd.publish.restore`):

- one group consumer of ``<p>.desired`` in its own group
  ``<kafka.group_id>-publish`` (range assignment, explicit commits); an
  account's records all live in one partition (murmur2 of the account), so
  exactly one process of the group sends to each account and its limiter
  holds for the whole cluster;
- the producer of ``topics.push_results``, ``<p>.acked``, ``topics.holds`` and
  ``topics.actions``, written by :class:`~syncd.publish.results.KafkaResults`;
- the accounts, their pushers and the error table (:mod:`syncd.publish.accounts`;
  SIGHUP reloads the table through :meth:`PublishService.reload_table`);
- one :class:`OffsetTracker` per partition: an offset is committed only when
  every earlier record of its partition is acknowledged, superseded by a
  newer acknowledged quantity, or handed over as a failure;
- on assignment the partitions are paused, their acknowledged quantities
  restored from ``<p>.acked`` and the open manual actions of their accounts
  from ``topics.actions`` (with the newest desired values, see
  docs/reconciliation.md) by the main loop, then resumed; on revocation
  the partitions' pushers are cancelled (a call in flight is simply sent
  again by the next owner: quantities are absolute) and what is resolved is
  committed;
- bounded modes (until caught up, or N records), and a stop that lets queued
  sends finish for ``publish.stop_deadline_s``.

It runs under ``syncd --config FILE run --stage publish`` (:mod:`syncd.cli`).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import OffsetAndMetadata

from syncd.channels.base import (
    Channel,
    TokenStore,
)
from syncd.config import Config
from syncd.errors import ConfigError
from syncd.kafka.clients import client_settings, ensure_topics
from syncd.kafka.partitioning import partition_for
from syncd.kafka.reading import at_end
from syncd.obs import metrics
from syncd.obs.health import StageHealth, watch_kafka
from syncd.publish.accounts import Accounts
from syncd.publish.pusher import AccountPusher
from syncd.publish.restore import Restorer
from syncd.publish.results import KafkaResults
from syncd.publish.routing import Router, Unlinked

__all__ = ["OffsetTracker", "PublishService"]

log = structlog.get_logger("syncd.publish.stage")

MAX_OPEN_OFFSETS = 200_000
"""A partition with this many unresolved records is paused until half of them resolve."""


# -- offsets -----------------------------------------------------------------------


class OffsetTracker:
    """Unresolved offsets of one partition; :meth:`position` is the offset safe to commit."""

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._open: set[int] = set()
        self.next: int | None = None

    def add(self, offset: int) -> None:
        heapq.heappush(self._heap, offset)
        self._open.add(offset)
        self.next = offset + 1

    def done(self, offsets: Iterable[int]) -> None:
        self._open.difference_update(offsets)

    @property
    def open(self) -> int:
        return len(self._open)

    def position(self) -> int | None:
        """The lowest unresolved offset, else one past the newest offset seen."""
        while self._heap and self._heap[0] not in self._open:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self.next


# -- the service -------------------------------------------------------------------


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, svc: PublishService) -> None:
        self.svc = svc

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.svc.lock:  # waits for the intake in flight; pushers are cancelled
            await self.svc.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.svc.assign(list(assigned))


class PublishService:
    """The publish stage as a running service; see the module docstring."""

    def __init__(
        self,
        cfg: Config,
        *,
        until_caught_up: bool = False,
        max_records: int | None = None,
        token_store: TokenStore | None = None,
        health: StageHealth | None = None,
    ) -> None:
        self.cfg = cfg
        self.health = health or StageHealth("publish")
        self.until_caught_up = until_caught_up
        self.max_records = max_records
        self.accounts = Accounts(cfg, token_store)
        self.lock = asyncio.Lock()
        self.counts: Counter[str] = Counter()
        self.records = 0
        self._stop = asyncio.Event()
        self._trackers: dict[int, OffsetTracker] = {}
        self._committed: dict[int, int] = {}
        self._to_restore: set[int] = set()
        self._paused: set[int] = set()
        self._partitions = cfg.topics.desired_partitions
        self._stock_partitions = cfg.topics.input_partitions

    @property
    def channels(self) -> dict[str, Channel]:
        return self.accounts.channels

    @property
    def pushers(self) -> dict[str, AccountPusher]:
        """The running pushers, by account (read by the admin server and the metrics)."""
        return self.accounts.pushers

    @property
    def table_path(self) -> str:
        """The error table file ("": the shipped one); a SIGHUP may change it."""
        return self.accounts.table_path

    @table_path.setter
    def table_path(self, path: str) -> None:
        self.accounts.table_path = path

    def request_stop(self) -> None:
        """Stop fetching and sending: calls in flight may finish for ``stop_deadline_s``,
        then what is acknowledged is committed and the consumer leaves the group."""
        self._stop.set()

    # -- rebalance ----------------------------------------------------------------

    def assign(self, assigned: Sequence[TopicPartition]) -> None:
        mine = [tp for tp in assigned if tp.topic == self.cfg.topics.desired]
        if mine:
            self.consumer.pause(*mine)
        for tp in mine:
            self._trackers[tp.partition] = OffsetTracker()
            self._to_restore.add(tp.partition)
        self.health.assigned = True
        self.health.restoring = self.health.restoring or bool(mine)
        log.info(
            "partitions_assigned",
            topic=self.cfg.topics.desired,
            partitions=sorted(tp.partition for tp in mine),
        )

    async def revoke(self, revoked: Sequence[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.cfg.topics.desired}
        await self.accounts.stop(self.counts, gone)
        await self._commit(only=gone)
        for p in gone:
            self._trackers.pop(p, None)
            self.restore.forget(p)
            self._to_restore.discard(p)
            self._paused.discard(p)
        self.health.assigned = False
        log.info("partitions_revoked", topic=self.cfg.topics.desired, partitions=sorted(gone))

    # -- life cycle ----------------------------------------------------------------

    async def run(self) -> Counter[str]:
        cfg = self.cfg
        t = cfg.topics
        counts = await ensure_topics(cfg)
        self._partitions = counts[t.desired]
        self._stock_partitions = counts[t.holds]
        settings = client_settings(cfg.kafka)
        self.producer = AIOKafkaProducer(**settings, acks="all", linger_ms=2)
        self.restorer = AIOKafkaConsumer(**settings, enable_auto_commit=False, fetch_max_wait_ms=50)
        platforms = {a: ch.platform for a, ch in self.channels.items()}
        self.results = KafkaResults(
            self.producer, t, platforms, self._stock_partitions, self.resolve
        )
        self.restore = Restorer(
            self.restorer, t, self._partitions, self._stock_partitions, self.accounts.reconcile
        )
        self.router = Router(
            self.channels,
            self.accounts.unconfigured,
            self._partitions,
            self._pusher,
            self.resolve,
        )
        self.consumer = AIOKafkaConsumer(
            **settings,
            group_id=f"{cfg.kafka.group_id}-publish",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            heartbeat_interval_ms=1000,
            # One fetch is in flight per broker; a long poll delays partitions that just got
            # data, so keep it short (latency, at ~20 empty fetches/s when idle).
            fetch_max_wait_ms=50,
        )
        await self.producer.start()
        await self.restorer.start()
        failed = True
        probe: asyncio.Task[None] | None = None
        metrics.watch(self)  # consumer lag, queues, parked accounts, actions at every scrape
        try:
            self.consumer.subscribe([t.desired], listener=_Rebalance(self))
            await self.consumer.start()
            probe = asyncio.create_task(watch_kafka(self.health, self.consumer), name="probe")
            log.info(
                "publish_started",
                accounts=sorted(self.channels),
                group=f"{cfg.kafka.group_id}-publish",
            )
            await self._loop()
            failed = False
        finally:
            metrics.unwatch(self)
            if probe is not None:
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)
            drain = cfg.publish.stop_deadline_s if not failed and self._stop.is_set() else 0.0
            await self.accounts.drain(self.counts, drain)
            await self._commit()
            await self.consumer.stop()
            await self.restorer.stop()
            await self.producer.stop()
            await self.accounts.close()
            log.info("publish_stopped", records=self.records, **dict(sorted(self.counts.items())))
        return self.counts

    async def _loop(self) -> None:
        pub = self.cfg.publish
        next_commit = time.monotonic() + pub.commit_interval_ms / 1000
        while not self._stop.is_set():
            for pusher in self.pushers.values():
                err = pusher.error()
                if err is not None:
                    log.error("pusher_failed", account=pusher.account, error=repr(err))
                    raise err
            await self._restore_pending()
            self.health.restoring = bool(self._to_restore)
            self._backpressure()
            batch: Mapping[TopicPartition, Sequence[Any]] = {}
            if self.max_records is not None and self.records >= self.max_records:
                await asyncio.sleep(0.02)
            else:
                limit = pub.batch_max_records
                if self.max_records is not None:
                    limit = min(limit, self.max_records - self.records)
                batch = await self.consumer.getmany(timeout_ms=100, max_records=limit)
            if batch:
                async with self.lock:
                    await self._intake(batch)
            if time.monotonic() >= next_commit:
                next_commit = time.monotonic() + pub.commit_interval_ms / 1000
                await self._commit()
            if (self.until_caught_up or self.max_records is not None) and await self._done():
                await self._commit()
                log.info("publish_caught_up", records=self.records)
                return

    def _backpressure(self) -> None:
        desired = self.cfg.topics.desired
        for p, tracker in self._trackers.items():
            if p in self._to_restore:
                continue
            tp = TopicPartition(desired, p)
            if p not in self._paused and tracker.open >= MAX_OPEN_OFFSETS:
                self._paused.add(p)
                self.consumer.pause(tp)
            elif p in self._paused and tracker.open < MAX_OPEN_OFFSETS // 2:
                self._paused.discard(p)
                self.consumer.resume(tp)

    async def _intake(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        unlinked: Unlinked = []
        for tp, recs in batch.items():
            tracker = self._trackers.get(tp.partition)
            if tracker is None:
                continue
            for rec in recs:
                tracker.add(rec.offset)
                self.records += 1
                self.counts[self.router.route(tp.partition, rec, unlinked)] += 1
        if unlinked:
            await self.results.unlinked(unlinked)

    def _pusher(self, account: str, p: int) -> AccountPusher:
        retry_pass_s = self.cfg.publish.retry_pass_s  # as reloaded
        return self.accounts.pusher(account, p, self.results, self.restore, retry_pass_s)

    # -- offsets and the error table -------------------------------------------------

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        tracker = self._trackers.get(partition)
        if tracker is not None:
            tracker.done(offsets)

    def reload_table(self) -> ConfigError | None:
        """Re-read the error table (for SIGHUP): a broken file keeps the current table and
        returns why."""
        return self.accounts.reload_table()

    # -- commit and restore ------------------------------------------------------------

    async def _commit(self, only: Iterable[int] | None = None) -> None:
        t = self.cfg.topics
        wanted = set(self._trackers) if only is None else set(only)
        offsets = {}
        for p in wanted:
            tracker = self._trackers.get(p)
            pos = tracker.position() if tracker is not None else None
            if pos is not None and pos > self._committed.get(p, -1):
                offsets[TopicPartition(t.desired, p)] = OffsetAndMetadata(pos, "")
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, AioKafkaError) as e:
            # Rebalance or broker trouble: the offsets stay unresolved-safe; retried next time.
            log.warning("commit_failed", topic=t.desired, error=type(e).__name__)
            return
        for tp, om in offsets.items():
            self._committed[tp.partition] = om.offset

    async def _restore_pending(self) -> None:
        """Read back what newly assigned partitions need (:mod:`syncd.publish.restore`),
        start the pushers of accounts with open actions, then resume the partitions."""
        if not self._to_restore:
            return
        t = self.cfg.topics
        pending, self._to_restore = self._to_restore, set()
        started = time.monotonic()
        restored = await self.restore.read_acked(pending)
        self.results.restored_holds(await self.restore.read_holds())
        mine = [
            a
            for a in self.channels
            if partition_for(a, self._partitions) in pending and a not in self.pushers
        ]
        accounts, listings = await self.restore.read_actions(mine)
        for account in accounts:
            self._pusher(account, partition_for(account, self._partitions))
        log.info("actions_restored", topic=t.actions, accounts=accounts, listings=listings)
        assigned = self.consumer.assignment()
        resume = [TopicPartition(t.desired, p) for p in pending]
        self.consumer.resume(*[tp for tp in resume if tp in assigned])
        took = time.monotonic() - started
        metrics.restored("publish", took)
        log.info(
            "acked_restored",
            topic=t.acked,
            partitions=sorted(pending),
            listings=sum(len(r) for r in restored.values()),
            seconds=round(took, 3),
        )

    async def _done(self) -> bool:
        """Bounded modes: everything read so far (or to the end) is resolved and sent."""
        if self._to_restore or any(not p.idle for p in self.pushers.values()):
            return False
        if any(tr.open for tr in self._trackers.values()):
            return False
        if self.max_records is not None and self.records >= self.max_records:
            return True
        if not self.until_caught_up:
            return False
        return await at_end(self.consumer, self.consumer.assignment())

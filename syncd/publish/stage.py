"""The publish stage as a running service: desired quantities in, marketplace calls out.

:class:`PublishService` is a :class:`~syncd.kafka.stage.KafkaStage` (the shared consumer
lifecycle: clients, rebalance, pause -> restore -> resume, the commit rule, bounded mode,
health probe, metrics). It owns the wiring, the main loop and the routing of desired
records (the per-account
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
- one :class:`~syncd.kafka.offsets.OffsetTracker` per partition: an offset is
  committed only when every earlier record of its partition is acknowledged,
  superseded by a newer acknowledged quantity, or handed over as a failure;
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
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from aiokafka import TopicPartition

from syncd.channels.base import Channel, TokenStore
from syncd.config import Config
from syncd.errors import ConfigError
from syncd.kafka.offsets import MAX_OPEN_OFFSETS, OffsetTracker
from syncd.kafka.partitioning import partition_for
from syncd.kafka.stage import KafkaStage
from syncd.obs import metrics
from syncd.obs.health import StageHealth
from syncd.publish.accounts import Accounts
from syncd.publish.pusher import AccountPusher
from syncd.publish.restore import Restorer
from syncd.publish.results import KafkaResults
from syncd.publish.routing import Router, Unlinked

__all__ = ["PublishService"]

log = structlog.get_logger("syncd.publish.stage")


class PublishService(KafkaStage[int]):
    """The publish stage as a running service; see the module docstring. The unit of
    restore is a partition number of ``<p>.desired`` (and of ``<p>.acked``)."""

    name: ClassVar[str] = "publish"

    def __init__(
        self,
        cfg: Config,
        *,
        until_caught_up: bool = False,
        max_records: int | None = None,
        token_store: TokenStore | None = None,
        health: StageHealth | None = None,
    ) -> None:
        super().__init__(cfg, until_caught_up=until_caught_up, health=health)
        self.max_records = max_records
        self.accounts = Accounts(cfg, token_store)
        self.counts: Counter[str] = Counter()
        self.records = 0
        self._trackers: dict[int, OffsetTracker] = {}
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
        super().request_stop()

    async def run(self) -> Counter[str]:
        """Run until stopped (or, in a bounded mode, done); returns the outcome counts."""
        try:
            await self.run_stage()
        finally:
            log.info("publish_stopped", records=self.records, **dict(sorted(self.counts.items())))
        return self.counts

    # -- what KafkaStage asks ------------------------------------------------------------

    def group_id(self) -> str:
        return f"{self.cfg.kafka.group_id}-publish"

    def topics(self) -> list[str]:
        return [self.cfg.topics.desired]

    def restore_key(self, tp: TopicPartition) -> int | None:
        return tp.partition if tp.topic == self.cfg.topics.desired else None

    def resume_of(self, key: int) -> list[TopicPartition]:
        return [TopicPartition(self.cfg.topics.desired, key)]

    def describe(self, tps: Sequence[TopicPartition]) -> dict[str, Any]:
        desired = self.cfg.topics.desired
        return {"topic": desired, "partitions": sorted(self._partitions_of(tps))}

    def producer_settings(self) -> dict[str, Any]:
        return {"acks": "all", "linger_ms": 2}

    def consumer_settings(self) -> dict[str, Any]:
        return {**super().consumer_settings(), "heartbeat_interval_ms": 1000}

    async def prepare(self, partitions: Mapping[str, int]) -> None:
        t = self.cfg.topics
        self._partitions = partitions[t.desired]
        self._stock_partitions = partitions[t.holds]

    async def opened(self, settings: Mapping[str, Any]) -> None:
        t = self.cfg.topics
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

    async def closing(self, failed: bool) -> None:
        drain = self.cfg.publish.stop_deadline_s if not failed and self.stopping else 0.0
        await self.accounts.drain(self.counts, drain)
        await self._commit()

    async def closed(self) -> None:
        await self.accounts.close()

    def taken(self, held: Sequence[TopicPartition]) -> None:
        for p in self._partitions_of(held):
            self._trackers[p] = OffsetTracker()

    async def release(self, revoked: Sequence[TopicPartition]) -> None:
        # Pushers are cancelled (a call in flight is sent again by the next owner:
        # quantities are absolute); what is resolved is committed.
        gone = self._partitions_of(revoked)
        await self.accounts.stop(self.counts, gone)
        await self._commit(only=gone)
        for p in gone:
            self._trackers.pop(p, None)
            self.restore.forget(p)
            self._paused.discard(p)

    async def settled(self) -> bool:
        """Everything read so far is resolved and sent."""
        if any(not p.idle for p in self.pushers.values()):
            return False
        return not any(tr.open for tr in self._trackers.values())

    def limit_reached(self) -> bool:
        return self.max_records is not None and self.records >= self.max_records

    def _partitions_of(self, tps: Iterable[TopicPartition]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self.cfg.topics.desired}

    # -- the loop ------------------------------------------------------------------------

    async def serve(self) -> None:
        log.info("publish_started", accounts=sorted(self.channels), group=self.group_id())
        pub = self.cfg.publish
        while not self.stopping:
            for pusher in self.pushers.values():
                err = pusher.error()
                if err is not None:
                    log.error("pusher_failed", account=pusher.account, error=repr(err))
                    raise err
            await self.restore_pending()
            self._backpressure()
            batch: Mapping[TopicPartition, Sequence[Any]] = {}
            if self.limit_reached():
                await asyncio.sleep(0.02)
            else:
                limit = pub.batch_max_records
                if self.max_records is not None:
                    limit = min(limit, self.max_records - self.records)
                batch = await self.consumer.getmany(timeout_ms=100, max_records=limit)
            if batch:
                async with self.lock:
                    await self._intake(batch)
            if self.commit_due(pub.commit_interval_ms / 1000):
                await self._commit()
            if (self.until_caught_up or self.max_records is not None) and await self.done():
                await self._commit()
                log.info("publish_caught_up", records=self.records)
                return

    def _backpressure(self) -> None:
        desired = self.cfg.topics.desired
        for p, tracker in self._trackers.items():
            if self.restoring_key(p):
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
        """Commit each partition's :meth:`OffsetTracker.position` (KafkaStage's rule)."""
        desired = self.cfg.topics.desired
        wanted = set(self._trackers) if only is None else set(only)
        offsets = {}
        for p in wanted:
            tracker = self._trackers.get(p)
            pos = tracker.position() if tracker is not None else None
            if pos is not None:
                offsets[TopicPartition(desired, p)] = pos
        await self.commit(offsets)

    async def restore_state(self, pending: set[int]) -> None:
        """Read back what newly assigned partitions need (:mod:`syncd.publish.restore`) and
        start the pushers of accounts with open actions; KafkaStage resumes the partitions
        after this returns."""
        t = self.cfg.topics
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
        took = time.monotonic() - started
        metrics.restored("publish", took)
        log.info(
            "acked_restored",
            topic=t.acked,
            partitions=sorted(pending),
            listings=sum(len(r) for r in restored.values()),
            seconds=round(took, 3),
        )

"""The publish stage as a running service: desired quantities in, marketplace calls out.

Owns the Kafka side of publishing (the per-account sending is
:mod:`syncd.publish.pusher`, the pacing and retry rules :mod:`syncd.publish.limits`):

- one group consumer of ``<p>.desired`` in its own group
  ``<kafka.group_id>-publish`` (range assignment, explicit commits); an
  account's records all live in one partition (murmur2 of the account), so
  exactly one process of the group sends to each account and its limiter
  holds for the whole cluster;
- the producer of ``topics.push_results`` (every attempt), of the
  compacted ``<p>.acked`` (the newest acknowledged quantity per listing, in
  the same partition number as the listing's desired records) and of the
  compacted ``topics.actions`` (manual actions, key ``<account>/<action>``,
  built by :mod:`syncd.core.actions`);
- the error table (``[publish] error_table``), loaded at start (a broken
  table stops the stage) and swapped by :meth:`PublishService.reload_table`;
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
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import OffsetAndMetadata

from syncd.channels.base import (
    Channel,
    JsonFileTokenStore,
    MemoryTokenStore,
    TokenStore,
    make_channel,
)
from syncd.config import Config
from syncd.config.error_table import load, load_or_keep
from syncd.core.errortable import ErrorTable
from syncd.core.reconcile import Settings
from syncd.errors import ConfigError
from syncd.kafka import bus
from syncd.obs import metrics
from syncd.obs.health import StageHealth, watch_kafka
from syncd.publish.limits import AccountLimits, Limiter, make_limiter
from syncd.publish.pusher import AccountPusher, Attempt, push_result
from syncd.records import (
    Desired,
    Hold,
    decode_acked,
    decode_action,
    decode_desired,
    decode_hold,
    encode_acked,
    encode_action,
    encode_hold,
    encode_push_result,
)

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
        pub = cfg.publish
        if token_store is None:
            token_store = (
                JsonFileTokenStore(pub.token_store) if pub.token_store else MemoryTokenStore()
            )
        self.table_path = pub.error_table
        self.table: ErrorTable = load(self.table_path)
        self.lock = asyncio.Lock()
        self.counts: Counter[str] = Counter()
        self.records = 0
        self.channels: dict[str, Channel] = {}
        self.limits: dict[str, AccountLimits] = {}
        self.limiters: dict[str, Limiter] = {}
        self.pushers: dict[str, AccountPusher] = {}
        self.reconcile: dict[str, Settings] = {}
        self.unconfigured: set[str] = set()
        for account, ch in cfg.channels.items():
            if not ch.settings:
                self.unconfigured.add(account)  # policy only: nothing to publish to
                log.warning("publish_account_unconfigured", account=account)
                continue
            self.limits[account] = AccountLimits.from_settings(
                account, ch.platform, ch.settings, pub
            )
            self.channels[account] = make_channel(ch.platform, account, ch.settings, token_store)
            self.limiters[account] = make_limiter(self.limits[account])
            self.reconcile[account] = Settings.build(
                account,
                ch.platform,
                ch.settings,
                self.limits[account].rate_per_s,
                interval_s=pub.reconcile_interval_s,
                share=pub.reconcile_share,
                persist_s=pub.drift_persist_s,
            )
        self._stop = asyncio.Event()
        self._trackers: dict[int, OffsetTracker] = {}
        self._committed: dict[int, int] = {}
        self._to_restore: set[int] = set()
        self._acked: dict[int, dict[str, int]] = {}
        self._actions: dict[str, list[dict[str, Any]]] = {}
        """Open action records per account, restored on assignment (taken by the pusher)."""
        self._desired: dict[str, dict[str, Desired]] = {}
        """Newest desired value per listing, per account, restored on assignment."""
        self._paused: set[int] = set()
        self._warned: set[str] = set()
        self._partitions = cfg.topics.desired_partitions
        self._stock_partitions = cfg.topics.input_partitions
        self._holds: dict[tuple[str, str], int] = {}
        """(account, SKU) -> the campaign hold last written to ``topics.holds``."""
        self._listing_holds: dict[str, int] = {}
        """Listing key -> units held, as restored (each new pusher takes its own)."""

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
        stopping = [p for p in self.pushers.values() if p.partition in gone]
        await asyncio.gather(*(p.stop() for p in stopping))
        for p in stopping:
            self.counts.update(p.counts)
            del self.pushers[p.account]
        await self._commit(only=gone)
        for p in gone:
            self._trackers.pop(p, None)
            self._acked.pop(p, None)
            self._to_restore.discard(p)
            self._paused.discard(p)
        self.health.assigned = False
        log.info("partitions_revoked", topic=self.cfg.topics.desired, partitions=sorted(gone))

    # -- life cycle ----------------------------------------------------------------

    async def run(self) -> Counter[str]:
        cfg = self.cfg
        t = cfg.topics
        counts = await bus.ensure_topics(cfg)
        self._partitions = counts[t.desired]
        self._stock_partitions = counts[t.holds]
        settings = bus.client_settings(cfg.kafka)
        self.producer = AIOKafkaProducer(**settings, acks="all", linger_ms=2)
        self.restorer = AIOKafkaConsumer(**settings, enable_auto_commit=False, fetch_max_wait_ms=50)
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
            if drain:
                self._hold_queued()
            await asyncio.gather(*(p.stop(drain) for p in self.pushers.values()))
            for p in self.pushers.values():
                self.counts.update(p.counts)
            self.pushers.clear()
            await self._commit()
            await self.consumer.stop()
            await self.restorer.stop()
            await self.producer.stop()
            for ch in self.channels.values():
                await ch.close()
            log.info("publish_stopped", records=self.records, **dict(sorted(self.counts.items())))
        return self.counts

    def _hold_queued(self) -> None:
        """On stop, only calls in flight go on: queued updates are dropped unsent, so their
        offsets stay uncommitted and the next owner sends them."""
        held = 0
        for pusher in self.pushers.values():
            held += pusher.drop_queued()
        in_flight = sum(len(p.inflight) for p in self.pushers.values())
        deadline = self.cfg.publish.stop_deadline_s
        log.info("publish_stopping", in_flight=in_flight, held_back=held, deadline_s=deadline)

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
        unlinked: list[tuple[int, str, list[int]]] = []
        for tp, recs in batch.items():
            tracker = self._trackers.get(tp.partition)
            if tracker is None:
                continue
            for rec in recs:
                tracker.add(rec.offset)
                self.records += 1
                self.counts[self._one(tp.partition, rec, unlinked)] += 1
        if unlinked:
            t = self.cfg.topics
            futures = [
                await self.producer.send(t.acked, None, key=key.encode(), partition=p)
                for p, key, _ in unlinked
            ]
            await asyncio.gather(*futures)
            for p, _, offsets in unlinked:
                self.resolve(p, offsets)

    def _one(self, p: int, rec: Any, unlinked: list[tuple[int, str, list[int]]]) -> str:
        """Route one desired record; returns the outcome counted in ``counts``."""
        key = rec.key.decode(errors="replace") if rec.key is not None else ""
        try:
            d = decode_desired(rec.key, rec.value) if rec.value is not None else None
        except ValueError as e:
            log.warning(
                "desired_record_invalid",
                topic=rec.topic,
                partition=p,
                offset=rec.offset,
                reason=str(e),
            )
            self.resolve(p, [rec.offset])
            return "invalid"
        account = d.key.split("/", 1)[0] if d is not None else key.split("/", 1)[0]
        if account not in self.channels:
            self.resolve(p, [rec.offset])
            outcome = "unconfigured_account" if account in self.unconfigured else "unknown_account"
            if account not in self._warned:
                self._warned.add(account)
                log.warning(
                    "desired_record_skipped",
                    account=account,
                    reason=outcome,
                    topic=rec.topic,
                    partition=p,
                    offset=rec.offset,
                )
            return outcome
        if bus.partition_for(account, self._partitions) != p:
            log.warning(
                "desired_record_wrong_partition",
                account=account,
                topic=rec.topic,
                partition=p,
                offset=rec.offset,
            )
            self.resolve(p, [rec.offset])
            return "wrong_partition"
        pusher = self._pusher(account, p)
        if d is None:
            unlinked.append((p, key, [*pusher.unlink(key), rec.offset]))
            return "unlinked"
        d.offsets.append(rec.offset)
        pusher.offer(d)
        return "desired"

    def _pusher(self, account: str, p: int) -> AccountPusher:
        pusher = self.pushers.get(account)
        if pusher is None:
            prefix = account + "/"
            acked = {k: q for k, q in self._acked.get(p, {}).items() if k.startswith(prefix)}
            pusher = AccountPusher(
                account,
                p,
                self.channels[account],
                self.limiters[account],
                self.limits[account],
                None,  # the table's rows give the retry bounds
                self,
                acked=acked,
                retry_pass_s=self.cfg.publish.retry_pass_s,
                table=self.table,
                actions=self.write_actions,
                reconcile=self.reconcile[account],
            )
            pusher.restore(self._actions.pop(account, []), self._desired.pop(account, {}))
            pusher.campaign_holds.update(
                (k, q) for k, q in self._listing_holds.items() if k.startswith(prefix)
            )
            pusher.start()
            self.pushers[account] = pusher
        return pusher

    # -- the sink ------------------------------------------------------------------

    async def record(
        self, account: str, partition: int, attempts: Sequence[Attempt]
    ) -> Awaitable[None]:
        metrics.record_call(account, self.channels[account].platform, attempts)
        t = self.cfg.topics
        futures = []
        for a in attempts:
            key = a.desired.key.encode()
            value = encode_push_result(push_result(account, a))
            futures.append(await self.producer.send(t.push_results, value, key=key))
            if a.write_acked:
                acked = encode_acked(a.desired.quantity, a.at_ms)
                futures.append(
                    await self.producer.send(t.acked, acked, key=key, partition=partition)
                )
            if a.held is not None and self._holds.get((account, a.desired.sku)) != a.held:
                futures.append(await self._send_hold(account, a))
        return _delivered(futures)

    async def _send_hold(self, account: str, a: Attempt) -> Awaitable[Any]:
        """Hand a campaign hold (or its end) to the compute stage: ``topics.holds``, in the
        SKU's stock partition, keyed (and compacted) by account and SKU."""
        assert a.held is not None
        h = Hold(account, a.desired.sku, a.desired.listing_ref, a.held, a.at_ms)
        self._holds[account, h.sku] = a.held
        log.info(
            "campaign_hold", held=a.held, account=account, sku=h.sku, listing_ref=h.listing_ref
        )
        sent: Awaitable[Any] = await self.producer.send(
            self.cfg.topics.holds,
            encode_hold(h),
            key=h.key.encode(),
            partition=bus.partition_for(h.sku, self._stock_partitions),
        )
        return sent

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        tracker = self._trackers.get(partition)
        if tracker is not None:
            tracker.done(offsets)

    async def write_actions(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write manual-action records to ``topics.actions`` (compacted by action id).

        A failed write is logged, not raised: the next change of the action writes it
        again in full.
        """
        t = self.cfg.topics
        try:
            futures = [
                await self.producer.send(t.actions, encode_action(value), key=key.encode())
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except AioKafkaError as e:
            log.warning("action_write_failed", topic=t.actions, error=type(e).__name__)

    def reload_table(self) -> ConfigError | None:
        """Re-read the error table (for SIGHUP): a broken file keeps the current table and
        returns why."""
        table, error = load_or_keep(self.table_path, self.table)
        if error is not None:
            log.error(
                "error_table_reload_failed", path=self.table_path or "shipped", error=str(error)
            )
            return error
        self.table = table
        for pusher in self.pushers.values():
            pusher.use_table(table)
        log.info("error_table_reloaded", path=self.table_path or "shipped", rows=len(table.rows))
        return None

    # -- offsets and restore -----------------------------------------------------------

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
        """Read the acknowledged quantities of newly assigned partitions, then resume them."""
        if not self._to_restore:
            return
        t = self.cfg.topics
        pending, self._to_restore = self._to_restore, set()
        restored: dict[int, dict[str, int]] = {p: {} for p in pending}
        started = time.monotonic()
        tps = [TopicPartition(t.acked, p) for p in sorted(pending)]
        async for rec in bus.read_to_end(self.restorer, tps):
            key = rec.key.decode(errors="replace") if rec.key is not None else ""
            if rec.value is None:
                restored[rec.partition].pop(key, None)
                continue
            try:
                restored[rec.partition][key] = decode_acked(rec.value).quantity
            except ValueError:
                continue
        self.restorer.unsubscribe()
        self._acked.update(restored)
        await self._restore_holds()
        await self._restore_actions(pending)
        mine = self.consumer.assignment()
        resume = [TopicPartition(t.desired, p) for p in pending]
        self.consumer.resume(*[tp for tp in resume if tp in mine])
        took = time.monotonic() - started
        metrics.restored("publish", took)
        log.info(
            "acked_restored",
            topic=t.acked,
            partitions=sorted(pending),
            listings=sum(len(r) for r in restored.values()),
            seconds=round(took, 3),
        )

    async def _restore_holds(self) -> None:
        """Read the campaign holds this stage wrote (compacted ``topics.holds``), so a
        restarted or new owner of an account still sees a hold end."""
        t = self.cfg.topics
        n = self._stock_partitions
        self._holds.clear()
        async for rec in bus.read_to_end(
            self.restorer, [TopicPartition(t.holds, p) for p in range(n)]
        ):
            if rec.value is not None:
                h = decode_hold(rec.value)
                self._holds[h.account, h.sku] = h.held
                if h.held:
                    self._listing_holds[h.listing_key] = h.held
                else:
                    self._listing_holds.pop(h.listing_key, None)
        self.restorer.unsubscribe()

    async def _restore_actions(self, partitions: set[int]) -> None:
        """The open actions of the accounts in ``partitions`` (from the compacted
        ``topics.actions``) and, when an account has one or reconciliation is on, the
        newest desired value of its listings; the pushers of accounts with open actions
        start now (a parked account probes although no new record comes)."""
        t = self.cfg.topics
        mine = {
            a
            for a in self.channels
            if bus.partition_for(a, self._partitions) in partitions and a not in self.pushers
        }
        for a in mine:  # anything left from an earlier assignment is stale
            self._actions.pop(a, None)
            self._desired.pop(a, None)
        latest: dict[str, dict[str, Any]] = {}
        async for rec in bus.read_to_end(self.restorer, [TopicPartition(t.actions, 0)]):
            key = rec.key.decode(errors="replace") if rec.key is not None else ""
            try:
                value = decode_action(rec.value) if rec.value is not None else None
            except ValueError:
                continue
            if value is not None and value.get("account") in mine:
                latest[key] = value
            else:
                latest.pop(key, None)
        for value in latest.values():
            if value.get("state") != "resolved":
                self._actions.setdefault(str(value["account"]), []).append(value)
        wanted = set(self._actions)
        if any(self.reconcile[a].interval_s > 0 for a in mine):
            wanted = mine
        found = await self._read_desired(wanted) if wanted else {}
        for key, d in found.items():
            if d is not None:
                self._desired.setdefault(key.split("/", 1)[0], {})[key] = d
        restored = sorted(self._actions)
        for account in restored:
            self._pusher(account, bus.partition_for(account, self._partitions))
        log.info("actions_restored", topic=t.actions, accounts=restored, listings=len(found))

    async def _read_desired(self, accounts: set[str]) -> dict[str, Desired | None]:
        """The newest desired value of every listing of ``accounts`` (None: unlinked)."""
        reads = {bus.partition_for(a, self._partitions) for a in accounts}
        tps = [TopicPartition(self.cfg.topics.desired, p) for p in sorted(reads)]
        found: dict[str, Desired | None] = {}
        async for rec in bus.read_to_end(self.restorer, tps):
            key = rec.key.decode(errors="replace") if rec.key is not None else ""
            if key.split("/", 1)[0] in accounts:
                try:
                    found[key] = decode_desired(rec.key, rec.value) if rec.value else None
                except ValueError:
                    continue
        self.restorer.unsubscribe()
        return found

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
        return await bus.at_end(self.consumer, self.consumer.assignment())


async def _delivered(futures: Sequence[Awaitable[Any]]) -> None:
    await asyncio.gather(*futures)

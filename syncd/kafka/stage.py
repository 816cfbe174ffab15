"""One consumer lifecycle for both stages: :class:`KafkaStage`.

The compute and publish stages are each a group consumer with a producer, a
restorer (a group-less consumer that reads changelogs to their end) and the
same life around them, written once here:

- **clients**: the topics exist (:func:`~syncd.kafka.clients.ensure_topics`),
  then a producer, a restorer and one group consumer with range assignment
  (co-partitioned topics land on the same process), explicit commits and a
  short fetch wait;
- **rebalance**: the listener hands revoked partitions to the stage under
  its :attr:`~KafkaStage.lock` (the batch or intake in flight finishes first),
  and assigned ones to :meth:`~KafkaStage.assign`, which only pauses those that
  need state and notes them: the callback never waits on I/O;
- **pause -> restore -> resume**: the stage's main loop calls
  :meth:`~KafkaStage.restore_pending`, which restores every noted key in one
  read (the stage's :meth:`~KafkaStage.restore_state`) and resumes the partitions it
  freed that are still assigned;
- **the commit rule** (:meth:`~KafkaStage.commit`): a stage commits only offsets
  whose records are done with (compute: outputs and changelog acknowledged;
  publish: every earlier record resolved), never an offset at or below the one
  it last committed; a failed commit is logged and left to the next one (see
  docs/architecture.md, "The commit rule");
- **bounded mode** (:meth:`~KafkaStage.done`): stop when the stage's work is
  settled and the consumer (and any other source) is at the end;
- a health probe (broker metadata every few seconds) and the metrics watch
  (consumer lag at every scrape) for as long as :meth:`~KafkaStage.run_stage` runs.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import OffsetAndMetadata

from syncd.config import Config
from syncd.kafka.clients import client_settings, ensure_topics
from syncd.kafka.reading import at_end
from syncd.obs import metrics
from syncd.obs.health import StageHealth, watch_kafka

__all__ = ["COMMIT_ERRORS", "KafkaStage"]

log = structlog.get_logger("syncd.kafka.stage")

K = TypeVar("K", bound=Hashable)

COMMIT_ERRORS: tuple[type[Exception], ...] = (AioKafkaError,)
"""What a failed commit may raise and the stage survives: every aiokafka error, which
includes ``CommitFailedError`` (the group rebalanced) and ``IllegalStateError`` (the
partition is no longer assigned). aiokafka already retries the retriable ones inside
``commit``; see docs/architecture.md for why the rest are logged, not raised."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: KafkaStage[Any]) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.stage.lock:  # waits for the batch or intake in flight
            await self.stage.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.stage.assign(list(assigned))


class KafkaStage(abc.ABC, Generic[K]):
    """The lifecycle of a stage; a subclass says what it reads, restores and does.

    ``K`` is the unit of restore: the key :meth:`restore_key` gives a partition that
    needs state before its records may be processed.
    """

    name: ClassVar[str]
    """``compute`` or ``publish``: the health and metrics label."""

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    restorer: AIOKafkaConsumer

    def __init__(
        self, cfg: Config, *, until_caught_up: bool = False, health: StageHealth | None = None
    ) -> None:
        self.cfg = cfg
        self.health = health or StageHealth(self.name)
        self.until_caught_up = until_caught_up
        self.lock = asyncio.Lock()
        """Held by the main loop while it works on a batch, and by the revoke callback."""
        self._stop = asyncio.Event()
        self._to_restore: set[K] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._committed_at = float("-inf")  # never

    # -- what a stage says about itself ------------------------------------------------

    @abc.abstractmethod
    def group_id(self) -> str:
        """The consumer group of this stage."""

    @abc.abstractmethod
    def topics(self) -> list[str]:
        """The topics the group consumer subscribes to."""

    @abc.abstractmethod
    def restore_key(self, tp: TopicPartition) -> K | None:
        """What must be restored before ``tp``'s records are processed (None: nothing)."""

    @abc.abstractmethod
    def resume_of(self, key: K) -> list[TopicPartition]:
        """The input partitions a restored ``key`` frees."""

    @abc.abstractmethod
    async def restore_state(self, pending: set[K]) -> None:
        """Read the state of every key in ``pending`` (with :attr:`restorer`) and take it."""

    @abc.abstractmethod
    def describe(self, tps: Sequence[TopicPartition]) -> dict[str, Any]:
        """Log fields naming ``tps`` (``partitions_assigned`` / ``partitions_revoked``)."""

    @abc.abstractmethod
    async def serve(self) -> None:
        """The main loop: returns on stop, in bounded mode when done, or raises."""

    async def prepare(self, partitions: Mapping[str, int]) -> None:
        """Before any client starts: ``partitions`` is the partition count of each topic."""

    def producer_settings(self) -> dict[str, Any]:
        """Keyword arguments of this stage's producer (beyond the connection settings)."""
        return {"acks": "all"}

    def consumer_settings(self) -> dict[str, Any]:
        """Keyword arguments of the group consumer (beyond the connection settings)."""
        return {
            "group_id": self.group_id(),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "partition_assignment_strategy": (RangePartitionAssignor,),
            # One fetch is in flight per broker; a long poll delays partitions that just
            # got data, so keep it short (latency, at ~20 empty fetches/s when idle).
            # aiokafka prefetches every assigned partition; the default 1 MiB per partition
            # keeps that buffer (and peak RSS) bounded.
            "fetch_max_wait_ms": 50,
        }

    async def opened(self, settings: Mapping[str, Any]) -> None:
        """The producer and restorer have started; start the stage's own clients and tasks."""

    async def closing(self, failed: bool) -> None:
        """Before the group consumer stops: finish or drop the work in hand (and commit)."""

    async def closed(self) -> None:
        """The group consumer has left the group; stop the stage's own clients."""

    async def release(self, revoked: Sequence[TopicPartition]) -> None:
        """Give up ``revoked`` (under :attr:`lock`): finish or drop their work, commit."""

    def taken(self, held: Sequence[TopicPartition]) -> None:
        """``held`` were just assigned and paused until restored."""

    async def settled(self) -> bool:
        """Bounded modes: whether everything read so far is done with."""
        return True

    def limit_reached(self) -> bool:
        """Bounded modes: whether a record limit says stop although records remain."""
        return False

    async def at_end(self) -> bool:
        """Bounded modes: whether the consumer has read every assigned partition to its end."""
        return await at_end(self.consumer, self.consumer.assignment())

    # -- life cycle ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop fetching; :meth:`run_stage` finishes what the stage finishes on stop,
        commits, leaves the group and returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run_stage(self) -> None:
        """Create the clients, serve until stopped (or done), then close in order (the
        stage's ``run`` wraps this with what it reports)."""
        await self.prepare(await ensure_topics(self.cfg))
        settings = client_settings(self.cfg.kafka)
        self.producer = AIOKafkaProducer(**settings, **self.producer_settings())
        self.restorer = AIOKafkaConsumer(**settings, enable_auto_commit=False, fetch_max_wait_ms=50)
        self.consumer = AIOKafkaConsumer(**settings, **self.consumer_settings())
        await self.producer.start()
        await self.restorer.start()
        await self.opened(settings)
        failed = True
        probe: asyncio.Task[None] | None = None
        metrics.watch(self)  # consumer lag (and what the stage adds) at every scrape
        try:
            self.consumer.subscribe(self.topics(), listener=_Rebalance(self))
            await self.consumer.start()
            probe = asyncio.create_task(watch_kafka(self.health, self.consumer), name="probe")
            await self.serve()
            failed = False
        finally:
            metrics.unwatch(self)
            if probe is not None:
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)
            await self.closing(failed)
            await self.consumer.stop()  # leaves the group
            await self.closed()
            await self.restorer.stop()
            await self.producer.stop()

    # -- rebalance -----------------------------------------------------------------------

    def assign(self, assigned: Sequence[TopicPartition]) -> None:
        """Pause the partitions that need state and note what to restore (no I/O here)."""
        held = [tp for tp in assigned if self.restore_key(tp) is not None]
        if held:
            self.consumer.pause(*held)
        for tp in held:
            key = self.restore_key(tp)
            assert key is not None
            self._to_restore.add(key)
        self.taken(held)
        self.health.assigned = True
        self.health.restoring = self.health.restoring or bool(held)
        log.info("partitions_assigned", **self.describe(assigned))

    async def revoke(self, revoked: Sequence[TopicPartition]) -> None:
        """Release ``revoked`` (the caller holds :attr:`lock`) and forget their restore."""
        await self.release(revoked)
        for tp in revoked:
            key = self.restore_key(tp)
            if key is not None:
                self._to_restore.discard(key)
            self._committed.pop(tp, None)
        self.health.assigned = False
        log.info("partitions_revoked", **self.describe(revoked))

    @property
    def restoring(self) -> bool:
        """Whether assigned partitions wait for their state."""
        return bool(self._to_restore)

    def restoring_key(self, key: K) -> bool:
        """Whether ``key`` is assigned and waits for its state."""
        return key in self._to_restore

    async def restore_pending(self) -> None:
        """Restore every pending key in one read, then resume the partitions still ours."""
        if self._to_restore:
            pending, self._to_restore = self._to_restore, set()
            await self.restore_state(pending)
            mine = self.consumer.assignment()
            resume = [tp for key in pending for tp in self.resume_of(key)]
            self.consumer.resume(*[tp for tp in resume if tp in mine])
        self.health.restoring = bool(self._to_restore)

    # -- the commit rule ----------------------------------------------------------------

    def committed(self, tp: TopicPartition) -> int | None:
        """The offset this stage last committed for ``tp`` while it owns it (None: none)."""
        return self._committed.get(tp)

    def commit_due(self, interval_s: float, *, idle: bool = False) -> bool:
        """Whether to commit now: when idle at once, under load at most every ``interval_s``."""
        return idle or time.monotonic() - self._committed_at >= interval_s

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit ``offsets`` (each the next offset to read) past those last committed.

        Returns whether Kafka took them. A failure (:data:`COMMIT_ERRORS`) is logged and
        left to the next commit: the offsets stay where they were, and the records after
        them are processed again by whoever owns the partition next, which both stages make
        harmless (changelog replay guards; absolute quantities).
        """
        self._committed_at = time.monotonic()
        fresh = {
            tp: OffsetAndMetadata(offset, "")
            for tp, offset in offsets.items()
            if offset > self._committed.get(tp, -1)
        }
        if not fresh:
            return True
        try:
            await self.consumer.commit(fresh)
        except COMMIT_ERRORS as e:
            log.warning(
                "commit_failed",
                stage=self.name,
                partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in fresh),
                error=type(e).__name__,
            )
            return False
        for tp, om in fresh.items():
            self._committed[tp] = om.offset
        return True

    # -- bounded modes -------------------------------------------------------------------

    async def done(self) -> bool:
        """Bounded modes: nothing to restore, the stage settled, and a record limit reached
        or (until caught up) every source read to its end."""
        if self._to_restore or not await self.settled():
            return False
        if self.limit_reached():
            return True
        return self.until_caught_up and await self.at_end()

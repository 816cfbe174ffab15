"""The publish stage's Kafka sink: what the pushers hand back, written to Kafka.

Owns :class:`KafkaResults`, the :class:`~syncd.publish.types.Sink` and action writer
of every pusher of the stage:

- ``topics.push_results``: every attempt (:class:`syncd.records.PushResult`);
- ``<p>.acked`` (compacted): the newest acknowledged quantity per listing, in the same
  partition number as the listing's desired records; a tombstone when a listing left
  the catalog (:meth:`KafkaResults.unlinked`);
- ``topics.holds`` (compacted, key ``<account>/<sku>``, in the SKU's stock partition):
  a campaign hold or its end, handed back to the compute stage when it changes;
- ``topics.actions`` (compacted, key ``<account>/<action>``): manual actions;
- the resolution of desired-topic offsets (handed to the stage's offset trackers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AioKafkaError

from syncd.config import TopicsConfig
from syncd.kafka.partitioning import partition_for
from syncd.obs import metrics
from syncd.publish.types import Attempt, push_result
from syncd.records import Hold, encode_acked, encode_action, encode_hold, encode_push_result

log = structlog.get_logger("syncd.publish.results")

Resolve = Callable[[int, Iterable[int]], None]
"""Hands desired-topic offsets of a partition over to the stage's offset tracker."""


class KafkaResults:
    """Writes the pushers' results to Kafka; see the module docstring."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: TopicsConfig,
        platforms: Mapping[str, str],
        stock_partitions: int,
        resolve: Resolve,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.platforms = platforms
        """Account -> platform (the metrics' label)."""
        self.stock_partitions = stock_partitions
        self._resolve = resolve
        self.holds: dict[tuple[str, str], int] = {}
        """(account, SKU) -> the campaign hold last written to ``topics.holds``."""

    async def record(
        self, account: str, partition: int, attempts: Sequence[Attempt]
    ) -> Awaitable[None]:
        metrics.record_call(account, self.platforms[account], attempts)
        t = self.topics
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
            if a.held is not None and self.holds.get((account, a.desired.sku)) != a.held:
                futures.append(await self._send_hold(account, a))
        return _delivered(futures)

    async def _send_hold(self, account: str, a: Attempt) -> Awaitable[Any]:
        """Hand a campaign hold (or its end) to the compute stage: ``topics.holds``, in the
        SKU's stock partition, keyed (and compacted) by account and SKU."""
        assert a.held is not None
        h = Hold(account, a.desired.sku, a.desired.listing_ref, a.held, a.at_ms)
        self.holds[account, h.sku] = a.held
        log.info(
            "campaign_hold", held=a.held, account=account, sku=h.sku, listing_ref=h.listing_ref
        )
        sent: Awaitable[Any] = await self.producer.send(
            self.topics.holds,
            encode_hold(h),
            key=h.key.encode(),
            partition=partition_for(h.sku, self.stock_partitions),
        )
        return sent

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        self._resolve(partition, offsets)

    def restored_holds(self, holds: Mapping[tuple[str, str], int]) -> None:
        """The holds last written, as read back on assignment (a hold's end is written
        only when it differs)."""
        self.holds.clear()
        self.holds.update(holds)

    async def write_actions(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write manual-action records to ``topics.actions`` (compacted by action id).

        A failed write is logged, not raised: the next change of the action writes it
        again in full.
        """
        t = self.topics
        try:
            futures = [
                await self.producer.send(t.actions, encode_action(value), key=key.encode())
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except AioKafkaError as e:
            log.warning("action_write_failed", topic=t.actions, error=type(e).__name__)

    async def unlinked(self, listings: Sequence[tuple[int, str, list[int]]]) -> None:
        """Listings that left the catalog ((partition, key, offsets)): tombstone their
        acknowledged quantity, then resolve the offsets."""
        futures = [
            await self.producer.send(self.topics.acked, None, key=key.encode(), partition=p)
            for p, key, _ in listings
        ]
        await asyncio.gather(*futures)
        for p, _, offsets in listings:
            self.resolve(p, offsets)


async def _delivered(futures: Sequence[Awaitable[Any]]) -> None:
    await asyncio.gather(*futures)

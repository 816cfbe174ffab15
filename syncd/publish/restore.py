"""What the publish stage reads back when it is assigned partitions of ``<p>.desired``.

Owns :class:`Restorer`: before an assigned partition's records are consumed, it reads
(with its own group-less consumer) the partition's acknowledged quantities from
``<p>.acked``, the campaign holds this stage wrote (``topics.holds``, so a new owner
of an account still sees a hold end), the open manual actions of the partition's
accounts (``topics.actions``) and, when an account has one or reconciliation is on,
the newest desired value of its listings (docs/reconciliation.md). A new pusher takes
its account's share with :meth:`Restorer.take`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from syncd.config import TopicsConfig
from syncd.core.keys import account_of
from syncd.core.reconcile import Settings
from syncd.core.sending import Desired
from syncd.kafka.partitioning import partition_for
from syncd.kafka.reading import read_to_end
from syncd.records import decode_acked, decode_action, decode_desired, decode_hold


class Restorer:
    """The restored state of the stage's accounts; see the module docstring."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: TopicsConfig,
        partitions: int,
        stock_partitions: int,
        reconcile: Mapping[str, Settings],
    ) -> None:
        self.consumer = consumer
        self.topics = topics
        self.partitions = partitions
        """Partitions of ``<p>.desired`` (an account's partition is murmur2 of its name)."""
        self.stock_partitions = stock_partitions
        self.reconcile = reconcile
        self.acked: dict[int, dict[str, int]] = {}
        """Acknowledged quantity per listing key, per assigned partition."""
        self.actions: dict[str, list[dict[str, Any]]] = {}
        """Open action records per account, restored on assignment (taken by the pusher)."""
        self.desired: dict[str, dict[str, Desired]] = {}
        """Newest desired value per listing, per account, restored on assignment."""
        self.listing_holds: dict[str, int] = {}
        """Listing key -> units held, as restored (each new pusher takes its own)."""

    def take(
        self, account: str, partition: int
    ) -> tuple[dict[str, int], list[dict[str, Any]], dict[str, Desired], dict[str, int]]:
        """A new pusher's share: acknowledged quantities, open action records, newest
        desired values and campaign holds of ``account`` (the records and desired values
        are taken: a later pusher of the account starts from a fresh restore)."""
        acked = {k: q for k, q in self.acked.get(partition, {}).items() if account_of(k) == account}
        holds = {k: q for k, q in self.listing_holds.items() if account_of(k) == account}
        return acked, self.actions.pop(account, []), self.desired.pop(account, {}), holds

    def forget(self, partition: int) -> None:
        """The partition was revoked."""
        self.acked.pop(partition, None)

    async def read_acked(self, partitions: Collection[int]) -> dict[int, dict[str, int]]:
        """The acknowledged quantities of ``partitions`` (kept for their new pushers)."""
        restored: dict[int, dict[str, int]] = {p: {} for p in partitions}
        tps = [TopicPartition(self.topics.acked, p) for p in sorted(partitions)]
        async for rec in read_to_end(self.consumer, tps):
            key = rec.key.decode(errors="replace") if rec.key is not None else ""
            if rec.value is None:
                restored[rec.partition].pop(key, None)
                continue
            try:
                restored[rec.partition][key] = decode_acked(rec.value).quantity
            except ValueError:
                continue
        self.consumer.unsubscribe()
        self.acked.update(restored)
        return restored

    async def read_holds(self) -> dict[tuple[str, str], int]:
        """The campaign holds this stage wrote, (account, SKU) -> held (also kept per
        listing for new pushers)."""
        t = self.topics
        holds: dict[tuple[str, str], int] = {}
        tps = [TopicPartition(t.holds, p) for p in range(self.stock_partitions)]
        async for rec in read_to_end(self.consumer, tps):
            if rec.value is not None:
                h = decode_hold(rec.value)
                holds[h.account, h.sku] = h.held
                if h.held:
                    self.listing_holds[h.listing_key] = h.held
                else:
                    self.listing_holds.pop(h.listing_key, None)
        self.consumer.unsubscribe()
        return holds

    async def read_actions(self, accounts: Collection[str]) -> tuple[list[str], int]:
        """The open actions of ``accounts`` and, when an account has one or
        reconciliation is on, the newest desired value of its listings; returns the
        accounts with open actions (their pushers start now: a parked account probes
        although no new record comes) and how many listings were read."""
        mine = set(accounts)
        for a in mine:  # anything left from an earlier assignment is stale
            self.actions.pop(a, None)
            self.desired.pop(a, None)
        latest: dict[str, dict[str, Any]] = {}
        async for rec in read_to_end(self.consumer, [TopicPartition(self.topics.actions, 0)]):
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
                self.actions.setdefault(str(value["account"]), []).append(value)
        wanted = set(self.actions)
        if any(self.reconcile[a].interval_s > 0 for a in mine):
            wanted = mine
        found = await self._read_desired(wanted) if wanted else {}
        for key, d in found.items():
            if d is not None:
                self.desired.setdefault(account_of(key), {})[key] = d
        return sorted(self.actions), len(found)

    async def _read_desired(self, accounts: set[str]) -> dict[str, Desired | None]:
        """The newest desired value of every listing of ``accounts`` (None: unlinked)."""
        reads = {partition_for(a, self.partitions) for a in accounts}
        tps = [TopicPartition(self.topics.desired, p) for p in sorted(reads)]
        found: dict[str, Desired | None] = {}
        async for rec in read_to_end(self.consumer, tps):
            key = rec.key.decode(errors="replace") if rec.key is not None else ""
            if account_of(key) in accounts:
                try:
                    found[key] = decode_desired(rec.key, rec.value) if rec.value else None
                except ValueError:
                    continue
        self.consumer.unsubscribe()
        return found

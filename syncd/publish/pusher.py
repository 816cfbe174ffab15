"""One channel account's sending: newest quantity per listing, in order, within its limits.

Owns :class:`AccountPusher`: the task lifecycle of one account and the composition of
its parts, which talk through public methods: the pure send queue
(:class:`syncd.core.sending.SendQueue`: newest quantity per listing, stock-outs then
decreases then increases, never two calls for one listing), the calls
(:class:`syncd.publish.calls.CallRunner`: up to ``max_in_flight``, each through the
account's limiter; every failure handled by its error-table class, docs/error-table.md;
every attempt recorded; cancellation never caught), parking and probes
(:class:`syncd.publish.parking.Parking`), read-back and restore
(:class:`syncd.publish.readback.ReadBack`, docs/reconciliation.md), the retry pass
(listings whose retries ran out are sent again every ``retry_pass_s`` unless a newer
record came) and the account's manual actions (:class:`syncd.core.actions.ActionBook`).
:class:`Attempt`, :func:`push_result` and :class:`Desired` are re-exported from
:mod:`syncd.publish.types`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiolimiter import AsyncLimiter

from syncd.channels.base import Channel
from syncd.config.error_table import default_table
from syncd.core.actions import ActionBook
from syncd.core.errortable import Decision, ErrorTable
from syncd.core.keys import listing_key
from syncd.core.reconcile import Drift, Settings
from syncd.core.sending import Desired, SendQueue
from syncd.publish.calls import CallRunner, Settler
from syncd.publish.limits import AccountLimits, Limiter
from syncd.publish.parking import AUTH_PROBE_S, Parking
from syncd.publish.readback import ReadBack
from syncd.publish.shared import Shared
from syncd.publish.types import ActionWriter, Attempt, Park, RetryCap, Sink, push_result

__all__ = ["AccountPusher", "Attempt", "Desired", "push_result"]

log = structlog.get_logger("syncd.publish.pusher")


class AccountPusher:
    """Sends one account's newest desired quantities, in order, within its limits."""

    def __init__(
        self,
        account: str,
        partition: int,
        channel: Channel,
        limiter: Limiter,
        limits: AccountLimits,
        retry: RetryCap | None,
        sink: Sink,
        *,
        acked: Mapping[str, int] | None = None,
        retry_pass_s: float = 60.0,
        table: ErrorTable | None = None,
        actions: ActionWriter | None = None,
        auth_probe_s: float = AUTH_PROBE_S,
        reconcile: Settings | None = None,
    ) -> None:
        self.limits = limits
        self.retry_pass_s = retry_pass_s
        self.shared = Shared(
            account,
            partition,
            channel,
            limiter,
            sink,
            table if table is not None else default_table(),
            SendQueue(acked),
            log.bind(account=account, partition=partition),
            actions,
        )
        self.parking = Parking(self.shared, auth_probe_s)
        self.readback = ReadBack(self.shared, self.parking, reconcile)
        self.settler = Settler(self.shared, self.parking, self.readback)
        self.calls = CallRunner(self.shared, self.parking, self.readback, self.settler, retry)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def account(self) -> str:
        return self.shared.account

    @property
    def partition(self) -> int:
        return self.shared.partition

    @property
    def channel(self) -> Channel:
        return self.shared.channel

    @property
    def platform(self) -> str:
        return self.shared.platform

    @property
    def limiter(self) -> Limiter:
        return self.shared.limiter

    @property
    def table(self) -> ErrorTable:
        return self.shared.table

    @property
    def book(self) -> ActionBook:
        return self.shared.book

    @property
    def counts(self) -> Counter[str]:
        return self.shared.counts

    @property
    def write_actions(self) -> ActionWriter | None:
        return self.shared.action_writer

    @property
    def reconcile_settings(self) -> Settings | None:
        return self.readback.settings

    @reconcile_settings.setter
    def reconcile_settings(self, settings: Settings | None) -> None:
        self.readback.settings = settings

    @property
    def pending(self) -> dict[str, Desired]:
        return self.shared.queue.pending

    @property
    def inflight(self) -> dict[str, Desired]:
        return self.shared.queue.inflight

    @property
    def acked(self) -> dict[str, int]:
        return self.shared.queue.acked

    @property
    def parked(self) -> dict[str, Desired]:
        """Retries ran out: sent again by the next retry pass unless a newer record comes."""
        return self.shared.queue.parked

    @property
    def campaign_holds(self) -> dict[str, int]:
        return self.shared.queue.campaign_holds

    @property
    def account_park(self) -> Park | None:
        return self.parking.account_park

    @property
    def held(self) -> dict[str, Park]:
        return self.parking.held

    @property
    def known(self) -> dict[str, Desired]:
        return self.readback.known

    @property
    def drift(self) -> dict[str, Drift]:
        return self.readback.drift

    @property
    def idle(self) -> bool:
        """Nothing in flight or waiting to be written, and nothing queued that may be sent
        now (a parked account's quantities wait for its probe)."""
        if self.inflight or self.settler.writes:
            return False
        return not self.pending or self.parking.blocks_sending()

    def offer(self, d: Desired) -> None:
        """Take a newer desired quantity for a listing (it replaces any pending one)."""
        sh = self.shared
        q = sh.queue
        q.unlinked.discard(d.key)
        q.parked.pop(d.key, None)
        held = self.parking.held.get(d.key)
        if held is not None:  # handed over while held: keep only the newest quantity
            sh.resolve(d.offsets)
            d.offsets = []
            held.desired = d
            sh.counts["coalesced"] += 1
            return
        old = q.pending.get(d.key)
        if old is not None:
            d.offsets = old.offsets + d.offsets
            sh.counts["coalesced"] += 1
        if self.parking.parked:  # parked: handed over, kept for the flush
            sh.resolve(d.offsets)
            d.offsets = []
        q.pending[d.key] = d
        sh.place(d.key)

    def unlink(self, key: str) -> list[int]:
        """The listing left the catalog: drop what is queued; returns the offsets that frees."""
        self.readback.forget(key)
        self.parking.held.pop(key, None)
        return self.shared.queue.forget(key)

    def restore(self, records: Iterable[Mapping[str, Any]], desired: Mapping[str, Desired]) -> None:
        """Before :meth:`start`: take back open actions, parked state and the newest
        desired quantities (:meth:`syncd.publish.readback.ReadBack.restore`)."""
        self.readback.restore(records, desired)

    async def reconcile(self, budget: AsyncLimiter) -> None:
        """One read-back pass (:meth:`syncd.publish.readback.ReadBack.reconcile`)."""
        await self.readback.reconcile(budget)

    def use_table(self, table: ErrorTable) -> None:
        """Classify with ``table`` from now on (a reloaded error table)."""
        self.shared.table = table

    def drop_queued(self) -> int:
        """Drop every queued (not in flight) update unsent; returns how many (on stop:
        their offsets stay uncommitted, so the next owner sends them)."""
        q = self.shared.queue
        keys = list(q.pending)
        for key in keys:
            q.drop_pending(key)
        return len(keys)

    def probe_now(self) -> None:
        """A parked account probes at the prober's next tick (an operator's Retry)."""
        self.parking.probe_now()

    def retry_now(self, listing_ref: str) -> str:
        """Send the newest kept quantity of a listing again now (an operator's Retry);
        says what happened: ``already_queued``, ``requeued`` (retries had run out),
        ``probe_now`` (a held listing, probed at the next tick) or ``no_quantity_kept``
        (a manual row keeps nothing: the next newer record sends it)."""
        key = listing_key(self.account, listing_ref)
        if key in self.pending or key in self.inflight:
            return "already_queued"
        if key in self.parked:  # retries ran out: what the retry pass would do
            self.offer(self.parked[key])
            return "requeued"
        if self.parking.probe_held_now(key):
            return "probe_now"
        return "no_quantity_kept"

    def parked_by(self) -> Decision | None:
        """The decision the account is parked with, else None."""
        park = self.parking.account_park
        return park.decision if park is not None else None

    def queue_depth(self) -> int:
        """Listings with a quantity waiting to be sent."""
        return len(self.pending)

    def open_actions_by_class(self) -> Counter[str]:
        """Open manual actions, by the error table's class."""
        return Counter(a.error_class for a in self.book.open_actions())

    def start(self) -> None:
        name = self.account
        for i in range(self.limits.max_in_flight):
            self._tasks.append(asyncio.create_task(self.calls.run(), name=f"push-{name}-{i}"))
        if self.retry_pass_s > 0:
            self._tasks.append(asyncio.create_task(self._retry_pass(), name=f"retry-{name}"))
        self._tasks.append(asyncio.create_task(self.parking.run(), name=f"probe-{name}"))
        if self.readback.reading:
            task = asyncio.create_task(self.readback.run(), name=f"reconcile-{name}")
            self._tasks.append(task)

    async def stop(self, drain_s: float = 0.0) -> None:
        """Let queued work finish for up to ``drain_s`` seconds, then cancel what is left."""
        deadline = time.monotonic() + drain_s
        while True:
            if self.idle or time.monotonic() >= deadline or self.error() is not None:
                break
            await asyncio.sleep(0.02)
        tasks = [*self._tasks, *self.settler.writes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def error(self) -> BaseException | None:
        """The exception a task of this pusher died of, if any."""
        if self.settler.write_error is not None:
            return self.settler.write_error
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    async def _retry_pass(self) -> None:
        q = self.shared.queue
        while True:
            await asyncio.sleep(self.retry_pass_s)
            parked, q.parked = q.parked, {}
            for key, d in parked.items():
                if key not in q.pending and key not in q.inflight and key not in self.held:
                    q.pending[key] = d
                    self.shared.place(key)
            if parked:
                self.shared.log.info("retry_pass", listings=len(parked))

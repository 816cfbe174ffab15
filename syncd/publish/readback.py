"""Reading an account's quantities back from the platform, and restoring its state.

Owns :class:`ReadBack` (docs/reconciliation.md): what the account last acknowledged
per listing (:attr:`ReadBack.known`, :attr:`ReadBack.acked_at`), the drifts a read-back
found (:attr:`ReadBack.drift`), the reconciler task that reads settled listings back
within the account's limiter and a share of its rate (:meth:`ReadBack.reconcile`;
:func:`syncd.core.reconcile.check` says what a read means: a drift is pushed again, a
persisting one opens an action), and :meth:`ReadBack.restore`, which takes back the
open actions, the parked account and the held listings after a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiolimiter import AsyncLimiter

from syncd.channels.base import PushOutcome
from syncd.core.actions import Action
from syncd.core.errortable import Decision
from syncd.core.keys import listing_key
from syncd.core.reconcile import READ_BACK_CODES, Drift, Settings, check
from syncd.core.sending import Desired
from syncd.errors import ChannelError
from syncd.publish.parking import Parking
from syncd.publish.shared import Shared
from syncd.records import action_of


class ReadBack:
    """One account's read-back and restore; see the module docstring."""

    def __init__(self, shared: Shared, parking: Parking, settings: Settings | None) -> None:
        self.shared = shared
        self.parking = parking
        self.settings = settings
        self.known: dict[str, Desired] = {}
        """The last acknowledged value of each listing (its listing object for read-back)."""
        self.acked_at: dict[str, float] = {}
        """When each listing was last acknowledged (epoch seconds)."""
        self.drift: dict[str, Drift] = {}
        """Listings whose read-back differs from the acknowledged quantity."""

    @property
    def reading(self) -> bool:
        """Reconciliation is on (a read-back runs every ``interval_s``)."""
        return self.settings is not None and self.settings.interval_s > 0

    def acknowledged(self, d: Desired) -> None:
        """The platform acknowledged ``d`` (its sent quantity) now."""
        self.acked_at[d.key] = time.time()
        self.known[d.key] = d

    def opened_drift(self, key: str) -> bool:
        """A read-back drift of ``key`` opened an action (a matching read clears it)."""
        drift = self.drift.get(key)
        return drift is not None and drift.opened

    def forget(self, key: str) -> None:
        self.known.pop(key, None)
        self.acked_at.pop(key, None)
        self.drift.pop(key, None)

    # -- reconciliation ----------------------------------------------------------------

    async def run(self) -> None:
        """The reconciler task: a read-back pass every ``interval_s``."""
        rc = self.settings
        assert rc is not None
        budget = AsyncLimiter(1, 1 / rc.read_rate_per_s)  # the read share of the rate
        while True:
            await asyncio.sleep(rc.interval_s)
            await self.reconcile(budget)

    async def reconcile(self, budget: AsyncLimiter) -> None:
        """Read back every settled listing (acknowledged, or whose retries ran out), each
        call through ``budget`` and the account's limiter, and act on what it shows."""
        rc = self.settings
        assert rc is not None
        sh = self.shared
        q = sh.queue
        busy = q.pending.keys() | q.inflight.keys() | self.parking.held.keys()
        todo = {k: d for k, d in self.known.items() if k not in busy}
        todo.update(q.parked)
        keys = list(todo)
        for i in range(0, len(keys), rc.listings_per_read):
            if self.parking.parked:
                return  # a parked account gets only probes
            part = [todo[k] for k in keys[i : i + rc.listings_per_read]]
            await budget.acquire()
            await sh.limiter.acquire()
            try:
                read = await sh.channel.read_stock([d.listing for d in part])
            except ChannelError as e:
                sh.log.warning("reconcile_read_failed", code=e.code, listings=len(part))
                continue
            finally:
                sh.limiter.done(sh.channel)
            sh.counts["reconcile_reads"] += 1
            await self._reconciled(part, read)

    async def _reconciled(self, part: list[Desired], read: Mapping[str, int]) -> None:
        rc = self.settings
        assert rc is not None
        sh = self.shared
        q = sh.queue
        now = time.time()
        now_ms = int(now * 1000)
        changed: list[str] = []
        for d in part:
            key = d.key
            if key in q.pending or key in q.inflight or key in self.parking.held:
                continue  # changed while reading: its own send decides
            parked = q.parked.get(key)
            old = self.drift.get(key)
            c = check(
                q.acked.get(key),
                self.acked_at.get(key),
                read.get(d.listing_ref),
                now,
                delay_s=rc.delay_s,
                persist_s=rc.persist_s,
                drift=old,
                desired=parked.quantity if parked is not None else None,
            )
            sh.counts["reconcile_" + c.verdict] += 1
            if c.drift is None:
                self.drift.pop(key, None)
            else:
                self.drift[key] = c.drift
            if c.verdict == "adopt" or (c.verdict == "ok" and old is not None and old.opened):
                changed += sh.book.cleared(d.listing_ref, now_ms)
            if c.verdict == "adopt":
                del q.parked[key]
                q.acked[key], self.acked_at[key] = d.quantity, now
                self.known[key] = d
            elif c.verdict in ("drift", "push", "action"):
                sh.log.info(
                    "read_back_drift",
                    listing=d.listing_ref,
                    acked=q.acked.get(key),
                    read=c.drift.read if c.drift else None,
                    verdict=c.verdict,
                )
            if c.verdict == "push":  # the platform holds another value: send ours again
                q.acked[key] = read[d.listing_ref]
                q.pending[key] = Desired(key, d.listing, d.listing_ref, d.sku, d.quantity, None)
                sh.place(key)
            elif c.verdict == "action":
                outcome = PushOutcome(d.listing_ref, False, None, c.code, c.message, None, None)
                dec = sh.table.classify(
                    sh.platform, outcome, sku=d.sku, listing=d.listing_ref, account=sh.account
                )
                if old is None or not old.opened:
                    changed.append(sh.book.open(dec, d.listing_ref, now_ms))
                if dec.error_class == "park-listing":  # the probe sends it again
                    q.acked[key] = read[d.listing_ref]
                    self.parking.hold(key, dec, d)
        await sh.write_actions(changed)

    # -- restore -----------------------------------------------------------------------

    def restore(self, records: Iterable[Mapping[str, Any]], desired: Mapping[str, Desired]) -> None:
        """After a restart or a rebalance, before the pusher starts: take back this
        account's open actions (values of ``topics.actions``), park the account or hold
        the listings their class says, and keep the newest desired quantities
        (``desired``: the account's desired records, newest per key) for read-back and
        for the flush."""
        sh = self.shared
        q = sh.queue
        for key, d in desired.items():
            if q.acked.get(key) == d.quantity:
                self.known[key] = d
        for r in records:
            a = action_of(sh.account, r)
            sh.book.actions[a.action] = a
            dec = self._restored_decision(a)
            if dec is None:
                continue
            if dec.error_class == "park-account":
                self.parking.park_restored(dec, a.action)
            elif dec.error_class == "park-listing":
                for ref in a.listings:
                    key = listing_key(sh.account, ref)
                    self.parking.hold(key, dec, desired.get(key))
                    if dec.code in READ_BACK_CODES:  # the platform does not show it: send
                        q.acked.pop(key, None)
                        if self.reading:  # a matching read-back clears the action
                            self.drift[key] = Drift(time.time(), 0, pushed=True, opened=True)
        if self.parking.parked:  # the flush: what the platform does not hold
            for key, d in desired.items():
                if key not in self.parking.held and q.acked.get(key) != d.quantity:
                    q.pending[key] = d
                    sh.place(key)

    def _restored_decision(self, a: Action) -> Decision | None:
        """The decision an action record was opened with: the first row of this platform
        (then ``*``) with its action name and class, with the record's hint."""
        platform = self.shared.platform
        rows = sorted(self.shared.table.rows, key=lambda r: r.platform != platform)
        for row in rows:
            same = row.action == a.action and row.error_class == a.error_class
            if same and row.platform in (platform, "*"):
                codes = sorted(row.code or ())
                code = next((c for c in codes if c in READ_BACK_CODES), codes[0] if codes else None)
                return Decision.of_row(row, platform, code, a.hint)
        return None

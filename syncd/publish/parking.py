"""Parked accounts and held listings, and their probes (docs/error-table.md).

Owns :class:`Parking`: a ``park-account`` row parks the whole account (only probes are
sent: one listing at a time, every ``probe_every_s``; the newest quantities are kept
and flushed when a probe succeeds), a ``park-listing`` row holds one listing (probed on
its own). The prober task schedules the probes; :meth:`Parking.probe_now` and
:meth:`Parking.probe_held_now` bring them forward (an operator's Retry).
"""

from __future__ import annotations

import asyncio
import time

from syncd.core.errortable import Decision
from syncd.core.sending import SENT_AGAIN, Desired
from syncd.publish.shared import Shared
from syncd.publish.types import Park

AUTH_PROBE_S = 3600.0
"""Probe interval of an account parked because its token could not be refreshed, when
the refusal's own row gives none."""
PROBE_TICK_S = 0.05


class Parking:
    """One account's parked state and held listings; see the module docstring."""

    def __init__(self, shared: Shared, auth_probe_s: float = AUTH_PROBE_S) -> None:
        self.shared = shared
        self.auth_probe_s = auth_probe_s
        self.account_park: Park | None = None
        """The account is parked (``park-account``): only probes are sent."""
        self.held: dict[str, Park] = {}
        """Listings held by a ``park-listing`` row, each probed on its own."""
        self.probe_due = False
        self.probe_key: str | None = None
        """The listing of the account's probe in flight."""

    # -- asked by the others ---------------------------------------------------------

    @property
    def parked(self) -> bool:
        return self.account_park is not None

    def blocks_sending(self) -> bool:
        """The account is parked and no probe is due."""
        return self.account_park is not None and not self.probe_due

    def probe_every(self, decision: Decision) -> float:
        return decision.probe_every_s if decision.probe_every_s is not None else self.auth_probe_s

    def probe_taken(self, d: Desired) -> None:
        """``d`` goes out as the parked account's probe."""
        self.probe_due = False
        self.probe_key = d.key
        self.shared.log.info("account_probe", listing=d.listing_ref)

    def drop_probe(self, key: str) -> None:
        """The probe's listing needs no more sending: the next probe may be scheduled."""
        if key == self.probe_key:
            self.probe_key = None

    def probe_answered(self, key: str, fate: str) -> bool:
        """``key`` got a final answer: True when it was the account's probe."""
        if key == self.probe_key and fate not in SENT_AGAIN:
            self.probe_key = None
            return True
        return False

    # -- changing --------------------------------------------------------------------

    def park(self, decision: Decision) -> None:
        """Park the account (again: with a new probe time)."""
        sh = self.shared
        first = self.account_park is None
        self.account_park = Park(decision, time.monotonic() + self.probe_every(decision))
        self.probe_due = False
        if first:
            sh.counts["account_parked"] += 1
            sh.log.warning(
                "account_parked",
                row=decision.row.id,
                action=decision.action,
                probe_every_s=self.probe_every(decision),
            )
        # what is queued is handed over: kept for the flush, no longer holding commits
        for d in sh.queue.pending.values():
            if d.offsets:
                sh.resolve(d.offsets)
                d.offsets = []

    def park_restored(self, decision: Decision, action: str) -> None:
        """Park the account as an open action restored after a restart says."""
        self.account_park = Park(decision, time.monotonic() + self.probe_every(decision))
        self.shared.counts["account_parked"] += 1
        self.shared.log.warning("account_parked_restored", row=decision.row.id, action=action)

    def unpark(self, now_ms: int) -> list[str]:
        """A probe (or any call) succeeded: flush; returns the actions this resolves."""
        sh = self.shared
        park = self.account_park
        if park is None:
            return []
        self.account_park = None
        self.probe_due = False
        self.probe_key = None
        sh.counts["account_unparked"] += 1
        sh.log.info("account_unparked", row=park.decision.row.id, pending=len(sh.queue.pending))
        sh.wake.set()  # flush the newest quantities
        return sh.book.resolve(park.decision.action, now_ms)

    def hold(self, key: str, decision: Decision, desired: Desired | None) -> None:
        """Hold a listing (``park-listing``) with its newest quantity, probed later."""
        self.held[key] = Park(decision, time.monotonic() + self.probe_every(decision), desired)

    def probe_now(self) -> None:
        """A parked account probes at the prober's next tick."""
        if self.account_park is not None:
            self.account_park.next_probe = 0.0

    def probe_held_now(self, key: str) -> bool:
        """A held listing with a kept quantity is probed at the next tick; False when the
        listing is not held or nothing is kept for it."""
        h = self.held.get(key)
        if h is None or h.desired is None:
            return False
        h.next_probe = 0.0
        return True

    # -- the prober task -------------------------------------------------------------

    async def run(self) -> None:
        """Schedules the probes of a parked account and of held listings."""
        sh = self.shared
        q = sh.queue
        while True:
            await asyncio.sleep(PROBE_TICK_S)
            now = time.monotonic()
            park = self.account_park
            if (
                park is not None
                and not self.probe_due
                and self.probe_key is None
                and now >= park.next_probe
            ):
                if any(k not in q.inflight for k in q.pending):
                    self.probe_due = True
                    sh.wake.set()
                else:  # nothing to probe with: look again after the interval
                    park.next_probe = now + self.probe_every(park.decision)
            for key, h in list(self.held.items()):
                if now >= h.next_probe:
                    del self.held[key]
                    if h.desired is not None and key not in q.pending:
                        sh.log.info("listing_probe", listing=h.desired.listing_ref)
                        q.pending[key] = h.desired
                        sh.place(key)

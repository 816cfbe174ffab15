"""The per-account send queue and what a call's answers mean, pure (no I/O, no clock).

Owns:

- :class:`Desired`, the newest desired quantity of one listing and the desired-topic
  offsets it answers for;
- :class:`SendQueue`, one account's listings as the publish stage sends them: the
  pending (newest unsent) quantities in three send classes (:data:`STOCK_OUT`, then
  :data:`DECREASE`, then :data:`INCREASE`, against the last acknowledged quantity;
  first-come within a class), the ones in flight, the acknowledged ones, the ones
  whose retries ran out (sent again by the retry pass), the unlinked ones still in
  flight, and the ``adjust`` rows and campaign holds that change what is sent;
- :data:`Fate` and :func:`plan_call` / :func:`settle_retries` / :func:`settle_auth`:
  what happens to each update of one call after its answers are classified by the
  error table (the asynchronous part, reading held units back and refreshing a token,
  is :mod:`syncd.publish.calls`; times and random draws are handed in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.core.errortable import Decision, RetrySpec
from syncd.core.keys import account_of

STOCK_OUT, DECREASE, INCREASE = 0, 1, 2
"""Send classes, in send order."""

Fate = Literal[
    "ack", "retry", "resend", "refresh", "give-up", "manual", "park-listing", "park-account"
]
"""What happens to one update of a call: ``ack``; ``retry`` / ``resend`` (this call again
after the call's delay); ``refresh`` (refresh the token first, then decided again);
``give-up`` (retries ran out: final, a manual action, the retry pass); ``manual``;
``park-listing``; ``park-account``."""

SENT_AGAIN: frozenset[str] = frozenset({"retry", "resend"})
"""Fates after which the same call is tried again."""


@dataclass(slots=True)
class Desired:
    """The newest desired quantity of one listing and the records it answers for."""

    key: str
    """``<account>/<listing ref>``, the desired topic's key."""
    listing: dict[str, Any]
    listing_ref: str
    sku: str
    quantity: int
    source_ts: int | None
    offsets: list[int] = field(default_factory=list)
    """Offsets (in the account's desired partition) resolved when this value is (kept by
    the reader, not on the wire)."""

    @property
    def account(self) -> str:
        return account_of(self.key)

    def kept(self, quantity: int | None = None) -> Desired:
        """A copy without offsets (what is kept once the offsets are handed over)."""
        q = self.quantity if quantity is None else quantity
        return Desired(self.key, self.listing, self.listing_ref, self.sku, q, self.source_ts)


def send_class(quantity: int, last: int | None) -> int:
    """The send class of ``quantity`` against the last acknowledged one (unknown counts
    as a decrease)."""
    if quantity <= 0:
        return STOCK_OUT
    return DECREASE if last is None or quantity < last else INCREASE


class SendQueue:
    """One account's listings in send order; see the module docstring."""

    def __init__(self, acked: Mapping[str, int] | None = None) -> None:
        self.pending: dict[str, Desired] = {}
        self.inflight: dict[str, Desired] = {}
        self.acked: dict[str, int] = dict(acked or {})
        self.parked: dict[str, Desired] = {}
        """Retries ran out: sent again by the next retry pass unless a newer record comes."""
        self.unlinked: set[str] = set()
        """Listings that left the catalog while a call for them was in flight."""
        self.adjust: dict[str, Decision] = {}
        """Listings whose next send is adjusted (``adjust`` rows), until acknowledged."""
        self.campaign_holds: dict[str, int] = {}
        """Listing -> units the platform holds for a campaign, as last learned; the hold
        ends when the platform accepts a quantity below it."""
        self._queues: tuple[dict[str, None], ...] = ({}, {}, {})
        self._class: dict[str, int] = {}

    def place(self, key: str) -> Desired | None:
        """Queue the pending value of ``key`` in its send class. When the platform
        already holds that quantity (and no call for it is in flight) it is dropped
        instead and returned: its offsets need nothing more."""
        d = self.pending[key]
        if key not in self.inflight and self.acked.get(key) == d.quantity:
            self.drop_pending(key)
            return d
        cls = send_class(d.quantity, self.acked.get(key))
        prev = self._class.get(key)
        if prev != cls:
            if prev is not None:
                del self._queues[prev][key]
            self._queues[cls][key] = None
            self._class[key] = cls
        return None

    def drop_pending(self, key: str) -> Desired:
        d = self.pending.pop(key)
        cls = self._class.pop(key, None)
        if cls is not None:
            del self._queues[cls][key]
        return d

    def has_sendable(self) -> bool:
        """A pending listing has no call in flight."""
        return len(self.pending) > sum(1 for k in self.inflight if k in self.pending)

    def candidates(self, window: int, one: bool = False) -> list[Desired]:
        """The first ``window`` (``one``: the first) pending listings of the most urgent
        class that has any without a call in flight (never two calls for one listing)."""
        for queue in self._queues:
            cands: list[Desired] = []
            for key in queue:
                if key not in self.inflight:
                    cands.append(self.pending[key])
                    if len(cands) >= window or one:
                        break
            if cands:
                return cands
        return []

    def start(self, picked: Iterable[Desired]) -> None:
        """These pending listings go out in a call."""
        for d in picked:
            self.drop_pending(d.key)
            self.inflight[d.key] = d

    def forget(self, key: str) -> list[int]:
        """The listing left the catalog: drop what is kept and queued; returns the
        offsets that frees (a call in flight is noted in :attr:`unlinked`)."""
        self.acked.pop(key, None)
        self.parked.pop(key, None)
        self.adjust.pop(key, None)
        offsets = self.drop_pending(key).offsets if key in self.pending else []
        if key in self.inflight:
            self.unlinked.add(key)
        return offsets

    def sent(self, d: Desired) -> int:
        """The quantity to send: the desired one, raised by an ``adjust`` decision."""
        dec = self.adjust.get(d.key)
        if dec is None or dec.quantity is None:
            return d.quantity
        return max(d.quantity, dec.quantity)

    def campaign_hold(self, d: Desired, ok: bool, adj: Decision | None) -> int | None:
        """The units the platform holds for a campaign as this attempt shows them: the
        ``adjust``/``hold`` capture, 0 once it accepts less than the known hold (the
        campaign ended), else None (nothing learned). Remembered per listing."""
        if adj is not None and adj.adjust == "hold" and adj.quantity is not None:
            self.campaign_holds[d.key] = adj.quantity
            return adj.quantity
        known = self.campaign_holds.get(d.key)
        if ok and known is not None and d.quantity < known:
            del self.campaign_holds[d.key]
            return 0
        return None


# -- the fates of one call -----------------------------------------------------------


@dataclass(slots=True)
class CallPlan:
    """What happens after one call: each update's fate, when the call is sent again, and
    what the limiter and the account are told."""

    fates: dict[str, Fate] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds before the updates with a :data:`SENT_AGAIN` fate are sent again."""
    slow: bool = False
    """A throttling row answered: slow the limiter down."""
    hold: float | None = None
    """Seconds the limiter holds every call (a throttling row's Retry-After)."""
    park: Decision | None = None
    """Park the account with this decision."""
    retrying: list[tuple[str, RetrySpec]] = field(default_factory=list)
    """Updates of ``retry`` rows, settled by :func:`settle_retries`."""


Draw = Callable[[], float]
"""A random number in [0, 1) (the jitter of a retry delay)."""


def plan_call(
    answers: Sequence[tuple[str, Decision | None]],
    n: int,
    spec: Callable[[Decision], RetrySpec],
    draw: Draw,
    adjust: dict[str, Decision],
) -> CallPlan:
    """The first fates of a call's updates (key, decision; None: ok) after attempt ``n``.
    ``adjust`` rows with a quantity re-send once (recorded in ``adjust``); retries and
    refusals of the token are settled later (:func:`settle_retries`, :func:`settle_auth`)."""
    plan = CallPlan()
    for key, dec in answers:
        if dec is None:
            plan.fates[key] = "ack"
            continue
        cls = dec.error_class
        if cls == "retry":
            s = spec(dec)
            plan.delay = max(plan.delay, s.delay(n, draw(), dec.retry_after_s))
            plan.retrying.append((key, s))
            if dec.slow_down:
                plan.slow = True
                if dec.retry_after_s is not None:
                    plan.hold = max(plan.hold or 0.0, dec.retry_after_s)
        elif cls == "refresh-auth":
            plan.fates[key] = "refresh"
        elif cls == "adjust":
            again = dec.quantity is not None and key not in adjust
            if again:
                adjust[key] = dec
            plan.fates[key] = "resend" if again else "manual"
        elif cls == "park-account":
            plan.fates[key] = "park-account"
            plan.park = plan.park or dec
        else:  # park-listing, manual
            plan.fates[key] = cls
    return plan


def settle_retries(plan: CallPlan, n: int, elapsed_s: float) -> None:
    """``retry`` or ``give-up`` for the updates of retry rows, ``elapsed_s`` into the call."""
    for key, s in plan.retrying:
        plan.fates[key] = "give-up" if s.gives_up(n, elapsed_s, plan.delay) else "retry"


AuthResult = Literal["ok", "refused", "unreachable"]


def refreshing(plan: CallPlan) -> list[str]:
    """The updates refused for their token, in call order."""
    return [k for k, f in plan.fates.items() if f == "refresh"]


def settle_auth(
    plan: CallPlan,
    keys: Sequence[str],
    result: AuthResult,
    refusal: Decision | None,
    reauthed: set[str],
    decisions: Mapping[str, Decision],
    n: int,
    spec: Callable[[Decision], RetrySpec],
    draw: Draw,
    elapsed_s: Callable[[], float],
) -> None:
    """The fates of the updates refused for their token (``keys``) after a forced
    refresh answered ``result``: re-sent once (noted in ``reauthed``), retried while
    the token endpoint is unreachable, else the account parks (with the refusal's
    decision when it parks, else the update's own)."""
    for key in keys:
        if result == "ok" and key not in reauthed:
            reauthed.add(key)
            plan.fates[key] = "resend"
        elif result == "unreachable" and refusal is not None and refusal.retry:
            s = spec(refusal)
            plan.delay = max(plan.delay, s.delay(n, draw()))
            gone = s.gives_up(n, elapsed_s(), plan.delay)
            plan.fates[key] = "give-up" if gone else "retry"
        else:
            plan.fates[key] = "park-account"
            reauthed.discard(key)
            if plan.park is None:
                refused = refusal is not None and refusal.error_class == "park-account"
                plan.park = refusal if refused and refusal is not None else decisions[key]

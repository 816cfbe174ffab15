"""One channel account's sending: newest quantity per listing, in order, within its limits.

Owns :class:`AccountPusher` and the values it works with: :class:`Desired`
(the newest desired quantity of a listing and the desired-topic offsets it
answers for), :class:`Attempt` and :func:`push_result` (the push-results
record of one update in one call), and the :class:`Sink` protocol through
which a pusher hands results back (:class:`syncd.publish.stage.PublishService`
writes them to Kafka).

Rules (docs/publisher.md):

- many records for a listing, one call: a newer quantity replaces the
  pending one; a quantity equal to the last acknowledged one is not sent;
- send order: stock-outs (quantity 0), then decreases, then increases, each
  against the last acknowledged quantity (unknown counts as a decrease);
  first-come within a class; the next call is chosen after the limiter lets
  it start, so it is always the most urgent work at that moment;
- never two calls for one listing at the same time;
- up to ``max_in_flight`` calls per account, each started through the
  account's limiter (:mod:`syncd.publish.limits`), retries included;
- every failed outcome (transport errors included) is classified with the
  error table (:mod:`syncd.core.errortable`) and handled by its class: ``retry``
  (tenacity, the row's jittered backoff and bounds, Retry-After honoured, the
  limiter slowed for throttling rows; after the bound: final, a manual action,
  and the next retry pass), ``refresh-auth`` (force a token refresh, re-send
  once, else park the account), ``park-account`` (stop sending, keep the newest
  quantities, probe, flush when it clears), ``park-listing`` (hold the listing,
  probe it), ``adjust`` (re-send with at least the captured minimum / held
  units), ``manual`` (final, a manual action);
- manual actions are grouped per (account, row action) by
  :class:`syncd.core.actions.ActionBook` and handed to an action writer; a later
  success (or the account's unparking) resolves them;
- reconciliation (``[publish] reconcile_interval_s``, docs/reconciliation.md):
  settled listings are read back within the account's limiter and a share of its
  rate; :func:`syncd.core.reconcile.check` says what a read means (a drift is pushed
  again, a persisting one opens an action); :meth:`AccountPusher.restore` takes
  back the open actions, parked account and held listings after a restart;
- every attempt is recorded; cancellation is never caught.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never

from syncd.channels.base import (
    NO_RESULT,
    Channel,
    ChannelAuthError,
    ChannelTransportError,
    PushOutcome,
    StockUpdate,
    fail_all,
    failure,
)
from syncd.config.error_table import default_table
from syncd.core.actions import Action, ActionBook
from syncd.core.errortable import Decision, ErrorTable, RetrySpec
from syncd.core.reconcile import READ_BACK_CODES, Drift, Settings, check
from syncd.errors import ChannelError
from syncd.obs import metrics
from syncd.publish.limits import AccountLimits, Limiter, RetryPolicy
from syncd.records import Desired, PushResult, action_of

__all__ = [
    "INTERNAL_ERROR",
    "AccountPusher",
    "ActionWriter",
    "Attempt",
    "Desired",
    "Sink",
    "push_result",
]

log = structlog.get_logger("syncd.publish.pusher")

INTERNAL_ERROR = "syncd.internal_error"
"""The channel client raised an unexpected exception (a bug); the update is handed over."""

STOCK_OUT, DECREASE, INCREASE = 0, 1, 2
"""Send classes, in send order."""

AUTH_PROBE_S = 3600.0
"""Probe interval of an account parked because its token could not be refreshed, when
the refusal's own row gives none."""
PROBE_TICK_S = 0.05

ActionWriter = Callable[[Sequence[tuple[str, dict[str, Any]]]], Awaitable[None]]
"""Writes manual-action records (key, value) to ``topics.actions``."""


# -- values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One update's share of one call, as written to push-results."""

    desired: Desired
    outcome: PushOutcome
    attempt: int
    latency_ms: float
    at_ms: int
    final: bool
    """No further attempt follows for this quantity (ok, permanent, or retries ran out)."""
    write_acked: bool
    """Record the quantity in the acked topic (ok, and the listing is still linked)."""
    sent: int | None = None
    """The quantity sent when an ``adjust`` row changed it (else the desired one)."""
    decision: Decision | None = None
    """The error table's decision for a failed outcome."""
    held: int | None = None
    """Units the platform holds for a campaign (``adjust`` / ``hold``); 0: the hold ended.
    The sink hands changes to the compute stage (``topics.holds``), where they leave
    every other channel's available stock."""
    min_quantity: int | None = None
    """The minimum the platform demands (``adjust`` / ``min_quantity``)."""

    @property
    def quantity(self) -> int:
        return self.desired.quantity if self.sent is None else self.sent

    @property
    def source_ts(self) -> int | None:
        return self.desired.source_ts

    @property
    def result_class(self) -> str:
        """``ok``, else the error table's class of the failure (``unclassified``: none)."""
        if self.outcome.ok:
            return "ok"
        return self.decision.error_class if self.decision is not None else "unclassified"


def push_result(account: str, a: Attempt) -> PushResult:
    """The push-results record of one attempt."""
    d, o, dec = a.desired, a.outcome, a.decision
    return PushResult(
        account,
        d.listing_ref,
        d.sku,
        a.quantity,
        o.ok,
        a.attempt,
        o.http_status,
        o.code,
        o.message,
        round(a.latency_ms, 1),
        d.source_ts,
        a.at_ms if o.ok else None,
        a.final,
        dec is not None and dec.error_class == "retry",
        d.quantity if a.quantity != d.quantity else None,
        a.held,
        a.min_quantity,
        dec.error_class if dec is not None else None,
        dec.row.id if dec is not None else None,
        dec.action if dec is not None else None,
    )


class Sink(Protocol):
    """Where a pusher hands its results (the service: Kafka; tests may keep them in memory)."""

    async def record(
        self, account: str, partition: int, attempts: Sequence[Attempt]
    ) -> Awaitable[None]:
        """Hand the attempts over for writing (push-results, and acked for successes).

        Returns once they are queued, in call order; the returned awaitable completes
        once they are durable (and raises if writing failed).
        """
        ...

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        """These desired-topic offsets need nothing more from this process."""
        ...


class _Again(Exception):
    """Some updates of a call may succeed on another attempt after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.3f}s")
        self.delay = delay


def _again(state: RetryCallState) -> _Again | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc if isinstance(exc, _Again) else None


def _wait(state: RetryCallState) -> float:
    again = _again(state)
    return again.delay if again is not None else 0.0


# -- one account -----------------------------------------------------------------


@dataclass(slots=True)
class _Park:
    """Why and until when an account (or a listing) is parked."""

    decision: Decision
    next_probe: float
    desired: Desired | None = None
    """For a held listing: its newest quantity."""


_SENT_AGAIN = frozenset({"retry", "resend"})
"""Fates after which the same call is tried again."""


class AccountPusher:
    """Sends one account's newest desired quantities, in order, within its limits."""

    def __init__(
        self,
        account: str,
        partition: int,
        channel: Channel,
        limiter: Limiter,
        limits: AccountLimits,
        retry: RetryPolicy | None,
        sink: Sink,
        *,
        acked: Mapping[str, int] | None = None,
        retry_pass_s: float = 60.0,
        table: ErrorTable | None = None,
        actions: ActionWriter | None = None,
        auth_probe_s: float = AUTH_PROBE_S,
        reconcile: Settings | None = None,
    ) -> None:
        self.account = account
        self.partition = partition
        self.channel = channel
        self.limiter = limiter
        self.limits = limits
        self.retry = retry
        """Caps every row's retry spec when given (tests); None: the rows alone."""
        self.sink = sink
        self.retry_pass_s = retry_pass_s
        self.table = table if table is not None else default_table()
        self.platform = channel.platform
        self.write_actions = actions
        self.auth_probe_s = auth_probe_s
        self.reconcile_settings = reconcile
        self.book = ActionBook(account)
        self.pending: dict[str, Desired] = {}
        self.inflight: dict[str, Desired] = {}
        self.acked: dict[str, int] = dict(acked or {})
        self.parked: dict[str, Desired] = {}
        """Retries ran out: sent again by the next retry pass unless a newer record comes."""
        self.account_park: _Park | None = None
        """The account is parked (``park-account``): only probes are sent."""
        self.held: dict[str, _Park] = {}
        """Listings held by a ``park-listing`` row, each probed on its own."""
        self.known: dict[str, Desired] = {}
        """The last acknowledged value of each listing (its listing object for read-back)."""
        self.acked_at: dict[str, float] = {}
        """When each listing was last acknowledged (epoch seconds)."""
        self.drift: dict[str, Drift] = {}
        """Listings whose read-back differs from the acknowledged quantity."""
        self.counts: Counter[str] = Counter()
        self._queues: tuple[dict[str, None], ...] = ({}, {}, {})
        self._class: dict[str, int] = {}
        self._unlinked: set[str] = set()
        self._adjust: dict[str, Decision] = {}
        """Listings whose next send is adjusted (``adjust`` rows), until acknowledged."""
        self.campaign_holds: dict[str, int] = {}
        """Listing -> units the platform holds for a campaign, as last learned; the hold
        ends when the platform accepts a quantity below it."""
        self._reauthed: set[str] = set()
        """Listings re-sent after a forced token refresh (a second refusal parks)."""
        self._probe_due = False
        self._probe_key: str | None = None
        self._rng = random.Random()
        self._work = asyncio.Event()
        self._admit = asyncio.Lock()
        """Held by the sender waiting for the limiter to start the next call."""
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._write_error: BaseException | None = None
        self._window = max(64, 2 * channel.max_batch)
        self._log = log.bind(account=account, partition=partition)
        self._limiter_wait = metrics.limiter_wait(account)

    # -- intake (synchronous: called by the consumer loop) ---------------------

    def offer(self, d: Desired) -> None:
        """Take a newer desired quantity for a listing (it replaces any pending one)."""
        self._unlinked.discard(d.key)
        self.parked.pop(d.key, None)
        held = self.held.get(d.key)
        if held is not None:  # handed over while held: keep only the newest quantity
            self.sink.resolve(self.partition, d.offsets)
            d.offsets = []
            held.desired = d
            self.counts["coalesced"] += 1
            return
        old = self.pending.get(d.key)
        if old is not None:
            d.offsets = old.offsets + d.offsets
            self.counts["coalesced"] += 1
        if self.account_park is not None:  # parked: handed over, kept for the flush
            self.sink.resolve(self.partition, d.offsets)
            d.offsets = []
        self.pending[d.key] = d
        self._place(d.key)

    def unlink(self, key: str) -> list[int]:
        """The listing left the catalog: drop what is queued; returns the offsets that frees."""
        self.acked.pop(key, None)
        self.known.pop(key, None)
        self.acked_at.pop(key, None)
        self.drift.pop(key, None)
        self.parked.pop(key, None)
        self.held.pop(key, None)
        self._adjust.pop(key, None)
        offsets = self._drop_pending(key).offsets if key in self.pending else []
        if key in self.inflight:
            self._unlinked.add(key)
        return offsets

    @property
    def idle(self) -> bool:
        """Nothing in flight or waiting to be written, and nothing queued that may be sent
        now (a parked account's quantities wait for its probe)."""
        if self.inflight or self._writes:
            return False
        return not self.pending or (self.account_park is not None and not self._probe_due)

    # -- for the stage, the admin server and the metrics ------------------------------

    def use_table(self, table: ErrorTable) -> None:
        """Classify with ``table`` from now on (a reloaded error table)."""
        self.table = table

    def drop_queued(self) -> int:
        """Drop every queued (not in flight) update unsent; returns how many (on stop:
        their offsets stay uncommitted, so the next owner sends them)."""
        keys = list(self.pending)
        for key in keys:
            self._drop_pending(key)
        return len(keys)

    def probe_now(self) -> None:
        """A parked account probes at the prober's next tick (an operator's Retry)."""
        if self.account_park is not None:
            self.account_park.next_probe = 0.0

    def retry_now(self, listing_ref: str) -> str:
        """Send the newest kept quantity of a listing again now (an operator's Retry);
        says what happened: ``already_queued``, ``requeued`` (retries had run out),
        ``probe_now`` (a held listing, probed at the next tick) or ``no_quantity_kept``
        (a manual row keeps nothing: the next newer record sends it)."""
        key = f"{self.account}/{listing_ref}"
        held = self.held.get(key)
        if key in self.pending or key in self.inflight:
            return "already_queued"
        if key in self.parked:  # retries ran out: what the retry pass would do
            self.offer(self.parked[key])
            return "requeued"
        if held is not None and held.desired is not None:
            held.next_probe = 0.0  # the prober sends its newest quantity at its next tick
            return "probe_now"
        return "no_quantity_kept"

    def parked_by(self) -> Decision | None:
        """The decision the account is parked with, else None."""
        return self.account_park.decision if self.account_park is not None else None

    def queue_depth(self) -> int:
        """Listings with a quantity waiting to be sent."""
        return len(self.pending)

    def open_actions_by_class(self) -> Counter[str]:
        """Open manual actions, by the error table's class."""
        return Counter(a.error_class for a in self.book.open_actions())

    def _place(self, key: str) -> None:
        d = self.pending[key]
        if key not in self.inflight and self.acked.get(key) == d.quantity:
            self._drop_pending(key)  # the platform already holds it
            self.sink.resolve(self.partition, d.offsets)
            self.counts["unchanged"] += 1
            return
        if d.quantity <= 0:
            cls = STOCK_OUT
        else:
            last = self.acked.get(key)
            cls = DECREASE if last is None or d.quantity < last else INCREASE
        prev = self._class.get(key)
        if prev != cls:
            if prev is not None:
                del self._queues[prev][key]
            self._queues[cls][key] = None
            self._class[key] = cls
        self._work.set()

    def _drop_pending(self, key: str) -> Desired:
        d = self.pending.pop(key)
        cls = self._class.pop(key, None)
        if cls is not None:
            del self._queues[cls][key]
        return d

    def _sendable(self) -> bool:
        if self.account_park is not None and not self._probe_due:
            return False
        return len(self.pending) > sum(1 for k in self.inflight if k in self.pending)

    def _pick(self) -> list[Desired]:
        """The next call's updates: the first batch of the most urgent class (while the
        account is parked: one listing, the probe)."""
        probe = self.account_park is not None
        if probe and not self._probe_due:
            return []
        for queue in self._queues:
            cands: list[Desired] = []
            for key in queue:
                if key not in self.inflight:  # never two calls for one listing at once
                    cands.append(self.pending[key])
                    if len(cands) >= self._window or probe:
                        break
            if not cands:
                continue
            by_ref = {d.listing_ref: d for d in cands}
            first = self.channel.batches([self._update(d) for d in cands])[0]
            picked = [by_ref[u.listing_ref] for u in first]
            for d in picked:
                self._drop_pending(d.key)
                self.inflight[d.key] = d
            if probe:
                self._probe_due = False
                self._probe_key = picked[0].key
                self._log.info("account_probe", listing=picked[0].listing_ref)
            return picked
        return []

    def _update(self, d: Desired) -> StockUpdate:
        """The update to send: the desired quantity, raised by an ``adjust`` decision."""
        return StockUpdate(d.listing, d.listing_ref, self._sent(d))

    def _campaign_hold(self, d: Desired, ok: bool, adj: Decision | None) -> int | None:
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

    def _sent(self, d: Desired) -> int:
        dec = self._adjust.get(d.key)
        if dec is None or dec.quantity is None:
            return d.quantity
        return max(d.quantity, dec.quantity)

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        name = self.account
        for i in range(self.limits.max_in_flight):
            self._tasks.append(asyncio.create_task(self._sender(), name=f"push-{name}-{i}"))
        if self.retry_pass_s > 0:
            self._tasks.append(asyncio.create_task(self._retry_pass(), name=f"retry-{name}"))
        self._tasks.append(asyncio.create_task(self._prober(), name=f"probe-{name}"))
        if self.reconcile_settings is not None and self.reconcile_settings.interval_s > 0:
            task = asyncio.create_task(self._reconciler(), name=f"reconcile-{name}")
            self._tasks.append(task)

    async def stop(self, drain_s: float = 0.0) -> None:
        """Let queued work finish for up to ``drain_s`` seconds, then cancel what is left."""
        deadline = time.monotonic() + drain_s
        while True:
            if self.idle or time.monotonic() >= deadline or self.error() is not None:
                break
            await asyncio.sleep(0.02)
        tasks = [*self._tasks, *self._writes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def error(self) -> BaseException | None:
        """The exception a task of this pusher died of, if any."""
        if self._write_error is not None:
            return self._write_error
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    async def _retry_pass(self) -> None:
        while True:
            await asyncio.sleep(self.retry_pass_s)
            parked, self.parked = self.parked, {}
            for key, d in parked.items():
                if key not in self.pending and key not in self.inflight and key not in self.held:
                    self.pending[key] = d
                    self._place(key)
            if parked:
                self._log.info("retry_pass", listings=len(parked))

    async def _prober(self) -> None:
        """Schedules the probes of a parked account and of held listings."""
        while True:
            await asyncio.sleep(PROBE_TICK_S)
            now = time.monotonic()
            park = self.account_park
            if (
                park is not None
                and not self._probe_due
                and self._probe_key is None
                and now >= park.next_probe
            ):
                if any(k not in self.inflight for k in self.pending):
                    self._probe_due = True
                    self._work.set()
                else:  # nothing to probe with: look again after the interval
                    park.next_probe = now + self._probe_every(park.decision)
            for key, h in list(self.held.items()):
                if now >= h.next_probe:
                    del self.held[key]
                    if h.desired is not None and key not in self.pending:
                        self._log.info("listing_probe", listing=h.desired.listing_ref)
                        self.pending[key] = h.desired
                        self._place(key)

    def _probe_every(self, decision: Decision) -> float:
        return decision.probe_every_s if decision.probe_every_s is not None else self.auth_probe_s

    # -- reconciliation and restore (docs/reconciliation.md) -------------------------

    async def _reconciler(self) -> None:
        rc = self.reconcile_settings
        assert rc is not None
        budget = AsyncLimiter(1, 1 / rc.read_rate_per_s)  # the read share of the rate
        while True:
            await asyncio.sleep(rc.interval_s)
            await self.reconcile(budget)

    async def reconcile(self, budget: AsyncLimiter) -> None:
        """Read back every settled listing (acknowledged, or whose retries ran out), each
        call through ``budget`` and the account's limiter, and act on what it shows."""
        rc = self.reconcile_settings
        assert rc is not None
        busy = self.pending.keys() | self.inflight.keys() | self.held.keys()
        todo = {k: d for k, d in self.known.items() if k not in busy}
        todo.update(self.parked)
        keys = list(todo)
        for i in range(0, len(keys), rc.listings_per_read):
            if self.account_park is not None:
                return  # a parked account gets only probes
            part = [todo[k] for k in keys[i : i + rc.listings_per_read]]
            await budget.acquire()
            await self.limiter.acquire()
            try:
                read = await self.channel.read_stock([d.listing for d in part])
            except ChannelError as e:
                self._log.warning("reconcile_read_failed", code=e.code, listings=len(part))
                continue
            finally:
                self.limiter.done(self.channel)
            self.counts["reconcile_reads"] += 1
            await self._reconciled(part, read)

    async def _reconciled(self, part: list[Desired], read: Mapping[str, int]) -> None:
        rc = self.reconcile_settings
        assert rc is not None
        now = time.time()
        now_ms = int(now * 1000)
        changed: list[str] = []
        for d in part:
            key = d.key
            if key in self.pending or key in self.inflight or key in self.held:
                continue  # changed while reading: its own send decides
            parked = self.parked.get(key)
            old = self.drift.get(key)
            c = check(
                self.acked.get(key),
                self.acked_at.get(key),
                read.get(d.listing_ref),
                now,
                delay_s=rc.delay_s,
                persist_s=rc.persist_s,
                drift=old,
                desired=parked.quantity if parked is not None else None,
            )
            self.counts["reconcile_" + c.verdict] += 1
            if c.drift is None:
                self.drift.pop(key, None)
            else:
                self.drift[key] = c.drift
            if c.verdict == "adopt" or (c.verdict == "ok" and old is not None and old.opened):
                changed += self.book.cleared(d.listing_ref, now_ms)
            if c.verdict == "adopt":
                del self.parked[key]
                self.acked[key], self.acked_at[key] = d.quantity, now
                self.known[key] = d
            elif c.verdict in ("drift", "push", "action"):
                self._log.info(
                    "read_back_drift",
                    listing=d.listing_ref,
                    acked=self.acked.get(key),
                    read=c.drift.read if c.drift else None,
                    verdict=c.verdict,
                )
            if c.verdict == "push":  # the platform holds another value: send ours again
                self.acked[key] = read[d.listing_ref]
                self.pending[key] = Desired(key, d.listing, d.listing_ref, d.sku, d.quantity, None)
                self._place(key)
            elif c.verdict == "action":
                outcome = PushOutcome(d.listing_ref, False, None, c.code, c.message, None, None)
                dec = self.table.classify(
                    self.platform, outcome, sku=d.sku, listing=d.listing_ref, account=self.account
                )
                if old is None or not old.opened:
                    changed.append(self.book.open(dec, d.listing_ref, now_ms))
                if dec.error_class == "park-listing":  # the probe sends it again
                    self.acked[key] = read[d.listing_ref]
                    self.held[key] = _Park(dec, time.monotonic() + self._probe_every(dec), d)
        await self._write_actions(changed)

    def restore(self, records: Iterable[Mapping[str, Any]], desired: Mapping[str, Desired]) -> None:
        """After a restart or a rebalance, before :meth:`start`: take back this account's
        open actions (values of ``topics.actions``), park the account or hold the listings
        their class says, and keep the newest desired quantities (``desired``: the
        account's desired records, newest per key) for read-back and for the flush."""
        for key, d in desired.items():
            if self.acked.get(key) == d.quantity:
                self.known[key] = d
        now = time.monotonic()
        rc = self.reconcile_settings
        reading = rc is not None and rc.interval_s > 0  # else an acknowledgement clears
        for r in records:
            a = action_of(self.account, r)
            self.book.actions[a.action] = a
            dec = self._restored_decision(a)
            if dec is None:
                continue
            if dec.error_class == "park-account":
                self.account_park = _Park(dec, now + self._probe_every(dec))
                self.counts["account_parked"] += 1
                self._log.warning("account_parked_restored", row=dec.row.id, action=a.action)
            elif dec.error_class == "park-listing":
                for ref in a.listings:
                    key = f"{self.account}/{ref}"
                    self.held[key] = _Park(dec, now + self._probe_every(dec), desired.get(key))
                    if dec.code in READ_BACK_CODES:  # the platform does not show it: send
                        self.acked.pop(key, None)
                        if reading:  # a matching read-back clears the action
                            self.drift[key] = Drift(time.time(), 0, pushed=True, opened=True)
        if self.account_park is not None:  # the flush: what the platform does not hold
            for key, d in desired.items():
                if key not in self.held and self.acked.get(key) != d.quantity:
                    self.pending[key] = d
                    self._place(key)

    def _restored_decision(self, a: Action) -> Decision | None:
        """The decision an action record was opened with: the first row of this platform
        (then ``*``) with its action name and class, with the record's hint."""
        rows = sorted(self.table.rows, key=lambda r: r.platform != self.platform)
        for row in rows:
            same = row.action == a.action and row.error_class == a.error_class
            if same and row.platform in (self.platform, "*"):
                codes = sorted(row.code or ())
                code = next((c for c in codes if c in READ_BACK_CODES), codes[0] if codes else None)
                return Decision(
                    row,
                    self.platform,
                    code,
                    {},
                    a.hint,
                    row.default,
                    None,
                    None,
                    row.error_class,
                    row.action,
                    row.retry,
                    row.slow_down,
                    row.probe_every_s,
                    row.adjust,
                )
        return None

    async def _sender(self) -> None:
        while True:
            if not self._sendable():
                self._work.clear()
                await self._work.wait()
                continue
            async with self._admit:  # one idle sender at a time waits for the limiter:
                if not self._sendable():  # senders woken together must not spend the
                    continue  # account's rate on calls with nothing to send
                await self._acquire()
                batch = self._pick()  # chosen after the wait: the freshest and most urgent
            if not batch:
                self.limiter.done(self.channel)
                continue
            await self._send(batch)

    # -- sending -------------------------------------------------------------------

    async def _acquire(self) -> None:
        """Wait until the limiter lets a call start (the wait is ``syncd_limiter_wait_seconds``)."""
        t0 = time.monotonic()
        await self.limiter.acquire()
        self._limiter_wait.observe(time.monotonic() - t0)

    async def _send(self, batch: list[Desired]) -> None:
        todo = batch
        started = time.monotonic()
        # The attempt itself decides when to give up (it must say so in push-results), so
        # tenacity runs the loop and the jittered sleeps; only _Again is ever retried:
        # cancellation and every other exception go straight through.
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Again), stop=stop_never, wait=_wait, reraise=True
        )
        async for att in retrying:
            with att:
                n = att.retry_state.attempt_number
                if n > 1:
                    todo = self._refresh(todo)
                    if not todo:
                        return
                    await self._acquire()
                todo, delay = await self._attempt(todo, n, started)
                if todo:
                    raise _Again(delay)

    def _refresh(self, todo: list[Desired]) -> list[Desired]:
        """Before a retry: send the newest quantity of each listing, drop unlinked ones."""
        out = []
        for d in todo:
            key = d.key
            if key in self._unlinked:
                self._unlinked.discard(key)
                self._drop_probe(key)
                del self.inflight[key]
                self.sink.resolve(self.partition, d.offsets)
                continue
            if key in self.pending:
                newer = self._drop_pending(key)
                newer.offsets = d.offsets + newer.offsets
                d = newer
                self.inflight[key] = d
                if self.acked.get(key) == self._sent(d):
                    self._drop_probe(key)
                    del self.inflight[key]
                    self.sink.resolve(self.partition, d.offsets)
                    self.counts["unchanged"] += 1
                    continue
            out.append(d)
        return out

    def _drop_probe(self, key: str) -> None:
        """The probe's listing needs no more sending: the next probe may be scheduled."""
        if key == self._probe_key:
            self._probe_key = None

    def _spec(self, decision: Decision) -> RetrySpec:
        assert decision.retry is not None  # a retry row always has one (validated)
        return self.retry.bound(decision.retry) if self.retry is not None else decision.retry

    async def _reauthorize(self) -> tuple[str, Decision | None]:
        """Force a token refresh: ``("ok", None)``, ``("refused", decision of the
        refusal)`` or ``("unreachable", decision)``."""
        try:
            if not await self.channel.reauthorize():
                return "refused", None
        except ChannelAuthError as e:
            o = PushOutcome(
                "", False, e.http_status, e.platform_code, e.platform_message, None, None
            )
            return "refused", self.table.classify(self.platform, o, account=self.account)
        except ChannelTransportError as e:
            return "unreachable", self.table.classify(self.platform, e.code, account=self.account)
        self.counts["token_refreshed"] += 1
        return "ok", None

    async def _attempt(
        self, todo: list[Desired], n: int, started: float
    ) -> tuple[list[Desired], float]:
        """One call; records every outcome; handles each failure by its error-table class;
        returns the updates to send again and when."""
        t0 = time.monotonic()
        updates = [self._update(d) for d in todo]
        try:
            outcomes = await self.channel.push(updates)
        except ChannelTransportError as e:
            outcomes = fail_all(updates, None, e.code, e.message)
        except Exception as e:  # a client bug must not block the account: hand it over
            self._log.exception("push_internal_error", listings=len(todo))
            outcomes = fail_all(updates, None, INTERNAL_ERROR, type(e).__name__)
        finally:
            self.limiter.done(self.channel)
        latency_ms = (time.monotonic() - t0) * 1000
        self.counts["calls"] += 1
        by_ref = {o.listing_ref: o for o in outcomes}
        missing = "the client returned no outcome for this update"
        pairs = [
            (d, by_ref.get(d.listing_ref) or failure(u, None, NO_RESULT, missing))
            for d, u in zip(todo, updates, strict=True)
        ]
        decisions: dict[str, Decision] = {
            d.key: self.table.classify(
                self.platform, o, sku=d.sku, listing=d.listing_ref, account=self.account
            )
            for d, o in pairs
            if not o.ok
        }
        fates, delay, park = await self._fates(pairs, decisions, n, started)
        now_ms = int(time.time() * 1000)
        attempts = []
        for d, o in pairs:
            dec = decisions.get(d.key)
            adj = self._adjust.get(d.key)
            if dec is not None and dec.error_class == "adjust":
                adj = dec
            held = self._campaign_hold(d, o.ok, adj)
            attempts.append(
                Attempt(
                    d,
                    o,
                    n,
                    latency_ms,
                    now_ms,
                    fates[d.key] not in _SENT_AGAIN,
                    o.ok and d.key not in self._unlinked,
                    self._sent(d),
                    dec,
                    held,
                    adj.quantity if adj is not None and adj.adjust == "min_quantity" else None,
                )
            )
        durable = await self.sink.record(self.account, self.partition, attempts)
        settled: list[int] = []  # offsets resolved once the results are durable
        retry: list[Desired] = []
        changed: list[str] = []
        probed = False
        for d, o in pairs:
            fate = fates[d.key]
            dec = decisions.get(d.key)
            if d.key == self._probe_key and fate not in _SENT_AGAIN:
                self._probe_key = None
                probed = True
            if fate == "ack":
                self._adjust.pop(d.key, None)
                self._reauthed.discard(d.key)
                settled += self._acknowledged(d, self._sent(d))
                drift = self.drift.get(d.key)
                if drift is None or not drift.opened:  # else: cleared by a matching read-back
                    changed += self.book.cleared(d.listing_ref, now_ms)
                continue
            assert dec is not None
            if fate in _SENT_AGAIN:
                retry.append(d)
                self.counts["retried" if fate == "retry" else "resent"] += 1
                self._log.info(
                    "push_retry",
                    listing=d.listing_ref,
                    attempt=n,
                    code=o.code,
                    http_status=o.http_status,
                    row=dec.row.id,
                    delay_s=round(delay, 3),
                )
                continue
            settled += self._failed(d, o, n, fate, dec)
            cause = park if fate == "park-account" and park is not None else dec
            changed.append(self.book.open(cause, d.listing_ref, now_ms))
        if park is not None:
            self._park(park)
        elif self.account_park is not None and (any(f == "ack" for f in fates.values()) or probed):
            changed += self._unpark(now_ms)
        self._settle(durable, settled)
        await self._write_actions(changed)
        return retry, delay

    async def _read_held(self, d: Desired, dec: Decision) -> Decision:
        """A campaign refusal without a number (Shopee's reserved-stock messages): read the
        held units back (one call through the limiter); unreadable or none: ``dec`` as is."""
        await self._acquire()
        try:
            held = (await self.channel.read_held([d.listing])).get(d.listing_ref)
        except ChannelError as e:
            self._log.warning("held_read_failed", code=e.code, listing=d.listing_ref)
            held = None
        finally:
            self.limiter.done(self.channel)
        if not held:
            return dec
        self._log.info("held_read_back", listing=d.listing_ref, held=held, row=dec.row.id)
        return dataclasses.replace(dec, quantity=held)

    async def _fates(
        self,
        pairs: list[tuple[Desired, PushOutcome]],
        decisions: dict[str, Decision],
        n: int,
        started: float,
    ) -> tuple[dict[str, str], float, Decision | None]:
        """What happens to each update of a call: ``ack``, ``retry`` / ``resend`` (this
        call again after the returned delay), ``give-up`` (retries ran out: final, manual
        action, retry pass), ``manual``, ``park-listing``, ``park-account``; and the
        decision to park the account with, if any."""
        fates: dict[str, str] = {}
        delay = 0.0
        hold: float | None = None
        slow = False
        park: Decision | None = None
        retrying: list[tuple[str, RetrySpec]] = []
        for d, o in pairs:
            if o.ok:
                fates[d.key] = "ack"
                continue
            dec = decisions[d.key]
            cls = dec.error_class
            if cls == "retry":
                spec = self._spec(dec)
                delay = max(delay, spec.delay(n, self._rng.random(), dec.retry_after_s))
                retrying.append((d.key, spec))
                if dec.slow_down:
                    slow = True
                    if dec.retry_after_s is not None:
                        hold = max(hold or 0.0, dec.retry_after_s)
            elif cls == "refresh-auth":
                fates[d.key] = "refresh"
            elif cls == "adjust":
                if dec.quantity is None and dec.adjust == "hold":
                    dec = decisions[d.key] = await self._read_held(d, dec)
                again = dec.quantity is not None and d.key not in self._adjust
                if again:
                    self._adjust[d.key] = dec
                fates[d.key] = "resend" if again else "manual"
            elif cls == "park-account":
                fates[d.key] = "park-account"
                park = park or dec
            else:  # park-listing, manual
                fates[d.key] = cls
        if slow:
            self.limiter.slow_down()
            if hold is not None:
                self.limiter.hold(hold)
        elapsed = time.monotonic() - started
        for key, spec in retrying:
            fates[key] = "give-up" if spec.gives_up(n, elapsed, delay) else "retry"
        auth = [d.key for d, _ in pairs if fates.get(d.key) == "refresh"]
        if auth:
            first = [k for k in auth if k not in self._reauthed]
            result, refusal = await self._reauthorize() if first else ("refused", None)
            for key in auth:
                if result == "ok" and key not in self._reauthed:
                    self._reauthed.add(key)
                    fates[key] = "resend"
                elif result == "unreachable" and refusal is not None and refusal.retry:
                    spec = self._spec(refusal)
                    delay = max(delay, spec.delay(n, self._rng.random()))
                    gone = spec.gives_up(n, time.monotonic() - started, delay)
                    fates[key] = "give-up" if gone else "retry"
                else:
                    fates[key] = "park-account"
                    self._reauthed.discard(key)
                    if park is None:
                        refused = refusal is not None and refusal.error_class == "park-account"
                        park = refusal if refused and refusal is not None else decisions[key]
        return fates, delay, park

    def _park(self, decision: Decision) -> None:
        first = self.account_park is None
        self.account_park = _Park(decision, time.monotonic() + self._probe_every(decision))
        self._probe_due = False
        if first:
            self.counts["account_parked"] += 1
            self._log.warning(
                "account_parked",
                row=decision.row.id,
                action=decision.action,
                probe_every_s=self._probe_every(decision),
            )
        # what is queued is handed over: kept for the flush, no longer holding commits
        for d in self.pending.values():
            if d.offsets:
                self.sink.resolve(self.partition, d.offsets)
                d.offsets = []

    def _unpark(self, now_ms: int) -> list[str]:
        park = self.account_park
        if park is None:
            return []
        self.account_park = None
        self._probe_due = False
        self._probe_key = None
        self.counts["account_unparked"] += 1
        self._log.info("account_unparked", row=park.decision.row.id, pending=len(self.pending))
        self._work.set()  # flush the newest quantities
        return self.book.resolve(park.decision.action, now_ms)

    async def _write_actions(self, ids: list[str]) -> None:
        if not ids:
            return
        records = self.book.records(ids)
        for _key, value in records:
            self._log.info(
                "action_" + value["state"],
                action=value["action"],
                listings=len(value["listings"]),
                count=value["count"],
            )
        if self.write_actions is not None:
            await self.write_actions(records)

    def _settle(self, durable: Awaitable[None], offsets: list[int]) -> None:
        """Resolve ``offsets`` once the results that answer for them are durable.

        The sender does not wait for the write: its next call starts at once.
        """

        async def settle() -> None:
            await durable
            self.sink.resolve(self.partition, offsets)

        task = asyncio.create_task(settle(), name=f"settle-{self.account}")
        self._writes.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None and self._write_error is None:
            self._write_error = task.exception()
            self._log.error("push_results_write_failed", error=repr(task.exception()))

    def _acknowledged(self, d: Desired, sent: int) -> list[int]:
        key = d.key
        del self.inflight[key]
        self.counts["acked"] += 1
        if key in self._unlinked:
            self._unlinked.discard(key)
        else:
            self.acked[key] = sent
            self.acked_at[key] = time.time()
            self.known[key] = Desired(key, d.listing, d.listing_ref, d.sku, sent, d.source_ts)
            if key in self.pending:
                self._place(key)  # re-classify against the new acknowledged quantity
        return d.offsets

    def _failed(self, d: Desired, o: PushOutcome, n: int, fate: str, dec: Decision) -> list[int]:
        """Hand the update over (its offsets are resolved once push-results holds it) and
        keep what its fate needs: the retry pass (``give-up``), the parked account's queue
        (``park-account``) or the held listing (``park-listing``)."""
        key = d.key
        del self.inflight[key]
        self._adjust.pop(key, None)
        self.counts["failed"] += 1
        self._log.warning(
            "push_failed",
            listing=d.listing_ref,
            sku=d.sku,
            quantity=d.quantity,
            attempt=n,
            code=o.code,
            http_status=o.http_status,
            message=o.message,
            row=dec.row.id,
            fate=fate,
        )
        if key in self._unlinked:
            self._unlinked.discard(key)
            return d.offsets
        kept = Desired(d.key, d.listing, d.listing_ref, d.sku, d.quantity, d.source_ts)
        if fate == "park-listing":
            newer = self._drop_pending(key) if key in self.pending else None
            if newer is not None:
                self.sink.resolve(self.partition, newer.offsets)
                newer.offsets = []
            probe = time.monotonic() + self._probe_every(dec)
            self.held[key] = _Park(dec, probe, newer or kept)
        elif fate == "park-account":
            if key not in self.pending:
                self.pending[key] = kept
            self._place(key)
        elif fate == "give-up" and key not in self.pending:
            self.parked[key] = kept
        elif key in self.pending:
            self._place(key)
        return d.offsets

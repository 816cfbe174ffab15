"""The calls of one account: pick, send, classify, retry, record, settle.

Owns :class:`CallRunner`: the sender tasks (up to ``max_in_flight``) that take the next
call's updates from the :class:`~syncd.core.sending.SendQueue` once the account's
limiter lets a call start (so it is always the most urgent work at that moment), send
it, classify every failed answer with the error table and act on it by its class
(:func:`syncd.core.sending.plan_call` says what happens to each update; this module does
the asynchronous part: reading held units back, forcing a token refresh, the tenacity
retry loop with the row's jittered delay), record every attempt in the sink, and resolve
the offsets an update answers for once its results are durable (:class:`Settler`).
Cancellation is never caught.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Mapping

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never

from syncd.channels.base import NO_RESULT, PushOutcome, StockUpdate, fail_all, failure
from syncd.core.errortable import Decision, RetrySpec
from syncd.core.sending import (
    SENT_AGAIN,
    AuthResult,
    CallPlan,
    Desired,
    Fate,
    SendQueue,
    plan_call,
    refreshing,
    settle_auth,
    settle_retries,
)
from syncd.errors import ChannelAuthError, ChannelError, ChannelTransportError
from syncd.obs import metrics
from syncd.publish.parking import Parking
from syncd.publish.readback import ReadBack
from syncd.publish.shared import Shared
from syncd.publish.types import INTERNAL_ERROR, Attempt, RetryCap


class _Again(Exception):
    """Some updates of a call may succeed on another attempt after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.3f}s")
        self.delay = delay


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.delay if isinstance(exc, _Again) else 0.0


def _attempts(
    q: SendQueue,
    pairs: list[tuple[Desired, PushOutcome]],
    decisions: Mapping[str, Decision],
    fates: Mapping[str, Fate],
    n: int,
    latency_ms: float,
    now_ms: int,
) -> list[Attempt]:
    """The push-results of one call (learning the campaign holds its answers show)."""
    attempts = []
    for d, o in pairs:
        dec = decisions.get(d.key)
        adj = q.adjust.get(d.key)
        if dec is not None and dec.error_class == "adjust":
            adj = dec
        held = q.campaign_hold(d, o.ok, adj)
        attempts.append(
            Attempt(
                d,
                o,
                n,
                latency_ms,
                now_ms,
                fates[d.key] not in SENT_AGAIN,
                o.ok and d.key not in q.unlinked,
                q.sent(d),
                dec,
                held,
                adj.quantity if adj is not None and adj.adjust == "min_quantity" else None,
            )
        )
    return attempts


class Settler:
    """What a call's final answers leave behind: the queue and read-back updated, the
    offsets resolved once the results are durable."""

    def __init__(self, shared: Shared, parking: Parking, readback: ReadBack) -> None:
        self.shared = shared
        self.parking = parking
        self.readback = readback
        self.writes: set[asyncio.Task[None]] = set()
        """Settlements waiting for their results to be durable."""
        self.write_error: BaseException | None = None

    def acknowledged(self, d: Desired, sent: int) -> list[int]:
        sh = self.shared
        q = sh.queue
        key = d.key
        del q.inflight[key]
        sh.counts["acked"] += 1
        if key in q.unlinked:
            q.unlinked.discard(key)
        else:
            q.acked[key] = sent
            self.readback.acknowledged(d.kept(sent))
            if key in q.pending:
                sh.place(key)  # re-classify against the new acknowledged quantity
        return d.offsets

    def failed(self, d: Desired, o: PushOutcome, n: int, fate: Fate, dec: Decision) -> list[int]:
        """Hand the update over (its offsets are resolved once push-results holds it) and
        keep what its fate needs: the retry pass (``give-up``), the parked account's queue
        (``park-account``) or the held listing (``park-listing``)."""
        sh = self.shared
        q = sh.queue
        key = d.key
        del q.inflight[key]
        q.adjust.pop(key, None)
        sh.counts["failed"] += 1
        sh.log.warning(
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
        if key in q.unlinked:
            q.unlinked.discard(key)
            return d.offsets
        kept = d.kept()
        if fate == "park-listing":
            newer = q.drop_pending(key) if key in q.pending else None
            if newer is not None:
                sh.resolve(newer.offsets)
                newer.offsets = []
            self.parking.hold(key, dec, newer or kept)
        elif fate == "park-account":
            if key not in q.pending:
                q.pending[key] = kept
            sh.place(key)
        elif fate == "give-up" and key not in q.pending:
            q.parked[key] = kept
        elif key in q.pending:
            sh.place(key)
        return d.offsets

    def settle(self, durable: Awaitable[None], offsets: list[int]) -> None:
        """Resolve ``offsets`` once the results that answer for them are durable.

        The sender does not wait for the write: its next call starts at once.
        """
        sh = self.shared

        async def settle() -> None:
            await durable
            sh.resolve(offsets)

        task = asyncio.create_task(settle(), name=f"settle-{sh.account}")
        self.writes.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self.writes.discard(task)
        if not task.cancelled() and task.exception() is not None and self.write_error is None:
            self.write_error = task.exception()
            self.shared.log.error("push_results_write_failed", error=repr(task.exception()))


class CallRunner:
    """Sends one account's calls; see the module docstring."""

    def __init__(
        self,
        shared: Shared,
        parking: Parking,
        readback: ReadBack,
        settler: Settler,
        retry: RetryCap | None = None,
    ) -> None:
        self.shared = shared
        self.parking = parking
        self.readback = readback
        self.settler = settler
        self.retry = retry
        """Caps every row's retry spec when given (tests); None: the rows alone."""
        self.reauthed: set[str] = set()
        """Listings re-sent after a forced token refresh (a second refusal parks)."""
        self._rng = random.Random()
        self._admit = asyncio.Lock()
        """Held by the sender waiting for the limiter to start the next call."""
        self._window = max(64, 2 * shared.channel.max_batch)
        self._limiter_wait = metrics.limiter_wait(shared.account)

    # -- choosing the next call --------------------------------------------------------

    def sendable(self) -> bool:
        return not self.parking.blocks_sending() and self.shared.queue.has_sendable()

    def pick(self) -> list[Desired]:
        """The next call's updates: the first batch of the most urgent class (while the
        account is parked: one listing, the probe)."""
        sh = self.shared
        q = sh.queue
        if self.parking.blocks_sending():
            return []
        probe = self.parking.parked
        cands = q.candidates(self._window, one=probe)
        if not cands:
            return []
        by_ref = {d.listing_ref: d for d in cands}
        first = sh.channel.batches([self.update(d) for d in cands])[0]
        picked = [by_ref[u.listing_ref] for u in first]
        q.start(picked)
        if probe:
            self.parking.probe_taken(picked[0])
        return picked

    def update(self, d: Desired) -> StockUpdate:
        """The update to send: the desired quantity, raised by an ``adjust`` decision."""
        return StockUpdate(d.listing, d.listing_ref, self.shared.queue.sent(d))

    # -- the sender task ---------------------------------------------------------------

    async def run(self) -> None:
        """One sender: waits for work and the limiter, then sends."""
        sh = self.shared
        while True:
            if not self.sendable():
                sh.wake.clear()
                await sh.wake.wait()
                continue
            async with self._admit:  # one idle sender at a time waits for the limiter:
                if not self.sendable():  # senders woken together must not spend the
                    continue  # account's rate on calls with nothing to send
                await self.acquire()
                batch = self.pick()  # chosen after the wait: the freshest and most urgent
            if not batch:
                sh.limiter.done(sh.channel)
                continue
            await self.send(batch)

    async def acquire(self) -> None:
        """Wait until the limiter lets a call start (the wait is ``syncd_limiter_wait_seconds``)."""
        t0 = time.monotonic()
        await self.shared.limiter.acquire()
        self._limiter_wait.observe(time.monotonic() - t0)

    async def send(self, batch: list[Desired]) -> None:
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
                    todo = self.refresh(todo)
                    if not todo:
                        return
                    await self.acquire()
                todo, delay = await self.attempt(todo, n, started)
                if todo:
                    raise _Again(delay)

    def refresh(self, todo: list[Desired]) -> list[Desired]:
        """Before a retry: send the newest quantity of each listing, drop unlinked ones."""
        sh = self.shared
        q = sh.queue
        out = []
        for d in todo:
            key = d.key
            if key in q.unlinked:
                q.unlinked.discard(key)
                self.parking.drop_probe(key)
                del q.inflight[key]
                sh.resolve(d.offsets)
                continue
            if key in q.pending:
                newer = q.drop_pending(key)
                newer.offsets = d.offsets + newer.offsets
                d = newer
                q.inflight[key] = d
                if q.acked.get(key) == q.sent(d):
                    self.parking.drop_probe(key)
                    del q.inflight[key]
                    sh.resolve(d.offsets)
                    sh.counts["unchanged"] += 1
                    continue
            out.append(d)
        return out

    # -- one call ------------------------------------------------------------------------

    async def attempt(
        self, todo: list[Desired], n: int, started: float
    ) -> tuple[list[Desired], float]:
        """One call; records every outcome; handles each failure by its error-table class;
        returns the updates to send again and when."""
        sh = self.shared
        q = sh.queue
        t0 = time.monotonic()
        updates = [self.update(d) for d in todo]
        try:
            outcomes = await sh.channel.push(updates)
        except ChannelTransportError as e:
            outcomes = fail_all(updates, None, e.code, e.message)
        except Exception as e:  # a client bug must not block the account: hand it over
            sh.log.exception("push_internal_error", listings=len(todo))
            outcomes = fail_all(updates, None, INTERNAL_ERROR, type(e).__name__)
        finally:
            sh.limiter.done(sh.channel)
        latency_ms = (time.monotonic() - t0) * 1000
        sh.counts["calls"] += 1
        by_ref = {o.listing_ref: o for o in outcomes}
        missing = "the client returned no outcome for this update"
        pairs = [
            (d, by_ref.get(d.listing_ref) or failure(u, None, NO_RESULT, missing))
            for d, u in zip(todo, updates, strict=True)
        ]
        decisions: dict[str, Decision] = {
            d.key: sh.table.classify(
                sh.platform, o, sku=d.sku, listing=d.listing_ref, account=sh.account
            )
            for d, o in pairs
            if not o.ok
        }
        plan = await self.fates(pairs, decisions, n, started)
        fates, delay, park = plan.fates, plan.delay, plan.park
        now_ms = int(time.time() * 1000)
        attempts = _attempts(q, pairs, decisions, fates, n, latency_ms, now_ms)
        durable = await sh.sink.record(sh.account, sh.partition, attempts)
        settled: list[int] = []  # offsets resolved once the results are durable
        retry: list[Desired] = []
        changed: list[str] = []
        probed = False
        for d, o in pairs:
            fate = fates[d.key]
            dec = decisions.get(d.key)
            if self.parking.probe_answered(d.key, fate):
                probed = True
            if fate == "ack":
                q.adjust.pop(d.key, None)
                self.reauthed.discard(d.key)
                settled += self.settler.acknowledged(d, q.sent(d))
                if not self.readback.opened_drift(d.key):  # else: a matching read-back clears
                    changed += sh.book.cleared(d.listing_ref, now_ms)
                continue
            assert dec is not None
            if fate in SENT_AGAIN:
                retry.append(d)
                sh.counts["retried" if fate == "retry" else "resent"] += 1
                sh.log.info(
                    "push_retry",
                    listing=d.listing_ref,
                    attempt=n,
                    code=o.code,
                    http_status=o.http_status,
                    row=dec.row.id,
                    delay_s=round(delay, 3),
                )
                continue
            settled += self.settler.failed(d, o, n, fate, dec)
            cause = park if fate == "park-account" and park is not None else dec
            changed.append(sh.book.open(cause, d.listing_ref, now_ms))
        if park is not None:
            self.parking.park(park)
        elif self.parking.parked and (any(f == "ack" for f in fates.values()) or probed):
            changed += self.parking.unpark(now_ms)
        self.settler.settle(durable, settled)
        await sh.write_actions(changed)
        return retry, delay

    async def fates(
        self,
        pairs: list[tuple[Desired, PushOutcome]],
        decisions: dict[str, Decision],
        n: int,
        started: float,
    ) -> CallPlan:
        """What happens to each update of a call (:data:`~syncd.core.sending.Fate`), after
        the I/O some answers need: reading a campaign's held units back, forcing a token
        refresh."""
        q = self.shared.queue
        for d, _o in pairs:
            dec = decisions.get(d.key)
            hold = dec is not None and dec.error_class == "adjust" and dec.adjust == "hold"
            if dec is not None and hold and dec.quantity is None:
                decisions[d.key] = await self.read_held(d, dec)
        answers = [(d.key, None if o.ok else decisions[d.key]) for d, o in pairs]
        plan = plan_call(answers, n, self.spec, self._rng.random, q.adjust)
        limiter = self.shared.limiter
        if plan.slow:
            limiter.slow_down()
            if plan.hold is not None:
                limiter.hold(plan.hold)
        settle_retries(plan, n, time.monotonic() - started)
        auth = refreshing(plan)
        if auth:
            first = [k for k in auth if k not in self.reauthed]
            result: AuthResult = "refused"
            refusal: Decision | None = None
            if first:
                result, refusal = await self.reauthorize()
            settle_auth(
                plan,
                auth,
                result,
                refusal,
                self.reauthed,
                decisions,
                n,
                self.spec,
                self._rng.random,
                lambda: time.monotonic() - started,
            )
        return plan

    def spec(self, decision: Decision) -> RetrySpec:
        assert decision.retry is not None  # a retry row always has one (validated)
        return self.retry.bound(decision.retry) if self.retry is not None else decision.retry

    async def read_held(self, d: Desired, dec: Decision) -> Decision:
        """A campaign refusal without a number (Shopee's reserved-stock messages): read the
        held units back (one call through the limiter); unreadable or none: ``dec`` as is."""
        sh = self.shared
        await self.acquire()
        try:
            held = (await sh.channel.read_held([d.listing])).get(d.listing_ref)
        except ChannelError as e:
            sh.log.warning("held_read_failed", code=e.code, listing=d.listing_ref)
            held = None
        finally:
            sh.limiter.done(sh.channel)
        if not held:
            return dec
        sh.log.info("held_read_back", listing=d.listing_ref, held=held, row=dec.row.id)
        return dataclasses.replace(dec, quantity=held)

    async def reauthorize(self) -> tuple[AuthResult, Decision | None]:
        """Force a token refresh: ``("ok", None)``, ``("refused", decision of the
        refusal)`` or ``("unreachable", decision)``."""
        sh = self.shared
        try:
            if not await sh.channel.reauthorize():
                return "refused", None
        except ChannelAuthError as e:
            o = PushOutcome(
                "", False, e.http_status, e.platform_code, e.platform_message, None, None
            )
            return "refused", sh.table.classify(sh.platform, o, account=sh.account)
        except ChannelTransportError as e:
            return "unreachable", sh.table.classify(sh.platform, e.code, account=sh.account)
        sh.counts["token_refreshed"] += 1
        return "ok", None

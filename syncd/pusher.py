"""One channel account's sending: newest quantity per listing, in order, within its limits.

Owns :class:`AccountPusher` and the values it works with: :class:`Desired`
(the newest desired quantity of a listing and the desired-topic offsets it
answers for), :class:`Attempt` and :func:`push_result` (the push-results
record of one update in one call), and the :class:`Sink` protocol through
which a pusher hands results back (:class:`syncd.publisher.PublishService`
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
  account's limiter (:mod:`syncd.limits`), retries included;
- retries with tenacity for the retriable outcomes only; every attempt is
  recorded; what still fails is handed over (recorded as ``final``) and, when
  it was retriable, kept for the next retry pass; cancellation is never
  caught.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never

from syncd.channels.base import NO_RESULT, Channel, ChannelTransportError, PushOutcome, StockUpdate
from syncd.limits import AccountLimits, Limiter, RetryPolicy, is_retriable, is_throttle

log = structlog.get_logger("syncd.pusher")

INTERNAL_ERROR = "syncd.internal_error"
"""The channel client raised an unexpected exception (a bug); the update is handed over."""

STOCK_OUT, DECREASE, INCREASE = 0, 1, 2
"""Send classes, in send order."""


# -- values --------------------------------------------------------------------


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
    """Offsets (in the account's desired partition) resolved when this value is."""

    def update(self) -> StockUpdate:
        return StockUpdate(self.listing, self.listing_ref, self.quantity)


def decode_desired(key: bytes | None, value: bytes) -> Desired:
    """A desired-topic record (see ``processor._emit_desired``); ValueError when malformed."""
    d = orjson.loads(value)
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    account, ref, qty = d.get("account"), d.get("listing_ref"), d.get("quantity")
    listing, sku, ts = d.get("listing"), d.get("sku"), d.get("source_ts")
    if not (isinstance(account, str) and isinstance(ref, str) and isinstance(listing, dict)):
        raise ValueError("account, listing and listing_ref are required")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
        raise ValueError("quantity must be an integer >= 0")
    if ts is not None and not isinstance(ts, int):
        raise ValueError("source_ts must be an integer or null")
    listing_key = f"{account}/{ref}"
    if key is not None and key.decode(errors="replace") != listing_key:
        raise ValueError("key does not match account/listing_ref")
    return Desired(listing_key, listing, ref, str(sku or ""), qty, ts)


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


def push_result(account: str, a: Attempt) -> dict[str, Any]:
    """The push-results record value of one attempt."""
    d, o = a.desired, a.outcome
    return {
        "account": account,
        "listing_ref": d.listing_ref,
        "sku": d.sku,
        "quantity": d.quantity,
        "ok": o.ok,
        "attempt": a.attempt,
        "http_status": o.http_status,
        "code": o.code,
        "message": o.message,
        "latency_ms": round(a.latency_ms, 1),
        "source_ts": d.source_ts,
        "acked_at": a.at_ms if o.ok else None,
        "final": a.final,
        "retriable": is_retriable(o),
    }


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


class AccountPusher:
    """Sends one account's newest desired quantities, in order, within its limits."""

    def __init__(
        self,
        account: str,
        partition: int,
        channel: Channel,
        limiter: Limiter,
        limits: AccountLimits,
        retry: RetryPolicy,
        sink: Sink,
        *,
        acked: Mapping[str, int] | None = None,
        retry_pass_s: float = 60.0,
    ) -> None:
        self.account = account
        self.partition = partition
        self.channel = channel
        self.limiter = limiter
        self.limits = limits
        self.retry = retry
        self.sink = sink
        self.retry_pass_s = retry_pass_s
        self.pending: dict[str, Desired] = {}
        self.inflight: dict[str, Desired] = {}
        self.acked: dict[str, int] = dict(acked or {})
        self.parked: dict[str, Desired] = {}
        """Retries ran out: sent again by the next retry pass unless a newer record comes."""
        self.counts: Counter[str] = Counter()
        self._queues: tuple[dict[str, None], ...] = ({}, {}, {})
        self._class: dict[str, int] = {}
        self._unlinked: set[str] = set()
        self._work = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._write_error: BaseException | None = None
        self._window = max(64, 2 * channel.max_batch)
        self._log = log.bind(account=account, partition=partition)

    # -- intake (synchronous: called by the consumer loop) ---------------------

    def offer(self, d: Desired) -> None:
        """Take a newer desired quantity for a listing (it replaces any pending one)."""
        self._unlinked.discard(d.key)
        self.parked.pop(d.key, None)
        old = self.pending.get(d.key)
        if old is not None:
            d.offsets = old.offsets + d.offsets
            self.counts["coalesced"] += 1
        self.pending[d.key] = d
        self._place(d.key)

    def unlink(self, key: str) -> list[int]:
        """The listing left the catalog: drop what is queued; returns the offsets that frees."""
        self.acked.pop(key, None)
        self.parked.pop(key, None)
        offsets = self._drop_pending(key).offsets if key in self.pending else []
        if key in self.inflight:
            self._unlinked.add(key)
        return offsets

    @property
    def idle(self) -> bool:
        """Nothing queued, in flight, or waiting to be written."""
        return not self.pending and not self.inflight and not self._writes

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
        return len(self.pending) > sum(1 for k in self.inflight if k in self.pending)

    def _pick(self) -> list[Desired]:
        """The next call's updates: the first batch of the most urgent class."""
        for queue in self._queues:
            cands: list[Desired] = []
            for key in queue:
                if key not in self.inflight:  # never two calls for one listing at once
                    cands.append(self.pending[key])
                    if len(cands) >= self._window:
                        break
            if not cands:
                continue
            by_ref = {d.listing_ref: d for d in cands}
            first = self.channel.batches([d.update() for d in cands])[0]
            picked = [by_ref[u.listing_ref] for u in first]
            for d in picked:
                self._drop_pending(d.key)
                self.inflight[d.key] = d
            return picked
        return []

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        name = self.account
        for i in range(self.limits.max_in_flight):
            self._tasks.append(asyncio.create_task(self._sender(), name=f"push-{name}-{i}"))
        if self.retry_pass_s > 0:
            self._tasks.append(asyncio.create_task(self._retry_pass(), name=f"retry-{name}"))

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
                if key not in self.pending and key not in self.inflight:
                    self.pending[key] = d
                    self._place(key)
            if parked:
                self._log.info("retry_pass", listings=len(parked))

    async def _sender(self) -> None:
        while True:
            if not self._sendable():
                self._work.clear()
                await self._work.wait()
                continue
            await self.limiter.acquire()
            batch = self._pick()  # chosen after the wait: the freshest and most urgent
            if not batch:
                self.limiter.done(self.channel)
                continue
            await self._send(batch)

    # -- sending -------------------------------------------------------------------

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
                    await self.limiter.acquire()
                todo, delay = await self._attempt(todo, n, started, att.retry_state)
                if todo:
                    raise _Again(delay)

    def _refresh(self, todo: list[Desired]) -> list[Desired]:
        """Before a retry: send the newest quantity of each listing, drop unlinked ones."""
        out = []
        for d in todo:
            key = d.key
            if key in self._unlinked:
                self._unlinked.discard(key)
                del self.inflight[key]
                self.sink.resolve(self.partition, d.offsets)
                continue
            if key in self.pending:
                newer = self._drop_pending(key)
                newer.offsets = d.offsets + newer.offsets
                d = newer
                self.inflight[key] = d
                if self.acked.get(key) == d.quantity:
                    del self.inflight[key]
                    self.sink.resolve(self.partition, d.offsets)
                    self.counts["unchanged"] += 1
                    continue
            out.append(d)
        return out

    async def _attempt(
        self, todo: list[Desired], n: int, started: float, state: RetryCallState
    ) -> tuple[list[Desired], float]:
        """One call; records every outcome; returns the updates to try again and when."""
        t0 = time.monotonic()
        try:
            outcomes = await self.channel.push([d.update() for d in todo])
        except ChannelTransportError as e:
            outcomes = [
                PushOutcome(d.listing_ref, False, None, e.code, e.message, None, None) for d in todo
            ]
        except Exception as e:  # a client bug must not block the account: hand it over
            self._log.exception("push_internal_error", listings=len(todo))
            outcomes = [
                PushOutcome(
                    d.listing_ref, False, None, INTERNAL_ERROR, type(e).__name__, None, None
                )
                for d in todo
            ]
        finally:
            self.limiter.done(self.channel)
        latency_ms = (time.monotonic() - t0) * 1000
        self.counts["calls"] += 1
        by_ref = {o.listing_ref: o for o in outcomes}
        missing = "the client returned no outcome for this update"
        pairs = [
            (
                d,
                by_ref.get(d.listing_ref)
                or PushOutcome(d.listing_ref, False, None, NO_RESULT, missing, None, None),
            )
            for d in todo
        ]
        again = [o for _, o in pairs if is_retriable(o)]
        hints = [o.retry_after_s for o in again if o.retry_after_s is not None]
        hint = max(hints) if hints else None
        if hint is not None and any(is_throttle(o) for o in again):
            self.limiter.hold(hint)
        delay = self.retry.delay(state, hint) if again else 0.0
        gives_up = bool(again) and self.retry.gives_up(n, time.monotonic() - started, delay)
        now_ms = int(time.time() * 1000)
        attempts = [
            Attempt(
                d,
                o,
                n,
                latency_ms,
                now_ms,
                not is_retriable(o) or gives_up,
                o.ok and d.key not in self._unlinked,
            )
            for d, o in pairs
        ]
        durable = await self.sink.record(self.account, self.partition, attempts)
        settled: list[int] = []  # offsets resolved once the results are durable
        retry: list[Desired] = []
        for d, o in pairs:
            if o.ok:
                settled += self._acknowledged(d)
            elif is_retriable(o) and not gives_up:
                retry.append(d)
                self.counts["retried"] += 1
                self._log.info(
                    "push_retry",
                    listing=d.listing_ref,
                    attempt=n,
                    code=o.code,
                    http_status=o.http_status,
                    delay_s=round(delay, 3),
                )
            else:
                settled += self._failed(d, o, n, park=is_retriable(o))
        self._settle(durable, settled)
        return retry, delay

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

    def _acknowledged(self, d: Desired) -> list[int]:
        key = d.key
        del self.inflight[key]
        self.counts["acked"] += 1
        if key in self._unlinked:
            self._unlinked.discard(key)
        else:
            self.acked[key] = d.quantity
            if key in self.pending:
                self._place(key)  # re-classify against the new acknowledged quantity
        return d.offsets

    def _failed(self, d: Desired, o: PushOutcome, n: int, *, park: bool) -> list[int]:
        """Hand the update over (its offsets are resolved once push-results holds it)."""
        key = d.key
        del self.inflight[key]
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
            retry_pass=park,
        )
        if key in self._unlinked:
            self._unlinked.discard(key)
        elif park and key not in self.pending:
            self.parked[key] = Desired(
                d.key, d.listing, d.listing_ref, d.sku, d.quantity, d.source_ts
            )
        elif key in self.pending:
            self._place(key)
        return d.offsets

"""Shipped fakes for testing code around syncd's publish stage (cf. ``structlog.testing``,
httpx's ``MockTransport``).

Owns:

- :class:`FakeChannel`: a :class:`~syncd.channels.base.Channel` whose ``push`` calls a
  handler function you give it (plain or async), and which keeps every batch it was given;
- :class:`MemorySink`: a publish :class:`~syncd.publish.pusher.Sink` and action writer that
  keeps in memory what the Kafka sink would write (push-results records, acknowledged
  quantities, resolved offsets, manual-action records);
- :class:`ManualClock`: a clock (``() -> float`` seconds) that moves only when told;
- :class:`RetryPolicy`: a cap on every error-table row's retry bounds, handed to an
  :class:`~syncd.publish.pusher.AccountPusher` to keep a test's retries short.

Nothing in syncd imports this module.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.channels.base import Channel, PushOutcome, StockUpdate, ThrottleStatus
from syncd.core.errortable import RetrySpec
from syncd.publish.pusher import Attempt, push_result

__all__ = ["FakeChannel", "Handler", "ManualClock", "MemorySink", "RetryPolicy"]

Handler = Callable[[Sequence[StockUpdate]], list[PushOutcome] | Awaitable[list[PushOutcome]]]
"""What a :class:`FakeChannel` does with a batch: one outcome per update, in order."""


def accept_all(batch: Sequence[StockUpdate]) -> list[PushOutcome]:
    """A handler under which every update succeeds (HTTP 200)."""
    return [PushOutcome(u.listing_ref, True, 200, None, None, None, None) for u in batch]


class FakeChannel:
    """A channel account whose ``push`` answers with ``handler(batch)``.

    ``pushed`` keeps every batch in call order. ``read_stock`` and ``read_held`` answer
    from the ``stock`` and ``held`` mappings (keyed by listing ref; missing = unknown);
    ``stock`` follows every update the handler accepted.
    """

    def __init__(
        self,
        handler: Handler = accept_all,
        *,
        platform: str = "fake",
        account: str = "fake:main",
        max_batch: int = 50,
    ) -> None:
        self.handler = handler
        self.platform = platform
        self.account = account
        self.max_batch = max_batch
        self.pushed: list[list[StockUpdate]] = []
        self.stock: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.closed = False
        self.throttle_status: ThrottleStatus | None = None
        """No cost bucket to report."""

    def batches(self, updates: Sequence[StockUpdate]) -> list[list[StockUpdate]]:
        """Chunks of ``max_batch``, the last update per listing only, order kept."""
        last = {u.listing_ref: u for u in updates}
        kept = [u for u in updates if last[u.listing_ref] is u]
        return [kept[i : i + self.max_batch] for i in range(0, len(kept), self.max_batch)]

    async def push(self, batch: Sequence[StockUpdate]) -> list[PushOutcome]:
        """Record the batch and answer with the handler's outcomes."""
        self.pushed.append(list(batch))
        answer = self.handler(batch)
        outcomes = await answer if inspect.isawaitable(answer) else answer
        by_ref = {u.listing_ref: u.quantity for u in batch}
        for outcome in outcomes:
            if outcome.ok and outcome.listing_ref in by_ref:
                self.stock[outcome.listing_ref] = by_ref[outcome.listing_ref]
        return outcomes

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """The known quantities, all of them (the caller picks its listings' refs)."""
        return dict(self.stock)

    async def read_held(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """The known campaign holds, all of them."""
        return dict(self.held)

    async def close(self) -> None:
        self.closed = True

    async def reauthorize(self) -> bool:
        """No token to refresh: a refusal of the token parks the account."""
        return False


def _is_a_channel(channel: FakeChannel) -> Channel:
    """Type check only: a FakeChannel satisfies the Channel protocol."""
    return channel


class MemorySink:
    """Keeps in memory what the Kafka sink writes: push-results records (``results``),
    acknowledged quantities per listing key (``acked``), resolved desired offsets
    (``resolved``) and manual-action records (``actions``, via :meth:`write_actions`)."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.acked: dict[str, int] = {}
        self.resolved: list[int] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []

    async def record(
        self, account: str, partition: int, attempts: Sequence[Attempt]
    ) -> Awaitable[None]:
        """Keep the attempts' records; durable at once (a future already done, so a
        pusher cancelled before it awaits it leaves no coroutine un-awaited)."""
        self.results.extend(push_result(account, a).value() for a in attempts)
        for a in attempts:
            if a.write_acked:
                self.acked[a.desired.key] = a.quantity
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        durable.set_result(None)
        return durable

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        self.resolved.extend(offsets)

    async def write_actions(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """The action writer: keep every (key, value) record."""
        self.actions.extend(records)

    def for_ref(self, ref: str) -> list[dict[str, Any]]:
        """The push-results records of one listing, in order."""
        return [r for r in self.results if r["listing_ref"] == ref]


class ManualClock:
    """A clock that reads ``now`` (seconds) and moves only by :meth:`advance` or by
    setting ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A cap on retries (a :class:`~syncd.publish.types.RetryCap`): the error table's
    rows give each failure its own :class:`~syncd.core.errortable.RetrySpec`, and a
    policy given to a pusher caps every figure of it (:meth:`bound`)."""

    max_attempts: int = 5
    max_seconds: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0

    def bound(self, spec: RetrySpec) -> RetrySpec:
        """``spec`` with every figure capped by this policy's."""
        return RetrySpec(
            min(spec.max_attempts, self.max_attempts),
            min(spec.base_delay_s, self.backoff_initial_s),
            min(spec.max_delay_s, self.backoff_max_s),
            min(spec.give_up_after_s, self.max_seconds),
        )

"""How fast and how often the publish stage calls a marketplace account.

Owns:

- the per-platform default limits (:data:`DEFAULT_RATES`, with which figure is
  documented and which is an assumption) and their per-account overrides
  (:class:`AccountLimits`, read from the account's table: ``rate_per_s``,
  ``burst``, ``max_in_flight``);
- the limiters, one per account: :class:`RequestLimiter` (an aiolimiter leaky
  bucket: ``rate_per_s`` calls per second, at most ``burst`` back to back) and
  :class:`CostLimiter` (Shopify: follows the cost bucket the platform reports
  in every answer, read from ``ShopifyChannel.throttle_status``); both can be
  held for a while when the platform says "wait" (:meth:`Limiter.hold`) and
  slowed for a while after throttling answers (:meth:`Limiter.slow_down`);

A limiter paces the *start* of calls. The account's pusher acquires it once
per call (retries included), so the rate holds whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiolimiter import AsyncLimiter

from syncd.channels.base import Channel, ThrottleStatus
from syncd.channels.settings import setting
from syncd.config import PublishConfig
from syncd.errors import ConfigError

DEFAULT_RATES: Mapping[str, tuple[float | None, str]] = {
    "lazada": (50.0, "documented: 50 inventory calls/s per seller"),
    "shopee": (5.0, "assumption: no published limit; integrators keep to ~5 calls/s per app"),
    "wayfair": (5.0, "assumption: no published limit for the GraphQL API"),
    "shopify": (None, "documented: cost bucket, followed from extensions.cost in each answer"),
}
"""Calls per second per account when the account's table sets no ``rate_per_s``."""

DEFAULT_BURST = 1
"""Calls that may start back to back. 1 keeps calls evenly spaced, so a platform's own
bucket keeps its burst as slack for network jitter."""

SLOW_FACTOR = 0.5
"""A throttling answer multiplies the account's request rate by this ..."""
MIN_SLOW_FACTOR = 1 / 16
"""... down to this share of the configured rate ..."""
SLOW_FOR_S = 60.0
"""... for this long after the last throttling answer."""

TAKEOVER_HOLD_S = 1.0
"""A pusher that starts for an account (at start-up or when a rebalance hands the account
over) makes no call for this long: the account's previous owner, another process or this
one before a restart, may have spent the current second's budget, and one account's rate
is one budget across the cluster. With it, no one-second window holds calls of both owners,
so the account never sees more than ``burst + rate_per_s`` calls in a second."""

SHOPIFY_DEFAULT_COST = 10.0
"""Points an ``inventorySetQuantities`` call is assumed to cost before the first answer."""

# -- per-account settings ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountLimits:
    platform: str
    rate_per_s: float | None
    """Calls per second (None: no request limit; Shopify then follows its cost bucket)."""
    burst: int
    max_in_flight: int
    cost_bucket: bool
    """Follow the platform's reported cost bucket (Shopify)."""
    source: str
    """Where ``rate_per_s`` comes from: ``config`` or the default's note."""

    @classmethod
    def from_settings(
        cls, account: str, platform: str, settings: Mapping[str, Any], publish: PublishConfig
    ) -> AccountLimits:
        """Read ``rate_per_s``, ``burst`` and ``max_in_flight`` from the account's table."""
        default_rate, note = DEFAULT_RATES.get(platform, (None, "no default"))
        rate = setting(settings, account, "rate_per_s", float, None)
        source = "config"
        if rate is None:
            rate, source = default_rate, note
        elif not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"channels.{account}.rate_per_s", "must be a number > 0")
        burst = setting(settings, account, "burst", int, DEFAULT_BURST)
        if burst < 1:
            raise ConfigError(f"channels.{account}.burst", "must be at least 1")
        in_flight = setting(settings, account, "max_in_flight", int, publish.max_in_flight)
        if in_flight < 1:
            raise ConfigError(f"channels.{account}.max_in_flight", "must be at least 1")
        return cls(platform, rate, burst, in_flight, platform == "shopify", source)


# -- limiters ------------------------------------------------------------------


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait until one more call may start."""
        ...

    def done(self, channel: Channel) -> None:
        """A call started after :meth:`acquire` has ended (whatever its outcome)."""
        ...

    def hold(self, seconds: float) -> None:
        """The platform asked to wait: no call starts for ``seconds``."""
        ...

    def slow_down(self, seconds: float = SLOW_FOR_S) -> None:
        """A throttling answer: send slower for ``seconds``."""
        ...


class _Hold:
    def __init__(self) -> None:
        self.until = 0.0

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    async def wait(self) -> None:
        while True:  # a hold may be extended while waiting
            left = self.until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)


class RequestLimiter:
    """``rate_per_s`` calls per second, at most ``burst`` back to back (aiolimiter).

    In any window of ``T`` seconds at most ``burst + rate_per_s * T`` calls start.
    """

    def __init__(self, rate_per_s: float, burst: int = DEFAULT_BURST) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._bucket = AsyncLimiter(burst, burst / rate_per_s)
        self._hold = _Hold()
        self.factor = 1.0
        """Share of ``rate_per_s`` in force (below 1 while slowed down)."""
        self._slow_until = 0.0
        self._slow: AsyncLimiter | None = None

    @property
    def current_rate(self) -> float:
        return self.rate_per_s * (self.factor if time.monotonic() < self._slow_until else 1.0)

    async def acquire(self) -> None:
        await self._hold.wait()
        if self._slow is not None and time.monotonic() < self._slow_until:
            await self._slow.acquire()
        await self._bucket.acquire()

    def done(self, channel: Channel) -> None:
        pass

    def hold(self, seconds: float) -> None:
        self._hold.hold(seconds)

    def slow_down(self, seconds: float = SLOW_FOR_S) -> None:
        """Halve the rate (again, while already slowed, down to :data:`MIN_SLOW_FACTOR`)
        until ``seconds`` from now; then the configured rate applies again."""
        now = time.monotonic()
        factor = self.factor if now < self._slow_until else 1.0
        self.factor = max(MIN_SLOW_FACTOR, factor * SLOW_FACTOR)
        self._slow_until = now + seconds
        self._slow = AsyncLimiter(self.burst, self.burst / (self.rate_per_s * self.factor))


class CostLimiter:
    """Follows a cost bucket the platform reports (Shopify's ``throttleStatus``).

    A local model of the bucket (level, size, restore rate) is charged the
    expected cost of each call at its start and re-synchronised from every
    answer, conservatively: the model keeps the lower of its own level and the
    reported one less the cost of the calls still in flight. Before the first
    answer only one call is in flight.
    """

    def __init__(self, default_cost: float = SHOPIFY_DEFAULT_COST) -> None:
        self.cost = default_cost
        self.level = 0.0
        self.maximum: float | None = None
        self.restore_rate: float | None = None
        self._at = time.monotonic()
        self._in_flight = 0
        self._seen: ThrottleStatus | None = None
        self._lock = asyncio.Lock()
        self._answered = asyncio.Event()
        self._hold = _Hold()

    def _refill(self) -> float:
        now = time.monotonic()
        if self.restore_rate is not None and self.maximum is not None:
            self.level = min(self.maximum, self.level + (now - self._at) * self.restore_rate)
        self._at = now
        return self.level

    async def acquire(self) -> None:
        async with self._lock:  # callers are served in arrival order
            while True:
                await self._hold.wait()
                if self.restore_rate is None or self.restore_rate <= 0:
                    if self._in_flight == 0:
                        break
                    self._answered.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._answered.wait(), 1.0)
                    continue
                level = self._refill()
                if level >= self.cost:
                    self.level -= self.cost
                    break
                await asyncio.sleep((self.cost - level) / self.restore_rate)
            self._in_flight += 1

    def done(self, channel: Channel) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        status = channel.throttle_status
        if status is not None and status is not self._seen:
            self._seen = status
            costs = [c for c in (status.requested_cost, status.actual_cost) if c is not None]
            if costs:
                self.cost = max(costs)
            first = self.restore_rate is None
            self.maximum = status.maximum_available
            self.restore_rate = status.restore_rate
            reported = status.currently_available - self._in_flight * self.cost
            self.level = reported if first else min(self._refill(), reported)
            self._at = time.monotonic()
        self._answered.set()

    def hold(self, seconds: float) -> None:
        self._hold.hold(seconds)

    def slow_down(self, seconds: float = SLOW_FOR_S) -> None:
        """The platform throttled although the model admitted the call: the bucket is
        emptier than modelled (another app shares it); start again from empty."""
        self._refill()
        self.level = min(self.level, 0.0)


class Limiters:
    """Several limiters that must all admit a call (Shopify with a configured rate)."""

    def __init__(self, *parts: Limiter) -> None:
        self.parts = parts

    async def acquire(self) -> None:
        for part in self.parts:
            await part.acquire()

    def done(self, channel: Channel) -> None:
        for part in self.parts:
            part.done(channel)

    def hold(self, seconds: float) -> None:
        for part in self.parts:
            part.hold(seconds)

    def slow_down(self, seconds: float = SLOW_FOR_S) -> None:
        for part in self.parts:
            part.slow_down(seconds)


def make_limiter(limits: AccountLimits) -> Limiter:
    parts: list[Limiter] = []
    if limits.cost_bucket:
        parts.append(CostLimiter())
    if limits.rate_per_s is not None:
        parts.append(RequestLimiter(limits.rate_per_s, limits.burst))
    if len(parts) == 1:
        return parts[0]
    return Limiters(*parts)

"""The state a marketplace sandbox keeps: accounts, listings, limits, faults.

Owns :class:`Account` (credentials, access and refresh tokens with their
wall-clock expiry, listings, injected faults, request stats), :class:`Listing`,
:class:`Limits` (per-account rate limit and token lifetimes), the per-account
token bucket (:class:`TokenBucket`: requests/s with a burst, or Shopify's cost
points), :class:`Fault` and :class:`Call` (one API request: the listings it
touches and the faults that fired), the fault names every platform has, and
:class:`SandboxError`. Nothing here speaks HTTP: that is
:mod:`syncd.testing.sandbox.base`.

Tokens expire by wall-clock time (``time.time``, the clients compute
``expires_at`` the same way); rate limits and request stamps use
``time.monotonic``.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("syncd.testing.sandbox")

COMMON_FAULTS = frozenset(
    {
        "throttle",
        "http_error",
        "timeout",
        "slow",
        "platform_error",
        "token_expired",
        "token_revoked",
        "refresh_fail",
        "unknown_listing",
        "garbled",
    }
)
"""Faults every platform has; platform modules add their own."""

REQUEST_FAULTS = ("throttle", "http_error", "timeout", "slow", "platform_error", "garbled")
"""Faults that act on the whole request before auth, in this order of precedence."""


class SandboxError(Exception):
    """A bad control call (unknown account, unsupported fault...): HTTP 400/404."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- rate limiting --------------------------------------------------------------


class TokenBucket:
    """A leaky/token bucket: ``capacity`` units, refilled at ``rate`` units/s.

    With one unit per request it is a requests/s limit with a burst; with
    Shopify's query costs it is the cost bucket (``level`` is
    ``currentlyAvailable``).
    """

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = capacity
        self._at = clock()

    def level(self) -> float:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level

    def take(self, cost: float = 1.0) -> float | None:
        """Take ``cost`` units; None when admitted, else seconds until it would be."""
        level = self.level()
        if level >= cost:
            self._level = level - cost
            return None
        return (cost - level) / self.rate if self.rate > 0 else math.inf


# -- model ----------------------------------------------------------------------


@dataclass(slots=True)
class Fault:
    id: str
    name: str
    listing: str | None
    remaining: int | None
    params: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.name,
            "listing": self.listing,
            "remaining": self.remaining,
            "params": self.params,
        }


@dataclass(slots=True)
class Listing:
    key: str
    ident: dict[str, Any]
    stock: int
    pending: list[tuple[float, int]] = field(default_factory=list)
    """Wayfair: (monotonic apply time, quantity) of accepted saves not applied yet."""

    def settle(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            self.stock = self.pending.pop(0)[1]


@dataclass(slots=True)
class Limits:
    rate_per_s: float | None = None
    burst: int | None = None
    token_ttl_s: float = 3600.0
    refresh_ttl_s: float = 30 * 86400.0
    bucket_size: float = 2000.0
    restore_rate: float = 100.0
    apply_delay_s: float = 0.0

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if key not in Limits.__dataclass_fields__:
                raise SandboxError(f"unknown limit {key!r}")
            if value is not None and not isinstance(value, int | float):
                raise SandboxError(f"limit {key!r} must be a number or null")
            if value is None and key not in ("rate_per_s", "burst"):
                raise SandboxError(f"limit {key!r} cannot be null")
            setattr(self, key, value)

    def view(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in Limits.__dataclass_fields__}


class Account:
    """One seller account/shop: credentials, tokens, listings, faults, stats."""

    def __init__(self, name: str, creds: dict[str, Any], limits: Limits) -> None:
        self.name = name
        self.creds = creds
        self.limits = limits
        self.bucket: TokenBucket | None = None
        self.listings: dict[str, Listing] = {}
        self.faults: list[Fault] = []
        self.access: dict[str, float] = {}
        """Valid access tokens -> wall-clock expiry."""
        self.refresh: dict[str, float] = {}
        """Valid refresh tokens -> wall-clock expiry."""
        self.access_token = ""
        self.refresh_token = ""
        self.codes: set[str] = set()
        self.reset_stats()
        self.rebuild_bucket(cost_bucket=False)

    def reset_stats(self) -> None:
        self.times: list[float] = []
        self.throttled = 0
        self.token_requests = 0
        self.refreshes = 0
        self.by_path: Counter[str] = Counter()
        self.last_quantity: dict[str, int] = {}
        self.updates: Counter[str] = Counter()

    def rebuild_bucket(self, *, cost_bucket: bool) -> None:
        lim = self.limits
        if cost_bucket:
            self.bucket = TokenBucket(lim.restore_rate, lim.bucket_size)
        elif lim.rate_per_s is None:
            self.bucket = None
        else:
            burst = lim.burst if lim.burst is not None else max(1, math.ceil(lim.rate_per_s))
            self.bucket = TokenBucket(lim.rate_per_s, burst)

    # -- tokens ---------------------------------------------------------------

    def grant(self, *, rotate_refresh: bool = True, new_refresh: bool = True) -> tuple[str, str]:
        """Issue a new access token (and, with ``new_refresh``, a new refresh token);
        older access tokens stay valid until their own expiry. ``rotate_refresh``
        drops the old refresh token (Shopee); without it the caller decides (Shopify
        keeps it until the replacement is used)."""
        now = time.time()
        self.access_token = secrets.token_hex(16)
        self.access[self.access_token] = now + self.limits.token_ttl_s
        if new_refresh or not self.refresh_token:
            old = self.refresh_token
            self.refresh_token = secrets.token_hex(16)
            self.refresh[self.refresh_token] = now + self.limits.refresh_ttl_s
            if old and rotate_refresh:
                self.refresh.pop(old, None)
        return self.access_token, self.refresh_token

    def access_expires_at(self) -> float:
        return self.access.get(self.access_token, 0.0)

    def token_state(self, token: str | None) -> str:
        """``ok``, ``expired`` or ``invalid`` (unknown) for an access token."""
        if not token or token not in self.access:
            return "invalid"
        return "ok" if time.time() < self.access[token] else "expired"

    def refresh_state(self, token: str | None) -> str:
        if not token or token not in self.refresh:
            return "invalid"
        return "ok" if time.time() < self.refresh[token] else "expired"

    def expire(self, *, refresh: bool = False) -> None:
        now = time.time() - 1
        for token in self.access:
            self.access[token] = min(self.access[token], now)
        if refresh:
            for token in self.refresh:
                self.refresh[token] = min(self.refresh[token], now)

    # -- stats ----------------------------------------------------------------

    def record(self, path: str) -> None:
        self.times.append(time.monotonic())
        self.by_path[path] += 1

    def received(self, key: str, quantity: int) -> None:
        self.last_quantity[key] = quantity
        self.updates[key] += 1

    def stats(self) -> dict[str, Any]:
        best, lo = 0, 0
        for hi, t in enumerate(self.times):
            while t - self.times[lo] >= 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return {
            "requests": len(self.times),
            "max_in_1s": best,
            "throttled": self.throttled,
            "token_requests": self.token_requests,
            "refreshes": self.refreshes,
            "by_path": dict(self.by_path),
            "last_quantity": dict(self.last_quantity),
            "updates": dict(self.updates),
        }

    # -- faults ---------------------------------------------------------------

    def find_fault(
        self, names: Iterable[str], listing: str | None = None, *, account_wide: bool = True
    ) -> Fault | None:
        """First active fault named in ``names`` that applies (account-wide ones, or
        ones of ``listing``); does not consume it."""
        wanted = set(names)
        for f in self.faults:
            if f.name not in wanted:
                continue
            if (f.listing is None and account_wide) or (
                f.listing is not None and f.listing == listing
            ):
                return f
        return None

    def consume(self, fired: Iterable[Fault]) -> None:
        for f in fired:
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0 and f in self.faults:
                    self.faults.remove(f)


class Call:
    """One API request on an account: the listings it touches and the faults that fired.

    Each fault that fires during the request is counted once, at :meth:`done`.
    """

    def __init__(self, account: Account, listings: Iterable[str] = ()) -> None:
        self.account = account
        self.listings = list(listings)
        self.fired: list[Fault] = []
        self.cost = 1.0
        """Shopify: the query cost charged to the bucket."""
        self.answered_by: Fault | None = None
        """The request-level fault that answered instead of the platform, if any."""

    @property
    def answer_params(self) -> dict[str, Any]:
        """The params of :attr:`answered_by` (``{}`` when no fault answered)."""
        return self.answered_by.params if self.answered_by else {}

    def fault(self, *names: str, listing: str | None = None) -> Fault | None:
        """A fault for the whole request (account-wide, or on any listing touched),
        or with ``listing`` one for that item only (account-wide ones included)."""
        acc = self.account
        found: Fault | None
        if listing is not None:
            found = acc.find_fault(names, listing)
        else:
            found = acc.find_fault(names, None)
            for key in self.listings:
                if found is not None:
                    break
                found = acc.find_fault(names, key, account_wide=False)
        if found is not None and found not in self.fired:
            self.fired.append(found)
            log.info(
                "sandbox_fault_fired",
                account=acc.name,
                fault=found.name,
                listing=found.listing,
                fault_id=found.id,
            )
        return found

    def done(self) -> None:
        self.account.consume(self.fired)
        self.fired.clear()

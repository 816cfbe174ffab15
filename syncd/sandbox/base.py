"""What the four marketplace sandboxes share.

Owns: the account/listing/fault/token model (:class:`Account`, :class:`Listing`,
:class:`Fault`, :class:`Call`), the per-account token bucket
(:class:`TokenBucket`: requests/s with a burst, or Shopify's cost points), the
request recorder and its stats, the server life cycle, the Python API and the
loopback-only control API under ``/_sandbox`` (:class:`Sandbox`).

A platform module subclasses :class:`Sandbox` and supplies: its routes, the
shape of its listing identifiers (``listing_key``), its credentials, and its
answers for throttling, gateway faults and the unspecified platform error.
The request pipeline every platform handler follows is::

    parse -> identify account (record) -> rate limit (throttle answer)
          -> request-level faults (http_error, timeout, slow, throttle,
             platform_error) -> auth (signature, timestamp, token)
          -> business (per-item faults, stock) -> answer

Tokens expire by wall-clock time (``time.time``, the clients compute
``expires_at`` the same way); rate limits and request stamps use
``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import structlog
from aiohttp import web

log = structlog.get_logger("syncd.sandbox")

PLATFORMS = ("shopee", "lazada", "wayfair", "shopify")

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
    }
)
"""Faults every platform has; platform modules add their own."""

REQUEST_FAULTS = ("throttle", "http_error", "timeout", "slow", "platform_error")
"""Faults that act on the whole request before auth, in this order of precedence."""

GATEWAY_PAGES = {
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ControlOp = Callable[[str, dict[str, Any]], Any]
"""A control operation: (account name from the path, JSON body) -> JSON answer."""


def request_id() -> str:
    return uuid.uuid4().hex


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def gateway_page(status: int) -> web.Response:
    """The HTML error page a load balancer sends (not the platform's JSON)."""
    reason = GATEWAY_PAGES.get(status, "Error")
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><center><h1>"
        f"{status} {reason}</h1></center></body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html")


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


# -- the server -----------------------------------------------------------------


def _loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class Sandbox:
    """A running platform sandbox (one aiohttp server); see :mod:`syncd.sandbox`."""

    platform: ClassVar[str] = ""
    faults: ClassVar[frozenset[str]] = COMMON_FAULTS
    default_token_ttl_s: ClassVar[float] = 3600.0
    default_refresh_ttl_s: ClassVar[float] = 30 * 86400.0
    api_prefix: ClassVar[str] = ""
    cost_bucket: ClassVar[bool] = False

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, defaults: Limits | None = None
    ) -> None:
        if not _loopback(host) and host != "localhost":
            raise ValueError(f"sandboxes listen on loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.defaults = defaults or Limits(
            token_ttl_s=self.default_token_ttl_s, refresh_ttl_s=self.default_refresh_ttl_s
        )
        self.accounts: dict[str, Account] = {}
        self._runner: web.AppRunner | None = None
        self._log = log.bind(platform=self.platform)

    # -- life cycle -----------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.api_prefix

    @property
    def control_url(self) -> str:
        return self.root_url + "/_sandbox"

    async def start(self) -> Sandbox:
        app = web.Application(middlewares=[self._errors], client_max_size=8 * 1024 * 1024)
        self.add_routes(app)
        self._control_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._log.info("sandbox_started", base_url=self.base_url)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._log.info("sandbox_stopped", base_url=self.base_url)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what a platform supplies ---------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def make_account(self, name: str, fields: dict[str, Any], limits: Limits) -> Account:
        raise NotImplementedError

    def account_credentials(self, account: Account) -> dict[str, Any]:
        """Client settings for the account, with its current tokens."""
        raise NotImplementedError

    def listing_key(self, account: Account, ident: Mapping[str, Any]) -> str:
        """Canonical key of a listing identifier object; SandboxError if malformed."""
        raise NotImplementedError

    def normalize_listing(self, account: Account, ident: Mapping[str, Any]) -> dict[str, Any]:
        return dict(ident)

    def throttle_answer(self, call: Call, retry_after_s: float) -> web.Response:
        raise NotImplementedError

    def platform_error_answer(self, call: Call) -> web.Response:
        raise NotImplementedError

    def shown(self, account: Account, listing: Listing) -> int:
        """The quantity the platform's read-back shows."""
        return listing.stock

    def listing_view(self, account: Account, listing: Listing) -> dict[str, Any]:
        listing.settle(time.monotonic())
        return {
            "key": listing.key,
            "listing": listing.ident,
            "stock": listing.stock,
            "shown": self.shown(account, listing),
            "pending": [q for _, q in listing.pending],
        }

    # -- the request pipeline -------------------------------------------------

    async def admit(
        self, call: Call, path: str, cost: float = 1.0, *, limited: bool = True
    ) -> web.StreamResponse | None:
        """Record the request, apply the rate limit (unless not ``limited``) and the
        request-level faults. Returns the answer to send instead, or None.
        """
        acc = call.account
        acc.record(path)
        if limited and acc.bucket is not None:
            wait = acc.bucket.take(cost)
            if wait is not None:
                acc.throttled += 1
                self._log.info("sandbox_throttled", account=acc.name, retry_after_s=wait)
                return self.throttle_answer(call, wait)
        f = call.fault(*REQUEST_FAULTS)
        if f is None:
            return None
        acc.consume([f])  # now, not at the end: a hung request must not hold its fault
        call.fired.remove(f)
        call.answered_by = f
        if f.name == "throttle":
            acc.throttled += 1
            return self.throttle_answer(call, float(f.params.get("retry_after_s", 1)))
        if f.name == "http_error":
            return gateway_page(int(f.params.get("status", 500)))
        if f.name == "timeout":
            await asyncio.sleep(float(f.params.get("seconds", 30)))
            return gateway_page(504)
        if f.name == "slow":
            await asyncio.sleep(float(f.params.get("delay_s", 1)))
            return None
        return self.platform_error_answer(call)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SandboxError as e:
            return json_response({"error": str(e)}, e.status)

    # -- the Python API -------------------------------------------------------

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise SandboxError(f"no account {name!r}", 404) from None

    def add_account(self, name: str, **fields: Any) -> dict[str, Any]:
        limit_fields = {k: fields.pop(k) for k in list(fields) if k in Limits.__dataclass_fields__}
        existing = self.accounts.get(name)
        if existing is not None:
            existing.creds.update({k: v for k, v in fields.items() if k in existing.creds})
            if limit_fields:
                self.set_limits(name, **limit_fields)
            return self.account_credentials(existing)
        limits = Limits(**self.defaults.view())
        limits.update(limit_fields)
        acc = self.make_account(name, fields, limits)
        acc.rebuild_bucket(cost_bucket=self.cost_bucket)
        self.accounts[name] = acc
        self._log.info("sandbox_account_added", account=name)
        return self.account_credentials(acc)

    def credentials(self, name: str) -> dict[str, Any]:
        return self.account_credentials(self.account(name))

    def _listing(self, acc: Account, ident: Mapping[str, Any]) -> Listing:
        key = self.listing_key(acc, ident)
        try:
            return acc.listings[key]
        except KeyError:
            raise SandboxError(f"no listing {key!r} in account {acc.name!r}", 404) from None

    def add_listing(self, account: str, listing: Mapping[str, Any], stock: int = 0) -> str:
        acc = self.account(account)
        ident = self.normalize_listing(acc, listing)
        key = self.listing_key(acc, ident)
        acc.listings[key] = Listing(key, ident, int(stock))
        return key

    def set_stock(self, account: str, listing: Mapping[str, Any], quantity: int) -> None:
        item = self._listing(self.account(account), listing)
        item.pending.clear()
        item.stock = int(quantity)

    def stock(self, account: str, listing: Mapping[str, Any]) -> int:
        acc = self.account(account)
        item = self._listing(acc, listing)
        item.settle(time.monotonic())
        return self.shown(acc, item)

    def listing_state(self, account: str, listing: Mapping[str, Any]) -> dict[str, Any]:
        acc = self.account(account)
        return self.listing_view(acc, self._listing(acc, listing))

    def set_limits(self, account: str, **limits: Any) -> dict[str, Any]:
        acc = self.account(account)
        acc.limits.update(limits)
        acc.rebuild_bucket(cost_bucket=self.cost_bucket)
        return acc.limits.view()

    def inject(
        self,
        account: str,
        fault: str,
        listing: Mapping[str, Any] | None = None,
        count: int | None = None,
        **params: Any,
    ) -> str:
        acc = self.account(account)
        if fault not in self.faults:
            raise ValueError(
                f"{self.platform} has no fault {fault!r}; known: {sorted(self.faults)}"
            )
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None: until cleared)")
        key = self.listing_key(acc, self.normalize_listing(acc, listing)) if listing else None
        f = Fault(uuid.uuid4().hex[:12], fault, key, count, dict(params))
        acc.faults.append(f)
        self._log.info(
            "sandbox_fault_injected", account=account, fault=fault, listing=key, count=count
        )
        return f.id

    def clear(
        self, account: str, fault: str | None = None, listing: Mapping[str, Any] | None = None
    ) -> int:
        acc = self.account(account)
        key = self.listing_key(acc, self.normalize_listing(acc, listing)) if listing else None
        keep = [
            f
            for f in acc.faults
            if (fault is not None and f.name != fault) or (key is not None and f.listing != key)
        ]
        removed = len(acc.faults) - len(keep)
        acc.faults = keep
        return removed

    def expire_token(self, account: str, refresh: bool = False) -> dict[str, Any]:
        self.account(account).expire(refresh=refresh)
        return {}

    def stats(self, account: str) -> dict[str, Any]:
        return self.account(account).stats()

    def request_times(self, account: str) -> list[float]:
        return list(self.account(account).times)

    def reset(self, hard: bool = False) -> dict[str, Any]:
        if hard:
            self.accounts.clear()
        for acc in self.accounts.values():
            acc.faults.clear()
            acc.reset_stats()
            acc.rebuild_bucket(cost_bucket=self.cost_bucket)
        return {}

    # -- the control API ------------------------------------------------------

    def _control_routes(self, app: web.Application) -> None:
        p, a = "/_sandbox", "/_sandbox/accounts/{account}"
        ident = self._ident
        routes: list[tuple[str, str, ControlOp]] = [
            (
                "GET",
                p,
                lambda _, b: {
                    "platform": self.platform,
                    "base_url": self.base_url,
                    "accounts": sorted(self.accounts),
                },
            ),
            ("POST", p + "/accounts", self._c_add_account),
            ("GET", a, lambda n, b: self.credentials(n)),
            (
                "POST",
                a + "/listings",
                lambda n, b: {"key": self.add_listing(n, ident(b), int(b.get("stock", 0)))},
            ),
            (
                "GET",
                a + "/stock",
                lambda n, b: {
                    "listings": [
                        self.listing_view(self.account(n), li)
                        for li in self.account(n).listings.values()
                    ]
                },
            ),
            ("POST", a + "/stock", self._c_set_stock),
            ("POST", a + "/stock/get", lambda n, b: self.listing_state(n, ident(b))),
            ("POST", a + "/limits", lambda n, b: {"limits": self.set_limits(n, **b)}),
            (
                "POST",
                a + "/expire_token",
                lambda n, b: self.expire_token(n, bool(b.get("refresh", False))),
            ),
            ("GET", a + "/stats", lambda n, b: self.stats(n)),
            (
                "GET",
                a + "/faults",
                lambda n, b: {"faults": [f.view() for f in self.account(n).faults]},
            ),
            ("POST", a + "/faults", self._c_inject),
            (
                "DELETE",
                a + "/faults",
                lambda n, b: {"cleared": self.clear(n, b.get("fault"), b.get("listing"))},
            ),
            ("POST", p + "/reset", lambda _, b: self.reset(bool(b.get("hard", False)))),
        ]
        for method, path, op in routes:
            app.router.add_route(method, path, self._control(op))

    def _control(self, op: ControlOp) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if not _loopback(request.remote):
                raise SandboxError("control API is loopback only", 403)
            raw = await request.read()
            try:
                body = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                raise SandboxError("body is not JSON") from None
            if not isinstance(body, dict):
                raise SandboxError("body must be a JSON object")
            try:
                return json_response(op(request.match_info.get("account", ""), body))
            except (ValueError, TypeError) as e:
                raise SandboxError(str(e)) from None

        return handler

    @staticmethod
    def _ident(body: Mapping[str, Any]) -> dict[str, Any]:
        ident = body.get("listing")
        if not isinstance(ident, dict):
            raise SandboxError("'listing' (an object) is required")
        return ident

    def _c_add_account(self, _: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise SandboxError("'name' is required")
        return self.add_account(name, **body)

    def _c_set_stock(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.set_stock(name, self._ident(body), int(body.get("quantity", 0)))
        return self.listing_state(name, self._ident(body))

    def _c_inject(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise SandboxError("'params' must be an object")
        return {
            "id": self.inject(
                name, str(body.get("fault")), body.get("listing"), body.get("count"), **params
            )
        }

"""The HTTP side of the four marketplace sandboxes: what every platform server shares.

Owns :class:`Sandbox`: the server life cycle (one aiohttp server on
loopback), the request pipeline's shared steps (:meth:`Sandbox.admit`:
record, rate limit, request-level faults), the Python API and the
loopback-only control API under ``/_sandbox``; and the answer helpers
(:func:`json_response`, :func:`gateway_page`, :func:`request_id`) and body
readers (:func:`read_json`, :func:`graphql_request`) the platform modules use.
The state a sandbox keeps (accounts, listings, limits, faults) is
:mod:`syncd.testing.sandbox.accounts`; its names are re-exported here.

A platform module subclasses :class:`Sandbox` and supplies: its routes, the
shape of its listing identifiers (``listing_key``), its credentials, and its
answers for throttling, gateway faults and the unspecified platform error.
The request pipeline every platform handler follows is::

    parse -> identify account (record) -> rate limit (throttle answer)
          -> request-level faults (http_error, timeout, slow, throttle,
             platform_error, garbled) -> auth (signature, timestamp, token)
          -> business (per-item faults, stock) -> answer
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import orjson
from aiohttp import web

from syncd.testing.sandbox.accounts import (
    COMMON_FAULTS,
    REQUEST_FAULTS,
    Account,
    Call,
    Fault,
    Limits,
    Listing,
    SandboxError,
    TokenBucket,
    log,
)

__all__ = [
    "COMMON_FAULTS",
    "GATEWAY_PAGES",
    "PLATFORMS",
    "REQUEST_FAULTS",
    "Account",
    "Call",
    "ControlOp",
    "Fault",
    "Handler",
    "Limits",
    "Listing",
    "Sandbox",
    "SandboxError",
    "TokenBucket",
    "gateway_page",
    "graphql_request",
    "json_response",
    "read_json",
    "request_id",
]

PLATFORMS = ("shopee", "lazada", "wayfair", "shopify")

GATEWAY_PAGES = {
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    429: "Too Many Requests",
}
GARBLED_BODY = '{"request_id":"'
"""The ``garbled`` fault's default answer: JSON cut off mid-way (a proxy dropped the rest)."""

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


def gateway_page(status: int, retry_after_s: float | None = None) -> web.Response:
    """The HTML error page a load balancer sends (not the platform's JSON), with
    ``Retry-After`` when given."""
    reason = GATEWAY_PAGES.get(status, "Error")
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><center><h1>"
        f"{status} {reason}</h1></center></body></html>"
    )
    headers = {"Retry-After": f"{retry_after_s:g}"} if retry_after_s is not None else None
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (an empty body reads as ``{}``); None when it is not JSON."""
    try:
        return orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        return None


def graphql_request(body: Any) -> tuple[Any, Any]:
    """``query`` and ``variables`` (``{}`` when absent) of a GraphQL request body, unchecked."""
    if not isinstance(body, dict):
        return None, {}
    return body.get("query"), body.get("variables") or {}


# -- the server -----------------------------------------------------------------


def _loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class Sandbox:
    """A running platform sandbox (one aiohttp server); see :mod:`syncd.testing.sandbox`."""

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
        return {
            "base_url": self.base_url,
            **account.creds,
            "access_token": account.access_token,
            "refresh_token": account.refresh_token,
            "access_token_expires_at": account.access_expires_at(),
        }

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
            wait = f.params.get("retry_after_s")
            status = int(f.params.get("status", 500))
            return gateway_page(status, float(wait) if wait is not None else None)
        if f.name == "timeout":
            await asyncio.sleep(float(f.params.get("seconds", 30)))
            return gateway_page(504)
        if f.name == "slow":
            await asyncio.sleep(float(f.params.get("delay_s", 1)))
            return None
        if f.name == "garbled":  # an answer the client cannot read (params: body, status)
            return web.Response(
                text=str(f.params.get("body", GARBLED_BODY)),
                status=int(f.params.get("status", 200)),
                content_type=str(f.params.get("content_type", "application/json")),
            )
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

"""Marketplace sandboxes: local fakes of the Shopee, Lazada, Wayfair and Shopify APIs.

Owns the public entry point :func:`start` and re-exports :class:`Sandbox`.
One aiohttp server per platform, on 127.0.0.1 only, serving the platform's
own paths and shapes, so syncd's channel clients talk to it exactly as to the
platform (signatures, timestamps and token expiry checked, per-account rate
limits answered with the platform's throttling answer, success decided from
the body). ``docs/sandboxes.md`` says what is a documented fact and what is a
modelled assumption; each platform module repeats it in its docstring.

Python API
==========

``sb = await start(platform, *, host="127.0.0.1", port=0, rate_per_s=None,
burst=None, token_ttl_s=None, refresh_ttl_s=None, bucket_size=None,
restore_rate=None, apply_delay_s=None)``
    ``platform`` is ``"shopee" | "lazada" | "wayfair" | "shopify"``. ``port=0``
    picks a free port. The keyword defaults apply to accounts added later
    (each account can override them): ``rate_per_s``/``burst`` is a token
    bucket of requests per account (None = unlimited; burst defaults to
    ``max(1, ceil(rate_per_s))``); ``token_ttl_s`` the access-token lifetime
    (Shopee 14400, Lazada 2592000, Wayfair 86400, Shopify 3600 by default);
    ``refresh_ttl_s`` the refresh-token lifetime; Shopify only:
    ``bucket_size`` (default 2000 points) and ``restore_rate`` (default 100
    points/s) of the per-shop cost bucket; Wayfair only: ``apply_delay_s``
    (default 0), how long after a save the stock applies.

``Sandbox`` (the returned object; also an async context manager):

- ``sb.platform``; ``sb.root_url`` (``http://127.0.0.1:PORT``);
  ``sb.base_url`` (root + the platform prefix: ``/rest`` for Lazada, nothing
  for the others; for Shopify each shop's client ``base_url`` is in its
  credentials: ``root_url + "/shops/<shop>"``); ``sb.control_url``
  (``root_url + "/_sandbox"``); ``sb.accounts`` (name -> state, read-only use).
- ``sb.add_account(name, **fields) -> dict``: create or update an account
  and return its credentials (the client settings, shapes below).
  ``fields`` may set any credential key shown below (otherwise generated),
  and ``rate_per_s``, ``burst``, ``token_ttl_s``, ``refresh_ttl_s``,
  ``bucket_size``, ``restore_rate``, ``apply_delay_s``.
- ``sb.credentials(name) -> dict``: the same dict with the *current* tokens.
- ``sb.add_listing(account, listing, stock=0) -> str``: create or replace a
  listing (identifier object, shapes below) with ``stock`` units; returns the
  listing key used in stats (``listing_key`` below).
- ``sb.set_stock(account, listing, quantity)``: change stock behind the API.
- ``sb.stock(account, listing) -> int``: the quantity the platform's own
  read-back would show now (0 under a Wayfair forced zero).
- ``sb.listing_state(account, listing) -> dict``: ``{"key", "listing",
  "stock" (held), "shown" (read-back), "pending" (Wayfair saves not applied
  yet)}``.
- ``sb.set_limits(account, **limits) -> dict``: change any of ``rate_per_s``,
  ``burst`` (None = unlimited), ``token_ttl_s``, ``refresh_ttl_s`` (for
  tokens granted from now on), ``bucket_size``, ``restore_rate``,
  ``apply_delay_s``; resets the account's bucket; returns all limits.
- ``sb.inject(account, fault, listing=None, count=None, **params) -> str``:
  add a fault (see below) for the account, or for one listing of it; it
  fires on the next ``count`` matching requests, or until cleared when
  ``count`` is None. Returns the fault id. Raises ``ValueError`` for a fault
  the platform does not have.
- ``sb.clear(account, fault=None, listing=None) -> int``: remove faults
  (all of the account's, or those of that name and/or listing); returns how
  many were removed.
- ``sb.expire_token(account, refresh=False)``: the current access token (and
  with ``refresh=True`` the refresh token too) is expired from now on.
- ``sb.stats(account) -> dict``: ``{"requests": n, "max_in_1s": n,
  "throttled": n, "token_requests": n, "refreshes": n, "by_path": {path: n},
  "last_quantity": {listing_key: qty}, "updates": {listing_key: n}}``;
  ``requests`` counts every request attributed to the account (by its
  credentials), with a ``time.monotonic()`` stamp; ``max_in_1s`` is the most
  requests in any sliding one-second window; ``throttled`` the throttling
  answers sent; ``token_requests`` token grants (Wayfair client-credentials
  fetches, Shopee/Lazada/Shopify refreshes and code exchanges);
  ``last_quantity`` the last quantity *received* per listing (applied or not).
- ``sb.request_times(account) -> list[float]``: the monotonic stamps.
- ``sb.reset(hard=False)``: clear faults, stats and throttling state of every
  account (``hard=True`` also removes accounts and listings).
- ``await sb.close()``.

Requests are attributed to an account by its credentials (Shopee
``shop_id``, Lazada ``access_token``/``refresh_token``, Wayfair
``client_id``/bearer token, Shopify the shop in the path); requests that
name no known account are answered (as the platform would) but not recorded.
Pipeline per request: record -> rate limit -> request-level faults -> auth
(signature, timestamp, token) -> business rules and item faults -> answer.

Listings (identifier objects) and ``listing_key``
-------------------------------------------------
- shopee: ``{"item_id": int, "model_id": int}`` (``model_id`` 0 or absent =
  item without models); key ``"<item_id>/<model_id>"``.
- lazada: ``{"item_id": int|str, "sku_id": int|str, "seller_sku": str}``
  (``seller_sku`` optional, default ``"SKU-<sku_id>"``); key ``"<sku_id>"``.
  Updates may name a SKU by ``SkuId`` (with ``ItemId``) or by ``SellerSku``.
- wayfair: ``{"supplier_id": int, "supplier_part_number": str}``
  (``supplier_id`` defaults to the account's); key
  ``"<supplier_id>/<supplier_part_number>"``.
- shopify: ``{"inventory_item_id": "gid://shopify/InventoryItem/N",
  "location_id": "gid://shopify/Location/N"}`` (bare numbers are accepted
  and turned into gids); key ``"<item gid>@<location gid>"``.

Credentials (``add_account`` result, usable as client settings)
---------------------------------------------------------------
- shopee: ``{"base_url", "partner_id": int, "partner_key": str, "shop_id":
  int, "access_token", "refresh_token", "access_token_expires_at": epoch s,
  "code": str}`` (``code`` is a one-time auth code for
  ``/api/v2/auth/token/get``; accounts may share a partner).
- lazada: ``{"base_url", "app_key": str, "app_secret": str, "access_token",
  "refresh_token", "access_token_expires_at", "seller_id": str}``.
- wayfair: ``{"base_url", "token_url": base_url + "/oauth/token",
  "client_id", "client_secret", "audience": "https://sandbox.api.wayfair.com/",
  "supplier_id": int, "access_token": None|str, "access_token_expires_at":
  None|float}`` (no token until the client fetches one; no refresh token).
- shopify: ``{"base_url": "http://127.0.0.1:PORT/shops/<shop>", "shop":
  str, "api_version": "2026-04", "client_id", "client_secret",
  "access_token", "refresh_token", "access_token_expires_at",
  "location_id": "gid://shopify/Location/1"}``. The account name is the shop
  unless ``shop=`` is given.

Faults (``inject``; ``params`` in brackets)
-------------------------------------------
Account-wide or per-listing (a listing fault fires only on requests that
touch that listing; per-item answers then fail only for that listing). A
fault with ``count`` N is used up by N requests it fired on (once per request,
however many items it hit). Request-level faults act before auth, in the
order throttle, http_error, timeout, slow, platform_error.

- ``throttle`` [``retry_after_s`` default 1; lazada ``code="E901"``]: answer
  with the platform's throttling answer (counted in ``throttled``).
- ``http_error`` [``status``: 500|501|502|503, default 500]: a gateway error
  page (HTML body, not the platform's JSON).
- ``timeout`` [``seconds``, default 30]: hang that long, then answer 504.
- ``slow`` [``delay_s``, default 1]: wait, then answer normally.
- ``platform_error`` [shopee ``error``/``message``/``status``; lazada
  ``type``/``code``/``message``; wayfair, shopify ``message``/``status``]:
  the platform's unspecified error (Shopee ``error_inner`` HTTP 500; Lazada
  ISP ``1000``; Shopify ``errors[{extensions:{code:"INTERNAL_SERVER_ERROR"}}]``;
  Wayfair GraphQL ``errors`` "Internal server error").
- ``token_expired``: the access token is refused as expired/invalid (same
  answer as a really expired token).
- ``token_revoked``: access token refused AND refresh refused.
- ``refresh_fail``: only the refresh call is refused.
- ``vacation`` (shopee: ``error_holiday_mode_change_stock``; lazada: an
  ASSUMED ISV error, see lazada.py).
- ``reserved`` [``quantity``; shopee ``shape`` = failure_list (default) |
  error_param | error_auth | promotion, and ``error``; lazada ``message``]:
  campaign-reserved
  stock; updates below it are refused; read-back shows it (shopee
  ``total_reserved_stock``, lazada ``channelInventories``). shopee, lazada.
- ``unpaid_min`` [``quantity``; shopee ``error``; lazada ``message``]:
  ASSUMPTION: updates below N refused with a message carrying N (lazada
  read-back: ``withholdQuantity`` N). shopee, lazada.
- ``unknown_listing``: the listing (or every listing) answers as not found
  (shopee ``error_item_not_found`` / failure_list "model ID not exist in
  sku"; lazada detail ``SELLER_SKU_INVALID``; shopify
  ``INVALID_INVENTORY_ITEM``; wayfair submission ``errors[{key}]``).
- ``failure_list`` [``reason``, ``error`` default ""]: shopee only: HTTP 200
  with the model in ``failure_list`` and top-level ``error`` as given.
- ``forced_zero``: wayfair only: Confirm Stock Status alert (ASSUMPTION):
  read-back shows 0, saves accepted but not applied until cleared.
- ``not_applied``: wayfair only: CastleGate markdown (ASSUMPTION): saves
  accepted but not applied; read-back keeps the old value.

Control HTTP API (JSON, no auth, loopback only; same server and port)
=====================================================================
::

    GET    /_sandbox                                 -> {"platform", "base_url", "accounts": [..]}
    POST   /_sandbox/accounts           {"name", ..fields}        -> credentials
    GET    /_sandbox/accounts/{a}                                  -> credentials (current tokens)
    POST   /_sandbox/accounts/{a}/listings {"listing", "stock"}    -> {"key"}
    GET    /_sandbox/accounts/{a}/stock                            -> {"listings": [state, ..]}
    POST   /_sandbox/accounts/{a}/stock    {"listing", "quantity"} -> state
    POST   /_sandbox/accounts/{a}/stock/get {"listing"}            -> state  (state has "stock")
    POST   /_sandbox/accounts/{a}/limits   {"rate_per_s", ..}      -> {"limits"}
    POST   /_sandbox/accounts/{a}/expire_token {"refresh": false}  -> {}
    GET    /_sandbox/accounts/{a}/stats                            -> stats
    GET    /_sandbox/accounts/{a}/faults                           -> {"faults": [..]}
    POST   /_sandbox/accounts/{a}/faults   {"fault", "listing"?, "count"?, "params"?} -> {"id"}
    DELETE /_sandbox/accounts/{a}/faults   {"fault"?, "listing"?}  -> {"cleared": n}
    POST   /_sandbox/reset                 {"hard": false}         -> {}

Errors of the control API: HTTP 400/404 with ``{"error": "..."}``.

Throttling answers (details and sources in each module's docstring)
-------------------------------------------------------------------
- shopee: HTTP 429 + ``{"error": "error_server", "message": "Too many
  requests, please try again later", ...}`` (code/message from a client's
  error list [3P]; the pairing with 429 is an ASSUMPTION).
- lazada: HTTP 200 + ``{"type": "ISP", "code": "ApiCallLimit", "message":
  "... this ban will last N seconds", ...}`` (IOP gateway shape; on Lazada an
  ASSUMPTION; the documented business code E901 is used only when asked).
- wayfair: HTTP 429 + ``Retry-After`` (ASSUMPTION, nothing is published).
- shopify: HTTP 200 + ``errors:[{"message": "Throttled", "extensions":
  {"code": "THROTTLED"}}]`` with ``extensions.cost`` and no ``data`` (documented).

Command line: ``python -m syncd.testing.sandbox --config config/sandbox.example.toml``.
"""

from __future__ import annotations

from syncd.testing.sandbox.accounts import Limits
from syncd.testing.sandbox.base import PLATFORMS, Sandbox

__all__ = ["PLATFORMS", "Sandbox", "sandbox_class", "start"]


def sandbox_class(platform: str) -> type[Sandbox]:
    """The :class:`Sandbox` subclass of ``platform`` (imported on first use)."""
    if platform == "shopee":
        from syncd.testing.sandbox.shopee import ShopeeSandbox

        return ShopeeSandbox
    if platform == "lazada":
        from syncd.testing.sandbox.lazada import LazadaSandbox

        return LazadaSandbox
    if platform == "wayfair":
        from syncd.testing.sandbox.wayfair import WayfairSandbox

        return WayfairSandbox
    if platform == "shopify":
        from syncd.testing.sandbox.shopify import ShopifySandbox

        return ShopifySandbox
    raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")


async def start(
    platform: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_per_s: float | None = None,
    burst: int | None = None,
    token_ttl_s: float | None = None,
    refresh_ttl_s: float | None = None,
    bucket_size: float | None = None,
    restore_rate: float | None = None,
    apply_delay_s: float | None = None,
) -> Sandbox:
    """Start one platform sandbox on ``host:port`` (0 = a free port); see the package doc."""
    cls = sandbox_class(platform)
    defaults = Limits(
        rate_per_s=rate_per_s,
        burst=burst,
        token_ttl_s=cls.default_token_ttl_s,
        refresh_ttl_s=cls.default_refresh_ttl_s,
    )
    for key, value in (
        ("token_ttl_s", token_ttl_s),
        ("refresh_ttl_s", refresh_ttl_s),
        ("bucket_size", bucket_size),
        ("restore_rate", restore_rate),
        ("apply_delay_s", apply_delay_s),
    ):
        if value is not None:
            setattr(defaults, key, float(value))
    return await cls(host=host, port=port, defaults=defaults).start()

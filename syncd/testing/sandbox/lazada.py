"""Lazada Open Platform (LAZOP) sandbox: UpdateSellableQuantity, GetProductItem, token refresh.

Owns the Lazada paths (``base_url`` is ``http://127.0.0.1:PORT/rest``):

- ``POST /rest/product/stock/sellable/update`` with form (or query) param
  ``payload``: ``<Request><Product><Skus><Sku><ItemId/><SkuId/>[<SellerSku/>]
  <SellableQuantity/></Sku>...`` (at most 50 SKUs, SKUs may span items).
- ``GET /rest/product/item/get?item_id=|seller_sku=``: ``data.skus[]`` with
  ``SkuId, SellerSku, quantity, Available, sellableQuantity,
  multiWarehouseInventories[], channelInventories[]``.
- ``POST /rest/auth/token/refresh`` ``refresh_token``: new access token; the
  refresh token stays the same (refresh resets only the access lifetime).

Documented facts [C] (channels.md section 2): system params ``app_key,
timestamp (ms or ISO, within 7200 s), sign_method=sha256, sign,
access_token``; sign = HMAC-SHA256(app_secret, api_path + sorted ``k+v``)
UPPERCASE hex (empty values are skipped, as the official SDKs do; the
API path has no ``/rest``); success ``{"code":"0","data":{},"request_id"}``;
errors ``{"type":"ISV|ISP|SYSTEM","code","message","request_id"}`` plus
``detail[{field, seller_sku, message}]`` for batches (``SELLER_SKU_INVALID``);
``E005`` Invalid Request Format, ``E030`` Empty Request, ``E204`` too many
SKUs, ISP ``1000`` Internal Application Error; ``E901`` too frequent; 50
inventory calls/s per seller; SellableQuantity cannot go below the campaign
lock (``channelInventories``).

Modelled ASSUMPTIONS (see ``ERRORS``; fault params ``code``/``message``
override them):

- Every API-level answer is HTTP 200 (success is decided from ``code``).
- Throttling: HTTP 200, ``{"type":"ISV","code":"ApiCallLimit","message":
  "The request frequency is too high, this ban will last N seconds"}`` (the
  IOP gateway shape [3P]; on Lazada unconfirmed). The ``throttle`` fault
  with ``code="E901"`` sends the documented business code instead.
- Token: ``IllegalAccessToken`` [3P] for unknown and expired tokens alike;
  ``IllegalRefreshToken``, ``IncompleteSignature``, ``InvalidTimestamp``,
  ``MISSING_PARAMETER`` codes as named in ``ERRORS``.
- A batch with bad SKUs applies the good ones and answers ``code "501"``
  "Update product failed" with one ``detail`` per bad SKU.
- ``reserved`` N: detail "SellableQuantity cannot be less than the campaign
  locked quantity N" (no Lazada string is published); read-back shows
  ``channelInventories[{sellableQuantity: N}]``.
- ``unpaid_min`` N: detail "SellableQuantity cannot be less than N units
  withheld for unpaid orders"; read-back shows ``withholdQuantity`` N.
- ``vacation``: ``{"type":"ISV","code":"SELLER_HOLIDAY_MODE", ...}``: no
  Lazada code is known.
- A ``SellerSku`` containing two consecutive spaces is ``SELLER_SKU_INVALID``.
- Multi-warehouse payloads (``MultiWarehouseInventories``) are refused with
  ``E005``: sandbox sellers are single-warehouse.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from aiohttp import web

from syncd.testing.sandbox.accounts import (
    COMMON_FAULTS,
    Account,
    Call,
    Limits,
    Listing,
    SandboxError,
)
from syncd.testing.sandbox.base import Sandbox, json_response, request_id

UPDATE = "/product/stock/sellable/update"
ITEM_GET = "/product/item/get"
REFRESH = "/auth/token/refresh"
PREFIX = "/rest"
TIMESTAMP_WINDOW_S = 7200
MAX_SKUS = 50

ERRORS: dict[str, tuple[str, str, str]] = {
    # name: (type, code, message)
    "throttle": (
        "ISV",
        "ApiCallLimit",
        "The request frequency is too high, this ban will last {n} seconds",
    ),
    "e901": (
        "ISV",
        "E901",
        "The request is too frequent, or the requested functionality is temporarily disabled",
    ),
    "token": ("ISV", "IllegalAccessToken", "The specified access token is invalid or expired"),
    "refresh": ("ISV", "IllegalRefreshToken", "The specified refresh token is invalid or expired"),
    "sign": (
        "ISV",
        "IncompleteSignature",
        "The request signature does not conform to platform standards",
    ),
    "timestamp": ("ISV", "InvalidTimestamp", "The timestamp is invalid or out of range"),
    "missing": ("ISV", "MISSING_PARAMETER", "Missing required parameter: {name}"),
    "format": ("ISV", "E005", "Invalid Request Format"),
    "empty": ("ISV", "E030", "Empty Request"),
    "too_many": ("ISV", "E204", "Too many SKU in one request"),
    "batch": ("ISV", "501", "Update product failed"),
    "inner": ("ISP", "1000", "Internal Application Error"),
    "holiday": ("ISV", "SELLER_HOLIDAY_MODE", "Seller is in holiday mode"),
    "not_found": ("ISV", "ITEM_NOT_FOUND", "Product not found"),
}
RESERVED = "SellableQuantity cannot be less than the campaign locked quantity {n}"
UNPAID = "SellableQuantity cannot be less than {n} units withheld for unpaid orders"


def error(kind: str, detail: list[dict[str, Any]] | None = None, **fmt: Any) -> web.Response:
    etype, code, message = ERRORS[kind]
    body: dict[str, Any] = {
        "type": etype,
        "code": code,
        "message": message.format(**fmt),
        "request_id": request_id(),
    }
    if detail is not None:
        body["detail"] = detail
    return json_response(body)


def custom_error(params: Mapping[str, Any], kind: str) -> web.Response:
    """The ``kind`` error, with ``type``/``code``/``message`` from a fault's params when given."""
    etype, code, message = ERRORS[kind]
    return json_response(
        {
            "type": params.get("type", etype),
            "code": params.get("code", code),
            "message": params.get("message", message),
            "request_id": request_id(),
        }
    )


def ok(data: Any) -> web.Response:
    return json_response({"code": "0", "data": data, "request_id": request_id()})


def sign(app_secret: str, api_path: str, params: Mapping[str, str]) -> str:
    base = api_path + "".join(
        f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != ""
    )
    return hmac.new(app_secret.encode(), base.encode(), hashlib.sha256).hexdigest().upper()


def _timestamp_s(value: str) -> float | None:
    if value.isdigit():
        return int(value) / 1000.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text else None


class LazadaSandbox(Sandbox):
    platform = "lazada"
    faults = COMMON_FAULTS | {"vacation", "reserved", "unpaid_min"}
    default_token_ttl_s: ClassVar[float] = 30 * 86400.0
    default_refresh_ttl_s: ClassVar[float] = 180 * 86400.0
    api_prefix = PREFIX

    _ids = itertools.count(500_001)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PREFIX + UPDATE, self.update)
        app.router.add_get(PREFIX + ITEM_GET, self.item_get)
        app.router.add_post(PREFIX + REFRESH, self.refresh)

    # -- accounts and listings --------------------------------------------------

    def make_account(self, name: str, fields: dict[str, Any], limits: Limits) -> Account:
        n = next(self._ids)
        creds = {
            "app_key": str(fields.get("app_key") or n),
            "app_secret": str(fields.get("app_secret") or f"secret{n}" + "cd" * 12),
            "seller_id": str(fields.get("seller_id") or 1_000_000 + n),
        }
        acc = Account(name, creds, limits)
        acc.grant()
        return acc

    def normalize_listing(self, account: Account, ident: Mapping[str, Any]) -> dict[str, Any]:
        sku_id = ident.get("sku_id")
        return {
            **ident,
            "item_id": str(ident.get("item_id")),
            "sku_id": str(sku_id),
            "seller_sku": str(ident.get("seller_sku") or f"SKU-{sku_id}"),
        }

    def listing_key(self, account: Account, ident: Mapping[str, Any]) -> str:
        sku_id = ident.get("sku_id")
        if sku_id in (None, "", "None"):
            raise SandboxError(f"lazada listing needs sku_id: {dict(ident)}")
        return str(sku_id)

    def _find(
        self, acc: Account, item_id: str | None, sku_id: str | None, seller_sku: str | None
    ) -> Listing | None:
        if seller_sku is not None and "  " in seller_sku:
            return None
        for li in acc.listings.values():
            if sku_id is not None:
                if li.ident["sku_id"] == sku_id and item_id in (None, li.ident["item_id"]):
                    return li
            elif seller_sku is not None and li.ident["seller_sku"] == seller_sku:
                return li
        return None

    # -- answers ---------------------------------------------------------------

    def throttle_answer(self, call: Call, retry_after_s: float) -> web.Response:
        if call.answer_params.get("code") == "E901":
            return error("e901")
        return error("throttle", n=max(1, math.ceil(retry_after_s)))

    def platform_error_answer(self, call: Call) -> web.Response:
        return custom_error(call.answer_params, "inner")

    # -- auth ------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    def _check(
        self, acc: Account, request: web.Request, params: Mapping[str, str]
    ) -> web.Response | None:
        for name in ("app_key", "timestamp", "sign_method", "sign"):
            if not params.get(name):
                return error("missing", name=name)
        ts = _timestamp_s(params["timestamp"])
        if ts is None or abs(time.time() - ts) > TIMESTAMP_WINDOW_S:
            return error("timestamp")
        if params["app_key"] != acc.creds["app_key"] or params["sign_method"] != "sha256":
            return error("sign")
        want = sign(acc.creds["app_secret"], request.path[len(PREFIX) :], params)
        if not hmac.compare_digest(want, params["sign"]):
            return error("sign")
        return None

    def _by_token(self, token: str | None, refresh: bool = False) -> Account | None:
        for acc in self.accounts.values():
            if token and token in (acc.refresh if refresh else acc.access):
                return acc
        return None

    async def _seller_api(
        self,
        request: web.Request,
        params: dict[str, str],
        keys: list[str],
        business: Callable[[Call], web.Response],
    ) -> web.StreamResponse:
        """Identify the seller by access token, admit the request, check signature and
        token, then answer with ``business``; the faults that fired count once."""
        token = params.get("access_token")
        acc = self._by_token(token)
        if acc is None:
            return error("missing", name="access_token") if not token else error("token")
        call = Call(acc, keys)
        try:
            early = await self.admit(call, request.path)
            if early is None:
                early = self._check(acc, request, params)
            if early is None and (
                call.fault("token_expired", "token_revoked") or acc.token_state(token) != "ok"
            ):
                early = error("token")
            return early if early is not None else business(call)
        finally:
            call.done()

    # -- routes ----------------------------------------------------------------

    async def update(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        acc = self._by_token(params.get("access_token"))
        skus: list[tuple[str | None, str | None, str | None, str | None]] = []
        malformed = False
        try:
            root = ET.fromstring(params.get("payload", "")) if params.get("payload") else None
            for el in root.iter("Sku") if root is not None else ():
                if el.find("MultiWarehouseInventories") is not None:
                    malformed = True
                skus.append(
                    (
                        _text(el, "ItemId"),
                        _text(el, "SkuId"),
                        _text(el, "SellerSku"),
                        _text(el, "SellableQuantity"),
                    )
                )
        except ET.ParseError:
            malformed = True
        listings = [self._find(acc, i, s, ss) if acc else None for i, s, ss, _ in skus]

        def business(call: Call) -> web.Response:
            if malformed:
                return error("format")
            if not skus:
                return error("empty")
            if len(skus) > MAX_SKUS:
                return error("too_many")
            f = call.fault("vacation")
            if f is not None:
                return custom_error(f.params, "holiday")
            return self._apply(call, skus, listings)

        keys = [li.key for li in listings if li is not None]
        return await self._seller_api(request, params, keys, business)

    def _apply(
        self,
        call: Call,
        skus: list[tuple[str | None, str | None, str | None, str | None]],
        listings: list[Listing | None],
    ) -> web.Response:
        acc = call.account
        detail: list[dict[str, Any]] = []
        for (_, sku_id, seller_sku, raw_qty), li in zip(skus, listings, strict=True):
            shown_sku = seller_sku or (li.ident["seller_sku"] if li else "")
            qty = int(raw_qty) if raw_qty is not None and raw_qty.isdigit() else None
            if qty is not None:
                acc.received(li.key if li else str(sku_id or seller_sku), qty)
            message = self._refusal(call, li, qty)
            if message is not None:
                detail.append(
                    {
                        "field": "SellerSku"
                        if message == "SELLER_SKU_INVALID"
                        else "SellableQuantity",
                        "seller_sku": shown_sku,
                        "message": message,
                    }
                )
            elif li is not None and qty is not None:
                li.stock = qty
        return error("batch", detail) if detail else ok({})

    def _refusal(self, call: Call, li: Listing | None, qty: int | None) -> str | None:
        if li is None or call.fault("unknown_listing", listing=li.key):
            return "SELLER_SKU_INVALID"
        if qty is None:
            return "SellableQuantity must be a non-negative integer"
        for name, text in (("reserved", RESERVED), ("unpaid_min", UNPAID)):
            f = call.fault(name, listing=li.key)
            if f is not None and qty < int(f.params.get("quantity", 0)):
                return str(f.params.get("message", text.format(n=int(f.params["quantity"]))))
        return None

    async def item_get(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        acc = self._by_token(params.get("access_token"))
        item_id, seller_sku = params.get("item_id"), params.get("seller_sku")
        rows: list[Listing] = []
        if acc is not None:
            hit = self._find(acc, None, None, seller_sku) if seller_sku else None
            want = item_id or (hit.ident["item_id"] if hit else None)
            rows = [li for li in acc.listings.values() if li.ident["item_id"] == want]

        def business(call: Call) -> web.Response:
            found = [li for li in rows if not call.fault("unknown_listing", listing=li.key)]
            if not found:
                return error("not_found")
            first = found[0].ident["item_id"]
            return ok(
                {
                    "item_id": int(first) if first.isdigit() else first,
                    "skus": [self._sku_view(call, li) for li in found],
                }
            )

        return await self._seller_api(request, params, [li.key for li in rows], business)

    def _sku_view(self, call: Call, li: Listing) -> dict[str, Any]:
        acc = call.account
        reserved = acc.find_fault(["reserved"], li.key)
        unpaid = acc.find_fault(["unpaid_min"], li.key)
        locked = int(reserved.params.get("quantity", 0)) if reserved else 0
        withheld = int(unpaid.params.get("quantity", 0)) if unpaid else 0
        sku_id = li.ident["sku_id"]
        return {
            "SkuId": int(sku_id) if sku_id.isdigit() else sku_id,
            "SellerSku": li.ident["seller_sku"],
            "quantity": li.stock + withheld,
            "Available": li.stock,
            "sellableQuantity": li.stock,
            "multiWarehouseInventories": [
                {
                    "warehouseCode": "dropshipping",
                    "totalQuantity": li.stock + withheld,
                    "sellableQuantity": li.stock,
                    "occupyQuantity": 0,
                    "withholdQuantity": withheld,
                }
            ],
            "channelInventories": [{"name": "campaign", "sellableQuantity": locked}]
            if locked
            else [],
        }

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        acc = self._by_token(params.get("refresh_token"), refresh=True)
        if acc is None:
            return (
                error("missing", name="refresh_token")
                if not params.get("refresh_token")
                else error("refresh")
            )
        call = Call(acc)
        try:
            early = await self.admit(call, request.path)
            if early is None:
                early = self._check(acc, request, params)
            if early is not None:
                return early
            if (
                call.fault("refresh_fail", "token_revoked")
                or acc.refresh_state(params["refresh_token"]) != "ok"
            ):
                return error("refresh")
            acc.refreshes += 1
            acc.token_requests += 1
            access, refresh = acc.grant(new_refresh=False)
            left = max(0, int(acc.refresh[refresh] - time.time()))
            return json_response(
                {
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": int(acc.limits.token_ttl_s),
                    "refresh_expires_in": left,
                    "country": "sg",
                    "account_platform": "seller_center",
                    "account": acc.name,
                    "country_user_info": [
                        {
                            "country": "sg",
                            "seller_id": acc.creds["seller_id"],
                            "user_id": acc.creds["seller_id"],
                            "short_code": "SG",
                        }
                    ],
                    "code": "0",
                    "request_id": request_id(),
                }
            )
        finally:
            call.done()

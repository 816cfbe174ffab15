"""Shopee Open Platform v2 sandbox: stock update, read-back and token calls.

Owns the Shopee paths (``base_url`` is the server root):

- ``POST /api/v2/product/update_stock`` (shop API), body ``{"item_id",
  "stock_list": [{"model_id", "seller_stock": [{"stock"}]}]}``; 1-50 models,
  one item per call.
- ``GET /api/v2/product/get_model_list?item_id=`` and
  ``GET /api/v2/product/get_item_base_info?item_id_list=1,2`` (<= 50 ids):
  ``stock_info_v2`` with ``summary_info.total_reserved_stock``.
- ``POST /api/v2/auth/token/get`` ``{code, shop_id, partner_id}`` and
  ``POST /api/v2/auth/access_token/get`` ``{refresh_token, shop_id,
  partner_id}`` (public APIs): each refresh returns a NEW refresh token and
  the old one stops working; older access tokens stay valid until they expire.

Documented facts [C] (channels.md section 1): envelope ``{request_id, error,
message, warning, response}`` with ``error == ""`` on success; per-model
``success_list``/``failure_list``; signing ``partner_id+path+timestamp
[+access_token+shop_id]``, HMAC-SHA256 lowercase hex; timestamp valid 5 min
(``error_param`` "Invalid timestamp"), ``error_sign`` "Wrong sign";
``error_auth`` "Invalid access_token."; access token 4 h; holiday mode
``error_holiday_mode_change_stock``; reserved-stock messages; not-found
``error_item_not_found``; retryable ``error_inner``.

Modelled ASSUMPTIONS (no source states them; change ``HTTP_STATUS`` or the
fault params to match what you observe):

- HTTP statuses: ``error_auth``/``error_sign`` 403, ``error_param`` 400,
  ``error_inner`` 500, business errors 200 (see ``HTTP_STATUS``). Clients
  must decide from the body anyway.
- Throttling: no limit is published. The sandbox answers HTTP **429** with
  ``error_server`` / "Too many requests, please try again later" (the pair
  comes from a client's error list [3P]; combining it with 429 is assumed).
- A bad model id answers HTTP 200, ``error == ""`` and ``failure_list``
  reason "model ID not exist in sku" ([3P] sandbox observation).
- ``reserved`` fault ``shape``: ``failure_list`` (default: failed_reason
  "Total stock must be more than reserved stock.", top-level ``error`` from
  param ``error``, default ""), ``error_param`` ("Can not update item with
  stock less than reserved stock"), ``error_auth`` ("Stock should be larger
  than reserved stock."), ``promotion`` (hard block,
  ``error_promotion_cantnot_update_stock``). Which one Shopee uses when is
  undocumented; the documented messages do not carry the number, the
  read-back's ``total_reserved_stock`` does.
- ``unpaid_min``: no Shopee code exists; modelled as failure_list reason
  "Stock can not be less than N because of unpaid orders." (carries N).
- ``vacation``: param ``prefixed`` (bool) sends
  ``product.error_holiday_mode_change_stock`` (seen [3P]).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Callable, Mapping
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
from syncd.testing.sandbox.base import Sandbox, json_response, read_json, request_id

UPDATE_STOCK = "/api/v2/product/update_stock"
GET_MODEL_LIST = "/api/v2/product/get_model_list"
GET_ITEM_BASE_INFO = "/api/v2/product/get_item_base_info"
TOKEN_GET = "/api/v2/auth/token/get"
REFRESH = "/api/v2/auth/access_token/get"

TIMESTAMP_WINDOW_S = 300
MAX_STOCK = 10_000_000

HTTP_STATUS: dict[str, int] = {
    "error_auth": 403,
    "error_sign": 403,
    "error_param": 400,
    "error_inner": 500,
    "error_server": 429,
}
"""ASSUMED HTTP status per error code; anything else answers 200."""

THROTTLE = ("error_server", "Too many requests, please try again later")
INNER = ("error_inner", "Something wrong. Please try later.")
BAD_TOKEN = ("error_auth", "Invalid access_token.")
BAD_REFRESH = ("error_auth", "Invalid refresh_token.")
HOLIDAY = ("error_holiday_mode_change_stock", "Cannot change stock in holiday mode.")
NOT_FOUND = ("error_item_not_found", "Item_id is not found.")
MODEL_NOT_FOUND = "model ID not exist in sku"
RESERVED_SHAPES: dict[str, tuple[str, str]] = {
    "failure_list": ("", "Total stock must be more than reserved stock."),
    "error_param": ("error_param", "Can not update item with stock less than reserved stock"),
    "error_auth": ("error_auth", "Stock should be larger than reserved stock."),
    "promotion": (
        "error_promotion_cantnot_update_stock",
        "Cannot change stock when item is under promotion.",
    ),
}
UNPAID = "Stock can not be less than {n} because of unpaid orders."


def answer(
    error: str = "", message: str = "", response: Any = None, status: int | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "request_id": request_id(),
        "error": error,
        "message": message,
        "warning": "",
    }
    if response is not None:
        body["response"] = response
    return json_response(body, status if status is not None else HTTP_STATUS.get(error, 200))


def sign(partner_key: str, base: str) -> str:
    return hmac.new(partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


class ShopeeSandbox(Sandbox):
    platform = "shopee"
    faults = COMMON_FAULTS | {"vacation", "reserved", "unpaid_min", "failure_list"}
    default_token_ttl_s: ClassVar[float] = 4 * 3600.0
    default_refresh_ttl_s: ClassVar[float] = 30 * 86400.0

    _ids = itertools.count(100_001)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(UPDATE_STOCK, self.update_stock)
        app.router.add_get(GET_MODEL_LIST, self.get_model_list)
        app.router.add_get(GET_ITEM_BASE_INFO, self.get_item_base_info)
        app.router.add_post(TOKEN_GET, self.token_get)
        app.router.add_post(REFRESH, self.refresh)

    # -- accounts and listings --------------------------------------------------

    def make_account(self, name: str, fields: dict[str, Any], limits: Limits) -> Account:
        shop_id = int(fields.get("shop_id") or next(self._ids))
        creds = {
            "partner_id": int(fields.get("partner_id") or 2_000_000 + shop_id % 100_000),
            "partner_key": str(fields.get("partner_key") or f"key-{shop_id}-" + "ab" * 16),
            "shop_id": shop_id,
        }
        acc = Account(name, creds, limits)
        acc.grant()
        acc.codes.add(f"code-{shop_id}-{int(time.time())}")
        return acc

    def account_credentials(self, account: Account) -> dict[str, Any]:
        return {**super().account_credentials(account), "code": next(iter(account.codes), None)}

    def normalize_listing(self, account: Account, ident: Mapping[str, Any]) -> dict[str, Any]:
        item, model = _int(ident.get("item_id")), _int(ident.get("model_id") or 0)
        return {
            **ident,
            "item_id": ident.get("item_id") if item is None else item,
            "model_id": ident.get("model_id") if model is None else model,
        }

    def listing_key(self, account: Account, ident: Mapping[str, Any]) -> str:
        item, model = _int(ident.get("item_id")), _int(ident.get("model_id") or 0)
        if item is None or model is None:
            raise SandboxError(f"shopee listing needs integer item_id/model_id: {dict(ident)}")
        return f"{item}/{model}"

    def _by_shop(self, shop_id: int | None) -> Account | None:
        for acc in self.accounts.values():
            if acc.creds["shop_id"] == shop_id:
                return acc
        return None

    def _reserved(self, call: Call, key: str) -> int:
        f = call.account.find_fault(["reserved"], key)
        return int(f.params.get("quantity", 0)) if f else 0

    # -- answers ---------------------------------------------------------------

    def throttle_answer(self, call: Call, retry_after_s: float) -> web.Response:
        return answer(*THROTTLE)

    def platform_error_answer(self, call: Call) -> web.Response:
        params = call.answer_params
        error = str(params.get("error", INNER[0]))
        return answer(error, str(params.get("message", INNER[1])), status=params.get("status"))

    # -- auth ------------------------------------------------------------------

    async def _shop_api(
        self, request: web.Request, keys: list[str], business: Callable[[Call], web.Response]
    ) -> web.StreamResponse:
        """Identify the shop, admit the request, check the shop-API signature and token,
        then answer with ``business``; the faults that fired count once. A request that
        names no known shop is answered without being recorded."""
        acc = self._by_shop(_int(request.query.get("shop_id")))
        if acc is None:
            return answer("error_auth", "Invalid partner_id or shopid.")
        call = Call(acc, keys)
        try:
            early = await self.admit(call, request.path)
            if early is None:
                early = self._shop_auth(call, request)
            return early if early is not None else business(call)
        finally:
            call.done()

    def _shop_auth(self, call: Call, request: web.Request) -> web.Response | None:
        q = request.query
        token = q.get("access_token")
        if not token:
            return answer("error_param", "There is no access_token in query")
        bad = self._check_common(call.account, request, token + q.get("shop_id", ""))
        if bad is not None:
            return bad
        if call.fault("token_expired", "token_revoked") or call.account.token_state(token) != "ok":
            return answer(*BAD_TOKEN)
        return None

    # -- routes ----------------------------------------------------------------

    async def update_stock(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        item_id = _int(body.get("item_id")) if isinstance(body, dict) else None
        stock_list = body.get("stock_list") if isinstance(body, dict) else None
        entries: list[tuple[int | None, Any]] = []
        if isinstance(stock_list, list):
            for m in stock_list:
                m = m if isinstance(m, dict) else {}
                entries.append((_int(m.get("model_id", 0)), m.get("seller_stock")))
        keys = [f"{item_id}/{mid}" for mid, _ in entries]

        def business(call: Call) -> web.Response:
            if item_id is None or not isinstance(stock_list, list):
                return answer("error_param", "item_id and stock_list are required")
            if not 1 <= len(entries) <= 50:
                return answer("error_param", "stock_list must have 1-50 models")
            return self._apply(call, item_id, entries)

        return await self._shop_api(request, keys, business)

    def _apply(
        self, call: Call, item_id: int, entries: list[tuple[int | None, Any]]
    ) -> web.Response:
        acc = call.account
        f = call.fault("vacation")
        if f is not None:
            code = ("product." if f.params.get("prefixed") else "") + HOLIDAY[0]
            return answer(code, HOLIDAY[1])
        item = [li for li in acc.listings.values() if li.ident["item_id"] == item_id]
        if not item or call.fault("unknown_listing", listing=f"{item_id}/0"):
            return answer(*NOT_FOUND)
        seen: set[int] = set()
        quantities: list[tuple[int, int | None]] = []
        for model_id, seller_stock in entries:
            qty = None
            if (
                isinstance(seller_stock, list)
                and len(seller_stock) == 1
                and isinstance(seller_stock[0], dict)
            ):
                qty = _int(seller_stock[0].get("stock"))
            if model_id is None or model_id in seen:
                return answer(
                    "error_param", "Repeat model_id." if model_id in seen else "Wrong model_id."
                )
            seen.add(model_id)
            quantities.append((model_id, qty))
        for model_id, qty in quantities:  # whole-call refusals first
            key = f"{item_id}/{model_id}"
            if qty is not None:
                acc.received(key, qty)
            r = call.fault("reserved", listing=key)
            shape = str(r.params.get("shape", "failure_list")) if r else ""
            if (
                r is not None
                and shape != "failure_list"
                and (shape == "promotion" or (qty or 0) < int(r.params.get("quantity", 0)))
            ):
                code, msg = RESERVED_SHAPES.get(shape, RESERVED_SHAPES["error_param"])
                return answer(code, msg)
        success: list[dict[str, Any]] = []
        failure: list[dict[str, Any]] = []
        top_error = ""
        for model_id, qty in quantities:
            key = f"{item_id}/{model_id}"
            listing = acc.listings.get(key)
            reason, err = self._refusal(call, key, listing, qty)
            if reason is None and listing is not None and qty is not None:
                listing.stock = qty
                success.append({"model_id": model_id, "location_id": "", "stock": qty})
            else:
                failure.append({"model_id": model_id, "failed_reason": reason})
                top_error = top_error or err
        message = (
            "Update stock failed, please check failure_list for detailed reason"
            if top_error
            else ""
        )
        return answer(top_error, message, {"success_list": success, "failure_list": failure})

    def _refusal(
        self, call: Call, key: str, listing: Listing | None, qty: int | None
    ) -> tuple[str | None, str]:
        """(failed_reason, top-level error) for one model, or (None, "")."""
        if listing is None or call.fault("unknown_listing", listing=key):
            return MODEL_NOT_FOUND, ""
        if qty is None or not 0 <= qty <= MAX_STOCK:
            return f"Stock should be within 0-{MAX_STOCK}", ""
        f = call.fault("failure_list", listing=key)
        if f is not None:
            return str(f.params.get("reason", "Update stock failed.")), str(
                f.params.get("error", "")
            )
        f = call.fault("reserved", listing=key)
        if f is not None and qty < int(f.params.get("quantity", 0)):
            return RESERVED_SHAPES["failure_list"][1], str(f.params.get("error", ""))
        f = call.fault("unpaid_min", listing=key)
        if f is not None and qty < int(f.params.get("quantity", 0)):
            return UNPAID.format(n=int(f.params.get("quantity", 0))), str(f.params.get("error", ""))
        return None, ""

    def _stock_info(self, call: Call, listing: Listing) -> dict[str, Any]:
        reserved = self._reserved(call, listing.key)
        return {
            "summary_info": {
                "total_reserved_stock": reserved,
                "total_available_stock": max(0, listing.stock - reserved),
            },
            "seller_stock": [{"location_id": "", "stock": listing.stock, "if_saleable": True}],
            "shopee_stock": [],
        }

    async def get_model_list(self, request: web.Request) -> web.StreamResponse:
        item_id = _int(request.query.get("item_id"))
        return await self._read(request, [item_id] if item_id is not None else None, True)

    async def get_item_base_info(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("item_id_list", "")
        ids = [_int(x) for x in raw.split(",") if x.strip()]
        ok = [i for i in ids if i is not None]
        return await self._read(request, ok if ok and len(ok) == len(ids) else None, False)

    async def _read(
        self, request: web.Request, ids: list[int] | None, models: bool
    ) -> web.StreamResponse:
        acc = self._by_shop(_int(request.query.get("shop_id")))
        keys = (
            [k for k, li in acc.listings.items() if li.ident["item_id"] in (ids or [])]
            if acc
            else []
        )
        return await self._shop_api(
            request, keys, lambda call: self._read_answer(call, ids, models)
        )

    def _read_answer(self, call: Call, ids: list[int] | None, models: bool) -> web.Response:
        if not ids or len(ids) > 50:
            return answer(
                "error_param",
                "item_id is invalid" if models else "item_id_list must have 1-50 ids",
            )
        listings = [li for li in call.account.listings.values() if li.ident["item_id"] in ids]
        if models:
            if not listings:
                return answer(*NOT_FOUND)
            return answer(
                response={
                    "tier_variation": [],
                    "model": [
                        {
                            "model_id": li.ident["model_id"],
                            "model_sku": str(li.ident.get("sku", "")),
                            "stock_info_v2": self._stock_info(call, li),
                        }
                        for li in listings
                        if li.ident["model_id"] != 0
                    ],
                }
            )
        items = []
        for item_id in ids:
            rows = [li for li in listings if li.ident["item_id"] == item_id]
            if not rows:
                continue
            entry: dict[str, Any] = {
                "item_id": item_id,
                "item_status": "NORMAL",
                "has_model": any(li.ident["model_id"] for li in rows),
            }
            if not entry["has_model"]:
                entry["stock_info_v2"] = self._stock_info(call, rows[0])
            items.append(entry)
        return answer(response={"item_list": items})

    # -- token calls -----------------------------------------------------------

    async def token_get(self, request: web.Request) -> web.StreamResponse:
        return await self._public(request, exchange=True)

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        return await self._public(request, exchange=False)

    async def _public(self, request: web.Request, *, exchange: bool) -> web.StreamResponse:
        body = await read_json(request)
        body = body if isinstance(body, dict) else {}
        acc = self._by_shop(_int(body.get("shop_id")))
        if acc is None:
            return answer("error_auth", "Invalid partner_id or shopid.")
        call = Call(acc)
        try:
            early = await self.admit(call, request.path)
            if early is not None:
                return early
            bad = self._check_public_sign(acc, request)
            if bad is not None:
                return bad
            if _int(body.get("partner_id")) != acc.creds["partner_id"]:
                return answer("error_auth", "Invalid partner_id or shopid.")
            if exchange:
                code = str(body.get("code", ""))
                if code not in acc.codes:
                    return answer("error_auth", "Invalid code.")
                acc.codes.discard(code)
            else:
                if (
                    call.fault("refresh_fail", "token_revoked")
                    or acc.refresh_state(str(body.get("refresh_token", ""))) != "ok"
                ):
                    return answer(*BAD_REFRESH)
                acc.refreshes += 1
            acc.token_requests += 1
            access, refresh = acc.grant(rotate_refresh=True)
            reply = {
                "request_id": request_id(),
                "error": "",
                "message": "",
                "access_token": access,
                "refresh_token": refresh,
                "expire_in": int(acc.limits.token_ttl_s),
            }
            if exchange:
                reply["shop_id_list"] = [acc.creds["shop_id"]]
            else:
                reply.update(partner_id=acc.creds["partner_id"], shop_id=acc.creds["shop_id"])
            return json_response(reply)
        finally:
            call.done()

    def _check_common(
        self, acc: Account, request: web.Request, base_extra: str
    ) -> web.Response | None:
        q = request.query
        partner_id, ts, got = _int(q.get("partner_id")), _int(q.get("timestamp")), q.get("sign")
        if partner_id is None or ts is None or not got:
            return answer("error_param", "partner_id, timestamp and sign are required")
        if partner_id != acc.creds["partner_id"]:
            return answer("error_auth", "Invalid partner_id or shopid.")
        if abs(time.time() - ts) > TIMESTAMP_WINDOW_S:
            return answer("error_param", "Invalid timestamp")
        want = sign(acc.creds["partner_key"], f"{partner_id}{request.path}{ts}{base_extra}")
        if not hmac.compare_digest(want, got):
            return answer("error_sign", "Wrong sign")
        return None

    def _check_public_sign(self, acc: Account, request: web.Request) -> web.Response | None:
        return self._check_common(acc, request, "")

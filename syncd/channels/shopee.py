"""Shopee Open Platform v2 client: stock pushes, read-back and token rotation.

Owns the request shapes of ``v2.product.update_stock`` (one ``item_id`` per
call, 1..50 models, ``seller_stock`` only), ``v2.product.get_model_list`` and
``v2.product.get_item_base_info`` (read-back), and
``v2.auth.access_token.get`` (refresh: every answer carries a NEW refresh
token, which is written to the token store before anything else happens).

Success is decided from the body, never from the HTTP status: a model is
applied when it is in ``response.success_list``; it failed when it is in
``response.failure_list`` (``failed_reason`` is the message; the top-level
``error`` the code, when set); otherwise a non-empty top-level ``error``
applies to every model of the call.

Settings: ``base_url`` (default ``https://partner.shopeemobile.com``),
``partner_id`` (int), ``partner_key`` (secret), ``shop_id`` (int),
``refresh_token`` / ``access_token`` (secrets; the first token only, the
token store wins afterwards), ``refresh_ahead_s`` (default 600),
``batch_size`` (models per call, at most 50), ``timeout_s``,
``max_connections``.

Listing object: ``{"item_id": int, "model_id": int}`` (``model_id`` 0 or
absent for an item without models), optionally ``"location_id": str`` for
multi-warehouse shops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncd.channels.answers import HttpResult, fail_unreadable
from syncd.channels.base import (
    NO_RESULT,
    PushOutcome,
    StockUpdate,
    chunk,
    failure,
    listing_ref,
    success,
)
from syncd.channels.http import HttpChannel
from syncd.channels.settings import ChannelSettings, Int, Secret
from syncd.channels.signing import shopee_sign
from syncd.core.errortable import bare_code

UPDATE_STOCK = "/api/v2/product/update_stock"
GET_MODEL_LIST = "/api/v2/product/get_model_list"
GET_ITEM_BASE_INFO = "/api/v2/product/get_item_base_info"
REFRESH = "/api/v2/auth/access_token/get"
MAX_MODELS = 50
MAX_ITEMS_PER_READ = 50

# Codes (module prefix stripped) that mean "the access token is not good", when the
# message names the access token; Shopee reuses error_auth for business refusals
# ("Total stock must be more than reserved stock."), so the code alone is not enough.
_TOKEN_CODES = {"error_auth", "error_param", "error_permission"}
_ALWAYS_TOKEN_CODES = {"invalid_acceess_token", "invalid_access_token", "error_invalid_token"}


def is_token_error(status: int, body: Any) -> bool:
    if status == 401:
        return True
    if not isinstance(body, dict):
        return False
    code = bare_code("shopee", str(body.get("error") or "")) or ""
    message = str(body.get("message") or "").lower()
    if code in _ALWAYS_TOKEN_CODES:
        return True
    return code in _TOKEN_CODES and ("access_token" in message or "access token" in message)


def model_of(listing: Mapping[str, Any]) -> int:
    value = listing.get("model_id", 0)
    return int(value) if value is not None else 0


def item_of(listing: Mapping[str, Any]) -> int | None:
    value = listing.get("item_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def valid_listing(listing: Mapping[str, Any]) -> bool:
    if item_of(listing) is None:
        return False
    mid = listing.get("model_id", 0)
    if mid is not None and (isinstance(mid, bool) or not isinstance(mid, int | str)):
        return False
    if isinstance(mid, str) and not mid.isdigit():
        return False
    loc = listing.get("location_id")
    return loc is None or isinstance(loc, str)


def build_update_stock(batch: Sequence[StockUpdate]) -> dict[str, Any]:
    """The JSON body of ``update_stock`` for updates of one item."""
    item_id = item_of(batch[0].listing)
    stock_list = []
    for u in batch:
        seller: dict[str, Any] = {"stock": u.quantity}
        loc = u.listing.get("location_id")
        if loc:
            seller = {"location_id": loc, "stock": u.quantity}
        stock_list.append({"model_id": model_of(u.listing), "seller_stock": [seller]})
    return {"item_id": item_id, "stock_list": stock_list}


def parse_update_stock(batch: Sequence[StockUpdate], result: HttpResult) -> list[PushOutcome]:
    """One outcome per update from an ``update_stock`` answer."""
    body = result.body
    retry_after = result.retry_after()
    if not isinstance(body, dict):
        return fail_unreadable(batch, result, retry_after)
    error = str(body.get("error") or "") or None
    message = body.get("message")
    message = str(message) if message not in (None, "") else None
    request_id = body.get("request_id")
    response = body.get("response") if isinstance(body.get("response"), dict) else {}
    assert isinstance(response, dict)
    applied = _by_id(response.get("success_list"), "model_id")
    failed = _by_id(response.get("failure_list"), "model_id")
    out = []
    for u in batch:
        mid = model_of(u.listing)
        raw: dict[str, Any] = {"request_id": request_id, "error": error, "message": message}
        if body.get("warning"):
            raw["warning"] = body.get("warning")
        if mid in failed:
            entry = failed[mid]
            raw["failure"] = entry
            reason = entry.get("failed_reason")
            text = str(reason) if reason is not None else message
            out.append(failure(u, result.status, error, text, retry_after, raw))
        elif mid in applied:
            raw["success"] = applied[mid]
            out.append(success(u, result.status, raw))
        elif error is not None or result.status >= 400:
            out.append(failure(u, result.status, error, message, retry_after, raw))
        else:
            text = "model in neither success_list nor failure_list"
            out.append(failure(u, result.status, NO_RESULT, text, None, raw))
    return out


def _by_id(entries: Any, key: str) -> dict[int, dict[str, Any]]:
    """The dict entries of a list that carry ``key``, by its integer value (the last one wins)."""
    return {int(e[key]): e for e in entries or [] if isinstance(e, dict) and key in e}


def seller_stock_of(stock_info: Any, location_id: str | None) -> int | None:
    """Sum of ``stock_info_v2.seller_stock[].stock`` (of one location when given)."""
    if not isinstance(stock_info, dict):
        return None
    rows = stock_info.get("seller_stock")
    if not isinstance(rows, list):
        return None
    total = 0
    seen = False
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("stock"), int):
            continue
        if location_id is not None and row.get("location_id") != location_id:
            continue
        total += row["stock"]
        seen = True
    return total if seen else None


class ShopeeSettings(ChannelSettings):
    """A Shopee shop's settings (module docstring); ``partner_key`` is a secret."""

    platform = "shopee"
    partner_id: Int
    shop_id: Int
    partner_key: Secret


class ShopeeChannel(HttpChannel):
    platform = "shopee"
    settings_model = ShopeeSettings
    settings: ShopeeSettings
    hard_max_batch = MAX_MODELS
    default_batch = MAX_MODELS
    default_refresh_ahead_s = 600.0
    default_base_url = "https://partner.shopeemobile.com"
    invalid_listing_message = (
        "shopee listing needs an integer item_id (and model_id, 0 for no model)"
    )

    def _configure(self) -> None:
        self.partner_id = self.settings.partner_id
        self.shop_id = self.settings.shop_id
        self._partner_key = self.settings.partner_key.get_secret_value()

    # -- signing --------------------------------------------------------------

    def _shop_params(self, path: str, access_token: str) -> dict[str, str]:
        ts = int(self._clock())
        sign = shopee_sign(self._partner_key, self.partner_id, path, ts, access_token, self.shop_id)
        return {
            "partner_id": str(self.partner_id),
            "timestamp": str(ts),
            "access_token": access_token,
            "shop_id": str(self.shop_id),
            "sign": sign,
        }

    def _public_params(self, path: str) -> dict[str, str]:
        ts = int(self._clock())
        sign = shopee_sign(self._partner_key, self.partner_id, path, ts)
        return {"partner_id": str(self.partner_id), "timestamp": str(ts), "sign": sign}

    # -- tokens ---------------------------------------------------------------

    async def _fetch_token(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        assert current is not None and current.get("refresh_token")
        body = {
            "refresh_token": current["refresh_token"],
            "shop_id": self.shop_id,
            "partner_id": self.partner_id,
        }
        result = await self.request(
            "POST",
            self.base_url + REFRESH,
            operation="refresh_token",
            params=self._public_params(REFRESH),
            json_body=body,
        )
        data = result.body
        if (
            not isinstance(data, dict)
            or data.get("error")
            or not data.get("access_token")
            or result.status >= 400
        ):
            code = str(data.get("error")) if isinstance(data, dict) and data.get("error") else None
            keys = ("request_id", "error", "message")
            raise self._token_refused(result, code, result.message(), keys)
        # Shopee hands out a new refresh token every time; the old one is kept only
        # if (against the docs) none came back.
        expire_in = float(data.get("expire_in") or data.get("expires_in") or 14400)
        return self._token_from(data, current, expire_in)

    # -- push -----------------------------------------------------------------

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        return valid_listing(listing)

    def _batch_group(self, listing: Mapping[str, Any]) -> Any:
        """One item per call."""
        return item_of(listing)

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        body = build_update_stock(batch)

        async def send(token: str) -> HttpResult:
            return await self.request(
                "POST",
                self.base_url + UPDATE_STOCK,
                operation="update_stock",
                params=self._shop_params(UPDATE_STOCK, token),
                json_body=body,
            )

        result = await self.with_token(send, lambda r: is_token_error(r.status, r.body))
        outcomes = parse_update_stock(batch, result)
        failed = sum(1 for o in outcomes if not o.ok)
        self._log.info(
            "channel_pushed",
            item_id=body["item_id"],
            models=len(batch),
            failed=failed,
            http_status=result.status,
        )
        return outcomes

    # -- read-back ------------------------------------------------------------

    async def _read(
        self, path: str, query: Mapping[str, str], operation: str, list_key: str, id_key: str
    ) -> dict[int, dict[str, Any]] | None:
        """The ``response.<list_key>`` entries of a read call, by ``id_key``; None when the
        call failed (logged)."""

        async def send(token: str) -> HttpResult:
            params = {**self._shop_params(path, token), **query}
            return await self.request(
                "GET", self.base_url + path, operation=operation, params=params
            )

        result = await self.with_token(send, lambda r: is_token_error(r.status, r.body))
        body = result.body
        if not isinstance(body, dict) or body.get("error") or result.status >= 400:
            code = body.get("error") if isinstance(body, dict) else None
            self._log_read_failed(operation, result, code)
            return None
        response = body.get("response") or {}
        return _by_id(response.get(list_key), id_key)

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """``seller_stock`` per listing (summed over locations unless the listing names one)."""
        out: dict[str, int] = {}
        for listing, info in await self._stock_infos(listings):
            qty = seller_stock_of(info, listing.get("location_id"))
            if qty is not None:
                out[listing_ref(listing)] = qty
        return out

    async def read_held(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """``summary_info.total_reserved_stock`` per listing: the units a promotion or flash
        sale reserves (Shopee's reserved-stock refusals carry no number)."""
        out: dict[str, int] = {}
        for listing, info in await self._stock_infos(listings):
            summary = info.get("summary_info") if info else None
            reserved = summary.get("total_reserved_stock") if isinstance(summary, dict) else None
            if isinstance(reserved, int) and not isinstance(reserved, bool):
                out[listing_ref(listing)] = reserved
        return out

    async def _stock_infos(
        self, listings: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Each readable listing with its ``stock_info_v2`` (None when the platform gave none):
        ``get_model_list`` per item with models, ``get_item_base_info`` for the others."""
        with_models: dict[int, list[dict[str, Any]]] = {}
        without: dict[int, list[dict[str, Any]]] = {}
        for listing in listings:
            if not valid_listing(listing):
                continue
            item = item_of(listing)
            assert item is not None
            target = with_models if model_of(listing) else without
            target.setdefault(item, []).append(listing)
        out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

        def record(listing: dict[str, Any], entry: dict[str, Any] | None) -> None:
            info = entry.get("stock_info_v2") if entry else None
            out.append((listing, info if isinstance(info, dict) else None))

        for item, group in with_models.items():
            query = {"item_id": str(item)}
            models = await self._read(GET_MODEL_LIST, query, "get_model_list", "model", "model_id")
            if models is None:
                continue
            for listing in group:
                record(listing, models.get(model_of(listing)))
        for part in chunk(list(without), MAX_ITEMS_PER_READ):
            query = {"item_id_list": ",".join(str(x) for x in part)}
            items = await self._read(
                GET_ITEM_BASE_INFO, query, "get_item_base_info", "item_list", "item_id"
            )
            if items is None:
                continue
            for item in part:
                for listing in without[item]:
                    record(listing, items.get(item))
        return out

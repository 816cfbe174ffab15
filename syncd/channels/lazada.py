"""Lazada Open Platform (LAZOP) client: sellable-stock pushes, read-back, token refresh.

Owns the request shapes of ``UpdateSellableQuantity``
(``POST /product/stock/sellable/update``, an XML ``payload`` of at most 50
SKUs, which may span items), ``GetProductItem`` (``GET /product/item/get``,
read-back) and ``/auth/token/refresh``, and LAZOP signing (all parameters but
``sign`` sorted by name, ``k1v1k2v2...`` prefixed by the API path,
HMAC-SHA256 with the app secret, uppercase hex; ``sign_method=sha256``,
``timestamp`` in epoch milliseconds). Parameters travel as an
``application/x-www-form-urlencoded`` body on POST (as the official SDKs do)
and in the query on GET.

Success: ``code == "0"``. Otherwise ``code``/``message`` are the platform's;
``detail[]`` entries naming a ``seller_sku`` (or ``sku_id``) fail that SKU
with the entry's message, and the other SKUs of the call get
``syncd.batch_rejected`` (not known to be applied; re-sending an absolute
quantity is harmless). ``IllegalAccessToken`` triggers one refresh and one
re-send. ``ApiCallLimit`` ("...ban will last N seconds") sets
``retry_after_s``.

Settings: ``base_url`` (default ``https://api.lazada.sg/rest``), ``auth_url``
(default ``https://auth.lazada.com/rest``), ``app_key``, ``app_secret``
(secret), ``access_token`` / ``refresh_token`` (secrets, first token only),
``refresh_ahead_s`` (default 1800), ``batch_size`` (at most 50),
``timeout_s``, ``max_connections``.

Listing object: ``{"item_id": int, "sku_id": int}`` and/or
``{"seller_sku": str}`` (all that are present are sent); optionally
``"warehouse_code": str`` for multi-warehouse sellers (then the
``MultiWarehouseInventories`` form is used for that SKU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from syncd.channels.answers import HttpResult, fail_unreadable, seconds_in
from syncd.channels.base import (
    BATCH_REJECTED,
    PushOutcome,
    StockUpdate,
    failure,
    listing_ref,
    success,
)
from syncd.channels.http import HttpChannel
from syncd.channels.settings import ChannelSettings, Secret, Str, field_validator
from syncd.channels.signing import lazada_sign

SELLABLE_UPDATE = "/product/stock/sellable/update"
ITEM_GET = "/product/item/get"
TOKEN_REFRESH = "/auth/token/refresh"
MAX_SKUS = 50
_TOKEN_CODES = {"IllegalAccessToken", "MissingAccessToken", "InvalidAccessToken"}
_THROTTLE_CODES = {"ApiCallLimit", "E901"}


def _id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    return None


def valid_listing(listing: Mapping[str, Any]) -> bool:
    has_ids = _id(listing.get("item_id")) is not None and _id(listing.get("sku_id")) is not None
    sku = listing.get("seller_sku")
    has_sku = isinstance(sku, str) and sku != ""
    wh = listing.get("warehouse_code")
    return (has_ids or has_sku) and (wh is None or isinstance(wh, str))


def sku_xml(u: StockUpdate) -> str:
    """One ``<Sku>`` element (values XML-escaped)."""
    parts = ["<Sku>"]
    item_id, sku_id = _id(u.listing.get("item_id")), _id(u.listing.get("sku_id"))
    if item_id is not None:
        parts.append(f"<ItemId>{item_id}</ItemId>")
    if sku_id is not None:
        parts.append(f"<SkuId>{sku_id}</SkuId>")
    seller_sku = u.listing.get("seller_sku")
    if isinstance(seller_sku, str) and seller_sku:
        parts.append(f"<SellerSku>{escape(seller_sku)}</SellerSku>")
    warehouse = u.listing.get("warehouse_code")
    if isinstance(warehouse, str) and warehouse:
        parts.append(
            "<MultiWarehouseInventories><MultiWarehouseInventory>"
            f"<WarehouseCode>{escape(warehouse)}</WarehouseCode>"
            f"<SellableQuantity>{u.quantity}</SellableQuantity>"
            "</MultiWarehouseInventory></MultiWarehouseInventories>"
        )
    else:
        parts.append(f"<SellableQuantity>{u.quantity}</SellableQuantity>")
    parts.append("</Sku>")
    return "".join(parts)


def build_payload(batch: Sequence[StockUpdate]) -> str:
    """The XML ``payload`` of ``UpdateSellableQuantity``."""
    skus = "".join(sku_xml(u) for u in batch)
    return f"<Request><Product><Skus>{skus}</Skus></Product></Request>"


def _detail_matches(entry: Mapping[str, Any], listing: Mapping[str, Any]) -> bool:
    seller_sku = listing.get("seller_sku")
    for key in ("seller_sku", "SellerSku", "sellerSku"):
        if seller_sku and entry.get(key) == seller_sku:
            return True
    sku_id = _id(listing.get("sku_id"))
    for key in ("sku_id", "SkuId", "skuId"):
        if sku_id is not None and _id(entry.get(key)) == sku_id:
            return True
    return False


def parse_sellable_update(batch: Sequence[StockUpdate], result: HttpResult) -> list[PushOutcome]:
    """One outcome per update from an ``UpdateSellableQuantity`` answer."""
    body = result.body
    retry_after = result.retry_after()
    if not isinstance(body, dict) or "code" not in body:
        return fail_unreadable(batch, result, retry_after)
    code = str(body.get("code"))
    message = body.get("message")
    message = str(message) if message is not None else None
    if code in _THROTTLE_CODES and retry_after is None:
        retry_after = seconds_in(message)
    request_id = body.get("request_id")
    details = [d for d in (body.get("detail") or []) if isinstance(d, dict)]
    base_raw: dict[str, Any] = {"request_id": request_id, "code": code, "type": body.get("type")}
    named: dict[str, dict[str, Any]] = {}
    for u in batch:
        for d in details:
            if _detail_matches(d, u.listing):
                named[u.listing_ref] = d
                break
    out = []
    for u in batch:
        raw = dict(base_raw)
        entry = named.get(u.listing_ref)
        if entry is not None:
            raw["detail"] = entry
            dmsg = entry.get("message")
            ecode = code if code != "0" else (str(entry["code"]) if entry.get("code") else None)
            text = str(dmsg) if dmsg is not None else message
            out.append(failure(u, result.status, ecode, text, retry_after, raw))
        elif code == "0" and result.status < 400:
            out.append(success(u, result.status, raw))
        elif named:
            text = f"not applied: other SKUs of the call failed ({code}: {message})"
            out.append(failure(u, result.status, BATCH_REJECTED, text, retry_after, raw))
        else:
            out.append(failure(u, result.status, code, message, retry_after, raw))
    return out


def sellable_of(sku: Mapping[str, Any], warehouse_code: str | None) -> int | None:
    """The sellable quantity of one SKU of a ``GetProductItem`` answer."""
    if warehouse_code:
        for wh in sku.get("multiWarehouseInventories") or []:
            if isinstance(wh, dict) and wh.get("warehouseCode") == warehouse_code:
                value = wh.get("sellableQuantity")
                return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
        return None
    for key in ("sellableQuantity", "SellableQuantity", "Available"):
        value = sku.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


class LazadaSettings(ChannelSettings):
    """A Lazada seller's settings (module docstring); ``app_secret`` is a secret."""

    platform = "lazada"
    auth_url: Str = "https://auth.lazada.com/rest"
    app_key: Any
    """A string or an integer (LAZOP app keys are numbers)."""
    app_secret: Secret

    @field_validator("app_key")
    @classmethod
    def _app_key(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise ValueError("is required (string or integer)")
        return str(value)


class LazadaChannel(HttpChannel):
    platform = "lazada"
    settings_model = LazadaSettings
    settings: LazadaSettings
    hard_max_batch = MAX_SKUS
    default_batch = MAX_SKUS
    default_refresh_ahead_s = 1800.0
    default_base_url = "https://api.lazada.sg/rest"
    invalid_listing_message = "lazada listing needs item_id and sku_id, or seller_sku"

    def _configure(self) -> None:
        self.auth_url = self.settings.auth_url.rstrip("/")
        self.app_key = str(self.settings.app_key)
        self._app_secret = self.settings.app_secret.get_secret_value()

    def signed(
        self, api_path: str, api_params: Mapping[str, str], access_token: str | None
    ) -> dict[str, str]:
        """System parameters + API parameters + ``sign``."""
        params = {
            "app_key": self.app_key,
            "timestamp": str(int(self._clock() * 1000)),
            "sign_method": "sha256",
            **api_params,
        }
        if access_token is not None:
            params["access_token"] = access_token
        params["sign"] = lazada_sign(self._app_secret, api_path, params)
        return params

    # -- tokens ---------------------------------------------------------------

    async def _fetch_token(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        assert current is not None and current.get("refresh_token")
        params = self.signed(TOKEN_REFRESH, {"refresh_token": str(current["refresh_token"])}, None)
        result = await self.request(
            "POST", self.auth_url + TOKEN_REFRESH, operation="token_refresh", form=params
        )
        data = result.body
        if (
            not isinstance(data, dict)
            or str(data.get("code", "0")) != "0"
            or not data.get("access_token")
            or result.status >= 400
        ):
            code = str(data.get("code")) if isinstance(data, dict) and "code" in data else None
            keys = ("request_id", "code", "type", "message")
            raise self._token_refused(result, code, result.message(), keys)
        expires_in = float(data.get("expires_in") or 0) or 7 * 86400.0
        return self._token_from(data, current, expires_in, data.get("refresh_expires_in"))

    @staticmethod
    def _is_token_error(result: HttpResult) -> bool:
        if result.status == 401:
            return True
        body = result.body
        return isinstance(body, dict) and str(body.get("code")) in _TOKEN_CODES

    # -- push -----------------------------------------------------------------

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        return valid_listing(listing)

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        payload = build_payload(batch)

        async def send(token: str) -> HttpResult:
            params = self.signed(SELLABLE_UPDATE, {"payload": payload}, token)
            return await self.request(
                "POST", self.base_url + SELLABLE_UPDATE, operation="sellable_update", form=params
            )

        result = await self.with_token(send, self._is_token_error)
        outcomes = parse_sellable_update(batch, result)
        self._log.info(
            "channel_pushed",
            skus=len(batch),
            failed=sum(1 for o in outcomes if not o.ok),
            http_status=result.status,
        )
        return outcomes

    # -- read-back ------------------------------------------------------------

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Sellable quantity per listing, one ``GetProductItem`` call per item."""
        calls: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for listing in listings:
            if not valid_listing(listing):
                continue
            item_id = _id(listing.get("item_id"))
            key = ("item_id", item_id) if item_id else ("seller_sku", str(listing["seller_sku"]))
            calls.setdefault(key, []).append(listing)
        out: dict[str, int] = {}
        for (name, value), group in calls.items():

            async def send(token: str, name: str = name, value: str = value) -> HttpResult:
                params = self.signed(ITEM_GET, {name: value}, token)
                return await self.request(
                    "GET", self.base_url + ITEM_GET, operation="item_get", params=params
                )

            result = await self.with_token(send, self._is_token_error)
            body = result.body
            if not isinstance(body, dict) or str(body.get("code")) != "0":
                code = body.get("code") if isinstance(body, dict) else None
                self._log_read_failed("item_get", result, code)
                continue
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            skus = [s for s in (data or {}).get("skus") or [] if isinstance(s, dict)]
            for listing in group:
                for sku in skus:
                    if _detail_matches(sku, listing):
                        qty = sellable_of(sku, listing.get("warehouse_code"))
                        if qty is not None:
                            out[listing_ref(listing)] = qty
                        break
        return out

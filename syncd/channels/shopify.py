"""Shopify Admin GraphQL client: ``inventorySetQuantities`` pushes, read-back, token refresh.

Owns the request shapes of the ``inventorySetQuantities`` mutation (at most
250 quantities per call, ``@idempotent(key: <uuid4>)`` from 2026-01,
``changeFromQuantity: null``), the read-back query
(``inventoryItem { inventoryLevel(locationId) { quantities } }``, aliased, 50
listings per query), the expiring offline token refresh
(``POST {base}/admin/oauth/access_token``, ``grant_type=refresh_token``; the
new access/refresh pair is stored at once) and the cost extension
(``extensions.cost.throttleStatus``), exposed as :attr:`throttle_status` so the
publisher's limiter can follow Shopify's own bucket.

Compare-and-swap decision: syncd is the source of truth for the quantity and
sends absolute values computed from its own ledger (which already counts the
shop's orders), so every quantity carries an explicit
``changeFromQuantity: null`` (opt out of the check). Comparing against the
last acknowledged quantity would fail with ``CHANGE_FROM_QUANTITY_STALE``
after every sale made between two pushes and gain nothing: the next absolute
push corrects any race. Before 2026-01 the same opt-out is
``ignoreCompareQuantity: true``.

Idempotency: one random key per call, reused only by the re-send after a token
refresh (the same request). A publisher retry is a new call with a new key;
setting an absolute quantity twice is harmless.

Success: HTTP 200 and no error for the quantity. A ``userErrors`` entry whose
``field`` is ``["input", "quantities", "<i>", ...]`` fails quantity ``i``
with its ``code``/``message``; one without an index fails every quantity.
When some quantities failed and ``inventoryAdjustmentGroup`` is null, the
others get ``syncd.batch_rejected`` (the mutation was not applied).
Top-level ``errors`` (``THROTTLED``, ``INTERNAL_SERVER_ERROR``, ``BAD_REQUEST``,
...) fail every quantity with ``extensions.code``; ``THROTTLED`` sets
``retry_after_s`` from the cost extension (points missing / restore rate).
HTTP 401 triggers one refresh (when a refresh token is held) and one re-send.

Settings: ``base_url`` (``https://<shop>.myshopify.com`` or
``http://127.0.0.1:PORT/shops/<shop>``), ``api_version`` (default
``2026-04``), ``access_token`` (secret), optional ``refresh_token``,
``client_id``, ``client_secret`` (secrets, needed to refresh) and
``access_token_expires_at`` (epoch s), ``quantity_name`` (default
``available``), ``reason`` (default ``correction``),
``reference_document_uri`` (optional), ``refresh_ahead_s`` (default 300),
``batch_size`` (at most 250), ``timeout_s``, ``max_connections``.

Listing object: ``{"inventory_item_id": gid|int, "location_id": gid|int}``
(bare numbers become ``gid://shopify/...`` ids).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from syncd.channels.answers import HttpResult, fail_unreadable
from syncd.channels.base import (
    BATCH_REJECTED,
    PushOutcome,
    StockUpdate,
    ThrottleStatus,
    chunk,
    fail_all,
    failure,
    listing_ref,
    success,
)
from syncd.channels.http import GraphQLChannel, graphql_error
from syncd.channels.settings import ChannelSettings, OptSecret, OptStr, Str, reveal

MAX_QUANTITIES = 250
READ_CHUNK = 50
DEFAULT_VERSION = "2026-04"

_SET_FIELDS = "inventoryAdjustmentGroup { id } userErrors { field message code }"


def gid(kind: str, value: Any) -> str | None:
    """``123`` or ``"123"`` -> ``gid://shopify/<kind>/123``; a gid stays as it is."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"gid://shopify/{kind}/{value}"
    if isinstance(value, str):
        if value.startswith("gid://shopify/"):
            return value
        if value.isdigit():
            return f"gid://shopify/{kind}/{value}"
    return None


def ids_of(listing: Mapping[str, Any]) -> tuple[str, str] | None:
    item = gid("InventoryItem", listing.get("inventory_item_id"))
    loc = gid("Location", listing.get("location_id"))
    return (item, loc) if item and loc else None


def build_set_quantities(
    batch: Sequence[StockUpdate],
    *,
    idempotency_key: str,
    api_version: str = DEFAULT_VERSION,
    name: str = "available",
    reason: str = "correction",
    reference_document_uri: str | None = None,
) -> dict[str, Any]:
    """The GraphQL request (``query`` + ``variables``) of one ``inventorySetQuantities`` call."""
    cas_redesign = api_version >= "2026-01"
    quantities = []
    for u in batch:
        ids = ids_of(u.listing)
        assert ids is not None
        q: dict[str, Any] = {
            "inventoryItemId": ids[0],
            "locationId": ids[1],
            "quantity": u.quantity,
        }
        if cas_redesign:
            q["changeFromQuantity"] = None
        quantities.append(q)
    payload: dict[str, Any] = {"name": name, "reason": reason, "quantities": quantities}
    if not cas_redesign:
        payload["ignoreCompareQuantity"] = True
    if reference_document_uri:
        payload["referenceDocumentUri"] = reference_document_uri
    directive = f' @idempotent(key: "{idempotency_key}")' if cas_redesign else ""
    query = (
        "mutation SyncdSetQuantities($input: InventorySetQuantitiesInput!) {"
        f" inventorySetQuantities(input: $input){directive} {{ {_SET_FIELDS} }} }}"
    )
    return {"query": query, "variables": {"input": payload}}


def parse_throttle(body: Any, now: float | None = None) -> ThrottleStatus | None:
    """``extensions.cost`` of a GraphQL answer, if present."""
    if not isinstance(body, dict):
        return None
    ext = body.get("extensions")
    cost = ext.get("cost") if isinstance(ext, dict) else None
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(status, dict):
        return None
    try:
        assert isinstance(cost, dict)
        req, act = cost.get("requestedQueryCost"), cost.get("actualQueryCost")
        return ThrottleStatus(
            maximum_available=float(status["maximumAvailable"]),
            currently_available=float(status["currentlyAvailable"]),
            restore_rate=float(status["restoreRate"]),
            requested_cost=float(req) if isinstance(req, int | float) else None,
            actual_cost=float(act) if isinstance(act, int | float) else None,
            observed_at=time.monotonic() if now is None else now,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _throttle_wait(throttle: ThrottleStatus | None) -> float | None:
    if throttle is None or throttle.restore_rate <= 0:
        return None
    need = throttle.requested_cost if throttle.requested_cost is not None else 0.0
    missing = max(0.0, need - throttle.currently_available)
    return round(max(missing / throttle.restore_rate, 0.1), 3)


def _error_index(field: Any) -> int | None:
    if (
        isinstance(field, list)
        and len(field) >= 3
        and field[0] == "input"
        and field[1] == "quantities"
    ):
        try:
            return int(field[2])
        except (TypeError, ValueError):
            return None
    return None


def parse_set_quantities(
    batch: Sequence[StockUpdate], result: HttpResult, throttle: ThrottleStatus | None = None
) -> list[PushOutcome]:
    """One outcome per update from an ``inventorySetQuantities`` answer."""
    body = result.body
    retry_after = result.retry_after()
    if not isinstance(body, dict):
        return fail_unreadable(batch, result, retry_after)
    data = body.get("data")
    payload = data.get("inventorySetQuantities") if isinstance(data, dict) else None
    if body.get("errors") is not None and not isinstance(payload, dict):
        code, message = graphql_error(body.get("errors"))
        if code == "THROTTLED" and retry_after is None:
            retry_after = _throttle_wait(throttle or parse_throttle(body))
        raw = {"errors": body.get("errors")}
        return fail_all(batch, result.status, code, message, retry_after, raw)
    if result.status >= 400 or not isinstance(payload, dict):
        return fail_unreadable(batch, result, retry_after)
    user_errors = [e for e in payload.get("userErrors") or [] if isinstance(e, dict)]
    group = payload.get("inventoryAdjustmentGroup")
    by_index: dict[int, dict[str, Any]] = {}
    general: dict[str, Any] | None = None
    for e in user_errors:
        i = _error_index(e.get("field"))
        if i is not None and 0 <= i < len(batch):
            by_index.setdefault(i, e)
        elif general is None:
            general = e
    out = []
    for i, u in enumerate(batch):
        err = by_index.get(i) or general
        if err is not None:
            code = str(err["code"]) if err.get("code") is not None else None
            text = str(err.get("message")) if err.get("message") is not None else None
            out.append(failure(u, result.status, code, text, None, {"userError": err}))
        elif user_errors and group is None:
            text = "not applied: other quantities of the call failed"
            raw = {"userErrors": user_errors}
            out.append(failure(u, result.status, BATCH_REJECTED, text, None, raw))
        else:
            ok_raw = {"inventoryAdjustmentGroup": group} if group is not None else None
            out.append(success(u, result.status, ok_raw))
    return out


def build_read(listings: Sequence[Mapping[str, Any]], name: str = "available") -> dict[str, Any]:
    """An aliased query reading ``name`` of each (inventory item, location) pair."""
    decls, fields, variables = [], [], {}
    for i, listing in enumerate(listings):
        ids = ids_of(listing)
        assert ids is not None
        decls.append(f"$i{i}: ID!, $l{i}: ID!")
        variables[f"i{i}"], variables[f"l{i}"] = ids
        fields.append(
            f"q{i}: inventoryItem(id: $i{i}) {{ id inventoryLevel(locationId: $l{i}) {{"
            f' quantities(names: ["{name}"]) {{ name quantity }} }} }}'
        )
    query = f"query SyncdReadStock({', '.join(decls)}) {{ {' '.join(fields)} }}"
    return {"query": query, "variables": variables}


class ShopifySettings(ChannelSettings):
    """A Shopify shop's settings (module docstring); ``client_secret`` is a secret."""

    platform = "shopify"
    base_url: Str
    """``https://<shop>.myshopify.com`` (no default)."""
    api_version: Str = DEFAULT_VERSION
    quantity_name: Str = "available"
    reason: Str = "correction"
    reference_document_uri: OptStr = None
    client_id: OptStr = None
    client_secret: OptSecret = None


class ShopifyChannel(GraphQLChannel):
    platform = "shopify"
    settings_model = ShopifySettings
    settings: ShopifySettings
    hard_max_batch = MAX_QUANTITIES
    default_batch = MAX_QUANTITIES
    default_refresh_ahead_s = 300.0
    invalid_listing_message = "shopify listing needs inventory_item_id and location_id"

    def _configure(self) -> None:
        s = self.settings
        self.api_version = s.api_version
        self.quantity_name = s.quantity_name
        self.reason = s.reason
        self.reference_document_uri = s.reference_document_uri
        self._client_id = s.client_id
        self._client_secret = reveal(s.client_secret)
        self.throttle_status: ThrottleStatus | None = None
        """The newest ``extensions.cost`` seen (None before the first answer)."""

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/admin/api/{self.api_version}/graphql.json"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"X-Shopify-Access-Token": token}

    # -- tokens ---------------------------------------------------------------

    def _can_refresh(self, token: Mapping[str, Any] | None) -> bool:
        return bool(
            token and token.get("refresh_token") and self._client_id and self._client_secret
        )

    async def _fetch_token(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        assert current is not None and current.get("refresh_token")
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "refresh_token",
            "refresh_token": current["refresh_token"],
        }
        result = await self.request(
            "POST",
            self.base_url + "/admin/oauth/access_token",
            operation="token_refresh",
            json_body=body,
        )
        data = result.body
        if result.status >= 400 or not isinstance(data, dict) or not data.get("access_token"):
            raise self._oauth_refused(result, "errors")
        e = data.get("expires_in")
        expires_in = float(e) if isinstance(e, int | float) and e > 0 else None  # None: no expiry
        return self._token_from(data, current, expires_in, data.get("refresh_token_expires_in"))

    async def _graphql(self, request: Mapping[str, Any], operation: str) -> HttpResult:
        result = await super()._graphql(request, operation)
        throttle = parse_throttle(result.body)
        if throttle is not None:
            self.throttle_status = throttle
        return result

    # -- push -----------------------------------------------------------------

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        return ids_of(listing) is not None

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        key = str(uuid.uuid4())
        request = build_set_quantities(
            batch,
            idempotency_key=key,
            api_version=self.api_version,
            name=self.quantity_name,
            reason=self.reason,
            reference_document_uri=self.reference_document_uri,
        )
        result = await self._graphql(request, "inventory_set_quantities")
        outcomes = parse_set_quantities(batch, result, parse_throttle(result.body))
        self._log.info(
            "channel_pushed",
            quantities=len(batch),
            failed=sum(1 for o in outcomes if not o.ok),
            http_status=result.status,
            idempotency_key=key,
            currently_available=(
                self.throttle_status.currently_available if self.throttle_status else None
            ),
        )
        return outcomes

    # -- read-back ------------------------------------------------------------

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """The ``quantity_name`` quantity (default ``available``) per listing."""
        valid = [lst for lst in listings if ids_of(lst) is not None]
        out: dict[str, int] = {}
        for part in chunk(valid, READ_CHUNK):
            result = await self._graphql(build_read(part, self.quantity_name), "read_stock")
            body = result.body
            data = body.get("data") if isinstance(body, dict) else None
            if result.status >= 400 or not isinstance(data, dict):
                code, _ = graphql_error(body.get("errors") if isinstance(body, dict) else None)
                self._log_read_failed("read_stock", result, code)
                continue
            for j, listing in enumerate(part):
                node = data.get(f"q{j}")
                level = node.get("inventoryLevel") if isinstance(node, dict) else None
                rows = level.get("quantities") if isinstance(level, dict) else None
                for row in rows or []:
                    if (
                        isinstance(row, dict)
                        and row.get("name") == self.quantity_name
                        and isinstance(row.get("quantity"), int)
                    ):
                        out[listing_ref(listing)] = row["quantity"]
        return out

"""Shopify Admin GraphQL sandbox: inventorySetQuantities, inventoryItem read-back, token refresh.

Owns the Shopify paths; one server, several shops by path prefix (the real
host is ``{shop}.myshopify.com``, here ``base_url`` is
``http://127.0.0.1:PORT/shops/{shop}``):

- ``POST /shops/{shop}/admin/api/{version}/graphql.json`` with header
  ``X-Shopify-Access-Token``. Recognised operations (no GraphQL engine):
  ``mutation ... inventorySetQuantities(input: $input) @idempotent(key: ...)``
  (``input`` from ``variables``) and ``inventoryItem(id: ..) { inventoryLevel(
  locationId: ..) { quantities(names: [..]) { name quantity } } }`` (several,
  aliased, per query; ids literal or variables). Anything else: a GraphQL
  ``errors`` answer.
- ``POST /shops/{shop}/admin/oauth/access_token`` (form or JSON)
  ``client_id, client_secret, grant_type=refresh_token, refresh_token``
  -> ``{access_token, expires_in, refresh_token, refresh_token_expires_in,
  scope}``. The previous refresh token keeps working until its replacement
  (or the new access token) is used (Shopify since 2026-08-28).

Documented facts [C] (channels.md section 4): from 2026-04 ``@idempotent``
is mandatory ("The @idempotent directive is required for this mutation but
was not provided.", ``BAD_REQUEST``) and ``changeFromQuantity`` is required
(``null`` opts out; a stale value gives userError
``CHANGE_FROM_QUANTITY_STALE``); userError codes ``INVALID_INVENTORY_ITEM``,
``INVALID_LOCATION``, ``ITEM_NOT_STOCKED_AT_LOCATION``, ``INVALID_NAME``,
``INVALID_REASON``, ``INVALID_QUANTITY_NEGATIVE``, ``INVALID_QUANTITY_TOO_HIGH``
(> 1,000,000,000), ``NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR``,
``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``; input arrays <= 250; leaky-bucket
cost limit per app+store with ``extensions.cost.throttleStatus
{maximumAvailable, currentlyAvailable, restoreRate}`` on every answer;
throttled = HTTP 200, ``errors:[{message:"Throttled",
extensions:{code:"THROTTLED"}}]``, no ``data``; expiring offline tokens
(60 min) answer 401 once expired.

Modelled ASSUMPTIONS: versions before 2026-04 do not require
``@idempotent``/``changeFromQuantity``; costs are 10 points per mutation and
1 + 2 per ``inventoryItem`` per query (requested = actual); the mutation is
all-or-nothing (any userError, nothing applied); the userError messages;
a repeated idempotency key with the same input replays the first answer
without applying twice; 401 body ``{"errors": "[API] Invalid API key or
access token (unrecognized login or wrong password)"}``; refresh errors
400 ``{"error": "invalid_grant"}`` / 401 ``{"error": "invalid_client"}``;
the unspecified error is HTTP 200 ``errors[{extensions:{code:
"INTERNAL_SERVER_ERROR"}}]`` (fault params ``code``/``message``/``status``). The
``user_error`` fault answers one quantity with a ``userErrors`` entry of any code
(``CHANGE_FROM_QUANTITY_STALE``, ``NON_MUTABLE_INVENTORY_ITEM``...; the messages of
codes the sandbox never produces itself are assumed), so nothing is applied.
Shopify has no vacation, reserved-stock or unpaid-order concept, so those faults
do not exist here.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from aiohttp import web

from syncd.testing.sandbox.accounts import COMMON_FAULTS, Account, Call, Limits, SandboxError
from syncd.testing.sandbox.base import (
    Sandbox,
    graphql_request,
    json_response,
    read_json,
    request_id,
)

VERSION = "2026-04"
MAX_INPUT = 250
MAX_QUANTITY = 1_000_000_000
MUTATION_COST = 10
ITEM_GID = "gid://shopify/InventoryItem/"
LOCATION_GID = "gid://shopify/Location/"
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
QUANTITY_NAMES = (
    "available",
    "on_hand",
    "committed",
    "reserved",
    "incoming",
    "damaged",
    "safety_stock",
    "quality_control",
)
BAD_TOKEN = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}

SET_RE = re.compile(r"inventorySetQuantities\s*\(\s*input\s*:\s*\$(\w+)\s*\)")
IDEMPOTENT_RE = re.compile(r"@idempotent\s*\(\s*key\s*:\s*(?:\"([^\"]*)\"|\$(\w+))\s*\)")
ITEM_RE = re.compile(r"(?:(\w+)\s*:\s*)?inventoryItem\s*\(\s*id\s*:\s*(\"[^\"]*\"|\$\w+)\s*\)")
LEVEL_RE = re.compile(r"inventoryLevel\s*\(\s*locationId\s*:\s*(\"[^\"]*\"|\$\w+)\s*\)")
NAMES_RE = re.compile(r"quantities\s*\(\s*names\s*:\s*(\[[^\]]*\]|\$\w+)\s*\)")

USER_ERRORS = {
    "INVALID_INVENTORY_ITEM": "The specified inventory item could not be found.",
    "INVALID_LOCATION": "The specified location could not be found.",
    "ITEM_NOT_STOCKED_AT_LOCATION": "The specified inventory item is not stocked at the location.",
    "INVALID_NAME": "The quantity name must be either 'available' or 'on_hand'.",
    "INVALID_REASON": "The specified reason is invalid.",
    "INVALID_QUANTITY_NEGATIVE": "The quantity can't be negative.",
    "INVALID_QUANTITY_TOO_HIGH": "The quantity can't be higher than 1,000,000,000.",
    "CHANGE_FROM_QUANTITY_STALE": "The changeFromQuantity doesn't match the current quantity.",
    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR": "The combination of inventoryItemId and locationId must be unique.",
    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH": "The same idempotency key was used with different parameters.",
    # only through the ``user_error`` fault (the wording is assumed):
    "IDEMPOTENCY_CONCURRENT_REQUEST": "A request with the same idempotency key is in progress.",
    "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED": "A previous request with this idempotency key failed.",
    "NON_MUTABLE_INVENTORY_ITEM": "The specified inventory item is not allowed to be adjusted.",
}


def gid(prefix: str, value: Any) -> str:
    text = str(value)
    return text if text.startswith("gid://") else prefix + text


def _literal(raw: str, variables: Mapping[str, Any]) -> Any:
    if raw.startswith("$"):
        return variables.get(raw[1:])
    if raw.startswith("["):
        return re.findall(r'"([^"]*)"', raw)
    return raw.strip('"')


class ShopifySandbox(Sandbox):
    platform = "shopify"
    faults = COMMON_FAULTS | {"user_error"}
    default_token_ttl_s: ClassVar[float] = 3600.0
    default_refresh_ttl_s: ClassVar[float] = 90 * 86400.0
    cost_bucket = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._grace: dict[str, tuple[str, str]] = {}
        """account -> (previous refresh token kept valid, the access token that replaced it)."""
        self._idem: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/shops/{shop}/admin/api/{version}/graphql.json", self.graphql)
        app.router.add_post("/shops/{shop}/admin/oauth/access_token", self.token)

    # -- accounts and listings --------------------------------------------------

    def make_account(self, name: str, fields: dict[str, Any], limits: Limits) -> Account:
        shop = str(fields.get("shop") or name)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", shop):
            raise SandboxError(f"shopify shop name must be a slug: {shop!r}")
        creds = {
            "shop": shop,
            "api_version": str(fields.get("api_version") or VERSION),
            "client_id": str(fields.get("client_id") or f"client-{shop}"),
            "client_secret": str(fields.get("client_secret") or f"shpss_{shop}_" + "9f" * 8),
            "location_id": gid(LOCATION_GID, fields.get("location_id") or 1),
        }
        acc = Account(name, creds, limits)
        acc.grant()
        return acc

    def account_credentials(self, account: Account) -> dict[str, Any]:
        base_url = f"{self.root_url}/shops/{account.creds['shop']}"
        return {**super().account_credentials(account), "base_url": base_url}

    def normalize_listing(self, account: Account, ident: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **ident,
            "inventory_item_id": gid(ITEM_GID, ident.get("inventory_item_id")),
            "location_id": gid(
                LOCATION_GID, ident.get("location_id") or account.creds["location_id"]
            ),
        }

    def listing_key(self, account: Account, ident: Mapping[str, Any]) -> str:
        item = ident.get("inventory_item_id")
        if item in (None, ""):
            raise SandboxError(f"shopify listing needs inventory_item_id: {dict(ident)}")
        location = ident.get("location_id") or account.creds["location_id"]
        return f"{gid(ITEM_GID, item)}@{gid(LOCATION_GID, location)}"

    def _shop(self, request: web.Request) -> Account | None:
        shop = request.match_info["shop"]
        return next((a for a in self.accounts.values() if a.creds["shop"] == shop), None)

    # -- answers ---------------------------------------------------------------

    def _cost(self, acc: Account, cost: float) -> dict[str, Any]:
        bucket = acc.bucket
        level = bucket.level() if bucket else 0.0
        return {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": cost,
                "throttleStatus": {
                    "maximumAvailable": float(bucket.capacity if bucket else 0),
                    "currentlyAvailable": int(level),
                    "restoreRate": float(bucket.rate if bucket else 0),
                },
            }
        }

    def _answer(self, call: Call, body: dict[str, Any], cost: float) -> web.Response:
        body["extensions"] = self._cost(call.account, cost)
        return json_response(body)

    def _error(self, call: Call, message: str, code: str | None, cost: float) -> web.Response:
        """A top-level GraphQL error (no ``data``), with the cost extension."""
        error: dict[str, Any] = {"message": message}
        if code is not None:
            error["extensions"] = {"code": code}
        return self._answer(call, {"errors": [error]}, cost)

    def throttle_answer(self, call: Call, retry_after_s: float) -> web.Response:
        return self._answer(
            call,
            {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ]
            },
            call.cost,
        )

    def platform_error_answer(self, call: Call) -> web.Response:
        params = call.answer_params
        rid = request_id()
        message = str(
            params.get(
                "message",
                f"Internal error. Looks like something went wrong on our end.\nRequest ID: {rid}",
            )
        )
        return json_response(
            {
                "errors": [
                    {
                        "message": message,
                        "extensions": {
                            "code": str(params.get("code", "INTERNAL_SERVER_ERROR")),
                            "requestId": rid,
                        },
                    }
                ]
            },
            int(params.get("status", 200)),
        )

    # -- GraphQL ---------------------------------------------------------------

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        acc = self._shop(request)
        if acc is None:
            return json_response({"errors": "Not Found"}, 404)
        token = request.headers.get("X-Shopify-Access-Token", "")
        query, variables = graphql_request(await read_json(request))
        if not isinstance(variables, dict):
            variables = {}
        query = query if isinstance(query, str) else ""
        set_m = SET_RE.search(query)
        items = list(ITEM_RE.finditer(query))
        cost = MUTATION_COST if set_m else 1 + 2 * max(1, len(items))
        keys = []
        if set_m:
            inp = variables.get(set_m.group(1))
            rows = inp.get("quantities") if isinstance(inp, dict) else None
            for q in rows if isinstance(rows, list) else []:
                if isinstance(q, dict) and q.get("inventoryItemId"):
                    keys.append(
                        self.listing_key(
                            acc,
                            {
                                "inventory_item_id": q["inventoryItemId"],
                                "location_id": q.get("locationId"),
                            },
                        )
                    )
        call = Call(acc, keys)
        call.cost = cost
        try:
            early = await self.admit(call, request.path, cost)
            if early is not None:
                return early
            if call.fault("token_expired", "token_revoked") or acc.token_state(token) != "ok":
                return json_response(BAD_TOKEN, 401)
            self._used_access(acc, token)
            if not query:
                return self._error(call, "No query string was present", None, 0)
            if set_m:
                version = request.match_info["version"]
                return self._set(call, query, variables, set_m.group(1), version, cost)
            if items and not query.lstrip().startswith("mutation"):
                return self._read(call, query, items, variables, cost)
            return self._error(
                call,
                "The sandbox knows inventorySetQuantities and "
                "inventoryItem { inventoryLevel { quantities } } only",
                "undefinedField",
                cost,
            )
        finally:
            call.done()

    def _set(
        self,
        call: Call,
        query: str,
        variables: Mapping[str, Any],
        var: str,
        version: str,
        cost: float,
    ) -> web.Response:
        acc = call.account
        strict = version >= "2026-04"
        idem = IDEMPOTENT_RE.search(query)
        key = (
            (
                idem.group(1)
                if idem.group(1) is not None
                else str(variables.get(idem.group(2)) or "")
            )
            if idem
            else ""
        )
        if strict and not key:
            return self._error(
                call,
                "The @idempotent directive is required for this mutation but was not provided.",
                "BAD_REQUEST",
                cost,
            )
        inp = variables.get(var)
        rows = inp.get("quantities") if isinstance(inp, dict) else None
        if (
            not isinstance(inp, dict)
            or not isinstance(rows, list)
            or not isinstance(inp.get("reason"), str)
            or not all(isinstance(r, dict) for r in rows)
        ):
            return self._error(
                call,
                f"Variable ${var} of type InventorySetQuantitiesInput! was provided invalid value",
                "INVALID_VARIABLE",
                cost,
            )
        if len(rows) > MAX_INPUT:
            return self._error(
                call,
                f"The input array size of {len(rows)} is greater than the maximum "
                f"allowed of {MAX_INPUT}.",
                "MAX_INPUT_SIZE_EXCEEDED",
                cost,
            )
        for i, row in enumerate(rows):
            if strict and "changeFromQuantity" not in row:
                return self._error(
                    call,
                    f"Variable ${var} of type InventorySetQuantitiesInput! was provided"
                    f" invalid value for quantities.{i}: InventoryQuantityInput must "
                    "include the following argument: changeFromQuantity",
                    "INVALID_FIELD_ARGUMENTS",
                    cost,
                )
        fingerprint = orjson.dumps(inp, option=orjson.OPT_SORT_KEYS)
        if key and (acc.name, key) in self._idem:
            seen, result = self._idem[(acc.name, key)]
            if seen != fingerprint:
                result = self._payload(
                    [self._user_error("IDEMPOTENCY_KEY_PARAMETER_MISMATCH", ["input"])], None
                )
            return self._answer(call, {"data": {"inventorySetQuantities": result}}, cost)
        result = self._apply(call, inp, rows)
        if key:
            self._idem[(acc.name, key)] = (fingerprint, result)
        return self._answer(call, {"data": {"inventorySetQuantities": result}}, cost)

    @staticmethod
    def _user_error(code: str, field: list[str]) -> dict[str, Any]:
        return {"field": field, "message": USER_ERRORS[code], "code": code}

    @staticmethod
    def _payload(errors: list[dict[str, Any]], group: dict[str, Any] | None) -> dict[str, Any]:
        return {"inventoryAdjustmentGroup": group, "userErrors": errors}

    def _apply(
        self, call: Call, inp: Mapping[str, Any], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        acc = call.account
        errors: list[dict[str, Any]] = []
        name = inp.get("name")
        if name not in ("available", "on_hand"):
            errors.append(self._user_error("INVALID_NAME", ["input", "name"]))
        if inp.get("reason") not in REASONS:
            errors.append(self._user_error("INVALID_REASON", ["input", "reason"]))
        locations = {li.ident["location_id"] for li in acc.listings.values()}
        items = {li.ident["inventory_item_id"] for li in acc.listings.values()}
        seen: set[str] = set()
        changes: list[tuple[str, int]] = []
        for i, row in enumerate(rows):
            field = ["input", "quantities", str(i)]
            item = gid(ITEM_GID, row.get("inventoryItemId"))
            location = gid(LOCATION_GID, row.get("locationId"))
            key = f"{item}@{location}"
            qty, before = row.get("quantity"), row.get("changeFromQuantity")
            if isinstance(qty, int) and not isinstance(qty, bool):
                acc.received(key, qty)
            listing = acc.listings.get(key)
            forced = call.fault("user_error", listing=key)
            if forced is not None:  # fault params: code, message
                code = str(forced.params.get("code", "INVALID_INVENTORY_ITEM"))
                text = USER_ERRORS.get(code, "The quantity could not be set.")
                message = str(forced.params.get("message", text))
                errors.append({"field": field, "message": message, "code": code})
                continue
            if item not in items or call.fault("unknown_listing", listing=key):
                code, field = "INVALID_INVENTORY_ITEM", [*field, "inventoryItemId"]
            elif location not in locations:
                code, field = "INVALID_LOCATION", [*field, "locationId"]
            elif listing is None:
                code, field = "ITEM_NOT_STOCKED_AT_LOCATION", [*field, "locationId"]
            elif key in seen:
                code, field = "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", field
            elif not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
                code, field = "INVALID_QUANTITY_NEGATIVE", [*field, "quantity"]
            elif qty > MAX_QUANTITY:
                code, field = "INVALID_QUANTITY_TOO_HIGH", [*field, "quantity"]
            elif before is not None and before != listing.stock:
                code, field = "CHANGE_FROM_QUANTITY_STALE", [*field, "changeFromQuantity"]
            else:
                seen.add(key)
                changes.append((key, qty))
                continue
            errors.append(self._user_error(code, field))
        if errors:
            return self._payload(errors, None)
        out = []
        for key, qty in changes:
            listing = acc.listings[key]
            out.append(
                {
                    "name": name,
                    "delta": qty - listing.stock,
                    "quantityAfterChange": qty,
                    "item": {"id": listing.ident["inventory_item_id"]},
                    "location": {"id": listing.ident["location_id"]},
                }
            )
            listing.stock = qty
        group = {
            "id": f"gid://shopify/InventoryAdjustmentGroup/{request_id()[:12]}",
            "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": inp.get("reason"),
            "referenceDocumentUri": inp.get("referenceDocumentUri"),
            "changes": out,
        }
        return self._payload([], group)

    def _read(
        self,
        call: Call,
        query: str,
        items: list[re.Match[str]],
        variables: Mapping[str, Any],
        cost: float,
    ) -> web.Response:
        acc = call.account
        data: dict[str, Any] = {}
        for n, m in enumerate(items):
            end = items[n + 1].start() if n + 1 < len(items) else len(query)
            chunk = query[m.end() : end]
            level_m, names_m = LEVEL_RE.search(chunk), NAMES_RE.search(chunk)
            item = gid(ITEM_GID, _literal(m.group(2), variables))
            names = _literal(names_m.group(1), variables) if names_m else ["available"]
            rows = [
                li
                for li in acc.listings.values()
                if li.ident["inventory_item_id"] == item
                and not call.account.find_fault(["unknown_listing"], li.key)
            ]
            node: dict[str, Any] | None = None
            if rows:
                node = {"id": item}
                if level_m:
                    location = gid(LOCATION_GID, _literal(level_m.group(1), variables))
                    hit = next((li for li in rows if li.ident["location_id"] == location), None)
                    node["inventoryLevel"] = (
                        None
                        if hit is None
                        else {
                            "id": f"gid://shopify/InventoryLevel/{hit.key}",
                            "quantities": [
                                {
                                    "name": q,
                                    "quantity": hit.stock if q in ("available", "on_hand") else 0,
                                }
                                for q in names
                                if q in QUANTITY_NAMES
                            ],
                        }
                    )
            data[m.group(1) or "inventoryItem"] = node
        return self._answer(call, {"data": data}, cost)

    # -- tokens ----------------------------------------------------------------

    def _used_access(self, acc: Account, token: str) -> None:
        grace = self._grace.get(acc.name)
        if grace is not None and grace[1] == token:
            acc.refresh.pop(grace[0], None)
            del self._grace[acc.name]

    async def token(self, request: web.Request) -> web.StreamResponse:
        acc = self._shop(request)
        if acc is None:
            return json_response({"errors": "Not Found"}, 404)
        if request.content_type == "application/json":
            raw = await read_json(request)
            form = {k: str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        else:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        call = Call(acc)
        try:
            early = await self.admit(call, request.path, limited=False)
            if early is not None:
                return early
            if form.get("client_id") != acc.creds["client_id"] or not hmac.compare_digest(
                form.get("client_secret", ""), acc.creds["client_secret"]
            ):
                return json_response(
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed",
                    },
                    401,
                )
            if form.get("grant_type") != "refresh_token":
                return json_response({"error": "unsupported_grant_type"}, 400)
            old = form.get("refresh_token", "")
            if call.fault("refresh_fail", "token_revoked") or acc.refresh_state(old) != "ok":
                return json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": "The refresh token is invalid, expired or revoked",
                    },
                    400,
                )
            grace = self._grace.get(acc.name)
            if grace is not None and grace[0] == old:
                acc.refresh.pop(acc.refresh_token, None)  # the unused replacement
            elif grace is not None:
                acc.refresh.pop(grace[0], None)  # its replacement is being used now
            acc.refreshes += 1
            acc.token_requests += 1
            access, refresh = acc.grant(rotate_refresh=False)
            self._grace[acc.name] = (old, access)
            return json_response(
                {
                    "access_token": access,
                    "expires_in": int(acc.limits.token_ttl_s),
                    "refresh_token": refresh,
                    "refresh_token_expires_in": int(acc.limits.refresh_ttl_s),
                    "scope": "read_inventory,write_inventory",
                }
            )
        finally:
            call.done()

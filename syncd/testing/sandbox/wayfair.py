"""Wayfair Supplier API sandbox: client-credentials tokens and the GraphQL inventory calls.

Owns the Wayfair paths (``base_url`` is the server root; the real hosts are
``sso.auth.wayfair.com`` for tokens and ``api.wayfair.com`` for GraphQL):

- ``POST /oauth/token`` JSON ``{grant_type: "client_credentials", client_id,
  client_secret, audience}`` -> ``{access_token, token_type, expires_in}``.
  Every grant is counted (``stats()["token_requests"]``); earlier tokens stay
  valid until they expire. The per-account API rate limit does not apply here.
- ``POST /v1/graphql`` with ``Authorization: Bearer``. Two operations are
  recognised from the operation text (no GraphQL engine):
  ``mutation { inventory { save(inventory: $inventory, feedKind: ...) {...} } }``
  (``$inventory`` from ``variables``; ``feedKind`` inline or a variable) and
  ``query { inventory(limit: N) { supplierPartNumber quantityOnHand ... } }``.
  Anything else gets a GraphQL-shaped error (HTTP 400).

Documented facts [C] (channels.md section 3): token 86400 s, no refresh
token, Bearer auth; the save is ASYNCHRONOUS and returns a submission
``{id handle status submittedAt completedAt errors{key}}``; top-level
``errors[]`` means the whole request failed; ``TRUE_UP`` is a full snapshot,
``DIFFERENTIAL`` changes only; the read-back query above.

Modelled ASSUMPTIONS (nothing is published for these):

- Throttling: HTTP 429 with ``Retry-After`` (whole seconds) and
  ``{"errors":[{"message":"Too Many Requests"}]}``.
- Expired/invalid/missing token: HTTP 401, ``WWW-Authenticate: Bearer
  error="invalid_token"``, ``{"errors":[{"message":"Unauthorized"}]}``; bad
  client credentials at ``/oauth/token``: 401 ``{"error":"access_denied"}``.
- Submission ``status`` is ``COMPLETE`` (``completedAt`` set) when the apply
  delay is 0, else ``PROCESSING``; ``errors[].key`` is the
  ``supplier_part_number`` of an input that was refused (unknown part).
- ``TRUE_UP`` sets every listing of the same supplier that is missing from
  the snapshot to 0.
- ``forced_zero`` (Confirm Stock Status alert, from seller guidance): the
  read-back shows 0; saves are accepted (no error) but dropped until the
  alert is cleared, then the stock from before the alert shows again.
- ``not_applied`` (CastleGate markdown): saves accepted but dropped; the
  read-back keeps the old value.
- The unspecified platform error: HTTP 200 ``{"errors":[{"message":"Internal
  server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}],"data":null}``.
"""

from __future__ import annotations

import hmac
import itertools
import math
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
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
from syncd.testing.sandbox.base import Sandbox, graphql_request, json_response, read_json

TOKEN = "/oauth/token"
GRAPHQL = "/v1/graphql"
AUDIENCE = "https://sandbox.api.wayfair.com/"

SAVE_RE = re.compile(r"\binventory\s*\{\s*save\s*\(", re.S)
FEED_RE = re.compile(r"feedKind\s*:\s*(\$?\w+)")
READ_RE = re.compile(r"\binventory\s*\(([^)]*)\)\s*\{([^}]*)\}", re.S)
LIMIT_RE = re.compile(r"limit\s*:\s*(\$?\w+)")
READ_FIELDS = (
    "supplierPartNumber",
    "quantityOnHand",
    "quantityBackordered",
    "quantityOnOrder",
    "discontinued",
    "itemNextAvailabilityDate",
)


def gql_errors(
    message: str,
    code: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    err: dict[str, Any] = {"message": message}
    if code:
        err["extensions"] = {"code": code}
    return json_response({"errors": [err], "data": None}, status, headers)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WayfairSandbox(Sandbox):
    platform = "wayfair"
    faults = COMMON_FAULTS | {"forced_zero", "not_applied"}
    default_token_ttl_s: ClassVar[float] = 86400.0
    default_refresh_ttl_s: ClassVar[float] = 86400.0

    _ids = itertools.count(7001)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(TOKEN, self.token)
        app.router.add_post(GRAPHQL, self.graphql)

    # -- accounts and listings --------------------------------------------------

    def make_account(self, name: str, fields: dict[str, Any], limits: Limits) -> Account:
        n = next(self._ids)
        creds = {
            "client_id": str(fields.get("client_id") or f"wf-client-{n}"),
            "client_secret": str(fields.get("client_secret") or f"wf-secret-{n}-" + "ef" * 8),
            "audience": str(fields.get("audience") or AUDIENCE),
            "supplier_id": int(fields.get("supplier_id") or n),
        }
        return Account(name, creds, limits)

    def account_credentials(self, account: Account) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "token_url": self.base_url + TOKEN,
            **account.creds,
            "access_token": account.access_token or None,
            "access_token_expires_at": account.access_expires_at() or None,
        }

    def normalize_listing(self, account: Account, ident: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **ident,
            "supplier_id": int(ident.get("supplier_id") or account.creds["supplier_id"]),
            "supplier_part_number": str(ident.get("supplier_part_number", "")),
        }

    def listing_key(self, account: Account, ident: Mapping[str, Any]) -> str:
        key = self._input_key(account, ident)
        if key is None:
            raise SandboxError(f"wayfair listing needs supplier_part_number: {dict(ident)}")
        return key

    def shown(self, account: Account, listing: Listing) -> int:
        if account.find_fault(["forced_zero"], listing.key) is not None:
            return 0
        return listing.stock

    # -- answers ---------------------------------------------------------------

    def throttle_answer(self, call: Call, retry_after_s: float) -> web.Response:
        wait = max(1, math.ceil(retry_after_s))
        return json_response(
            {"errors": [{"message": "Too Many Requests"}]}, 429, {"Retry-After": str(wait)}
        )

    def platform_error_answer(self, call: Call) -> web.Response:
        params = call.answer_params
        return gql_errors(
            str(params.get("message", "Internal server error")),
            str(params.get("code", "INTERNAL_SERVER_ERROR")),
            int(params.get("status", 200)),
        )

    @staticmethod
    def unauthorized() -> web.Response:
        return json_response(
            {"errors": [{"message": "Unauthorized"}]},
            401,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    # -- token -----------------------------------------------------------------

    async def token(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            return json_response(
                {"error": "invalid_request", "error_description": "body must be JSON"}, 400
            )
        acc = next(
            (a for a in self.accounts.values() if a.creds["client_id"] == body.get("client_id")),
            None,
        )
        if acc is None:
            return json_response(
                {"error": "access_denied", "error_description": "Unauthorized"}, 401
            )
        call = Call(acc)
        try:
            early = await self.admit(call, request.path, limited=False)
            if early is not None:
                return early
            if body.get("grant_type") != "client_credentials":
                return json_response(
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "Unsupported grant type",
                    },
                    400,
                )
            secret = str(body.get("client_secret", ""))
            if not hmac.compare_digest(secret, acc.creds["client_secret"]) or call.fault(
                "refresh_fail", "token_revoked"
            ):
                return json_response(
                    {"error": "access_denied", "error_description": "Unauthorized"}, 401
                )
            if body.get("audience") not in (None, acc.creds["audience"]):
                return json_response(
                    {"error": "access_denied", "error_description": "Service not found"}, 403
                )
            acc.token_requests += 1
            access, _ = acc.grant(new_refresh=False)
            return json_response(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": int(acc.limits.token_ttl_s),
                    "scope": "read:inventory write:inventory",
                }
            )
        finally:
            call.done()

    # -- GraphQL ---------------------------------------------------------------

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        acc = next((a for a in self.accounts.values() if token and token in a.access), None)
        if acc is None:
            return self.unauthorized()
        query, variables = graphql_request(await read_json(request))
        inputs = variables.get("inventory") if isinstance(variables, dict) else None
        keys = []
        if isinstance(query, str) and SAVE_RE.search(query) and isinstance(inputs, list):
            keys = [self._input_key(acc, i) for i in inputs if isinstance(i, dict)]
        call = Call(acc, [k for k in keys if k])
        try:
            early = await self.admit(call, request.path)
            if early is not None:
                return early
            if call.fault("token_expired", "token_revoked") or acc.token_state(token) != "ok":
                return self.unauthorized()
            if not isinstance(query, str) or not isinstance(variables, dict):
                return gql_errors("Must provide query string.", "BAD_REQUEST", 400)
            if query.lstrip().startswith("mutation") and SAVE_RE.search(query):
                return self._save(call, query, variables)
            m = READ_RE.search(query)
            if m and not query.lstrip().startswith("mutation"):
                return self._read(call, m, variables)
            return gql_errors(
                "Unsupported operation: the sandbox knows inventory.save and inventory(limit:)",
                "GRAPHQL_VALIDATION_FAILED",
                400,
            )
        finally:
            call.done()

    @staticmethod
    def _input_key(acc: Account, item: Mapping[str, Any]) -> str | None:
        part = item.get("supplier_part_number")
        if not isinstance(part, str) or not part:
            return None
        return f"{item.get('supplier_id') or acc.creds['supplier_id']}/{part}"

    def _save(self, call: Call, query: str, variables: Mapping[str, Any]) -> web.Response:
        acc = call.account
        m = FEED_RE.search(query)
        feed = m.group(1) if m else "DIFFERENTIAL"
        if feed.startswith("$"):
            feed = str(variables.get(feed[1:], ""))
        if feed not in ("DIFFERENTIAL", "TRUE_UP"):
            return gql_errors(
                f'Value "{feed}" does not exist in "inventoryFeedKind" enum.',
                "GRAPHQL_VALIDATION_FAILED",
                400,
            )
        inputs = variables.get("inventory")
        if not isinstance(inputs, list) or not inputs:
            return gql_errors(
                'Variable "$inventory" of required type "[inventoryInput]!" was not provided.',
                "BAD_USER_INPUT",
            )
        for i, item in enumerate(inputs):
            qty = item.get("quantity_on_hand") if isinstance(item, dict) else None
            if (
                self._input_key(acc, item if isinstance(item, dict) else {}) is None
                or not isinstance(qty, int)
                or isinstance(qty, bool)
                or qty < 0
            ):
                return gql_errors(
                    f'Variable "$inventory" got invalid value at "inventory[{i}]"', "BAD_USER_INPUT"
                )
        now, mono = time.time(), time.monotonic()
        delay = acc.limits.apply_delay_s
        errors: list[dict[str, str]] = []
        touched: set[str] = set()
        for item in inputs:
            key = self._input_key(acc, item) or ""
            qty = int(item["quantity_on_hand"])
            acc.received(key, qty)
            listing = acc.listings.get(key)
            if listing is None or call.fault("unknown_listing", listing=key):
                errors.append({"key": str(item["supplier_part_number"])})
                continue
            touched.add(key)
            self._schedule(call, listing, qty, mono + delay)
        if feed == "TRUE_UP":
            suppliers = {k.split("/", 1)[0] for k in touched | {e["key"] for e in errors}}
            for key, listing in acc.listings.items():
                if key not in touched and key.split("/", 1)[0] in suppliers:
                    self._schedule(call, listing, 0, mono + delay)
        done = delay <= 0
        submission = {
            "id": str(uuid.uuid4()),
            "handle": uuid.uuid4().hex,
            "status": "COMPLETE" if done else "PROCESSING",
            "submittedAt": iso(now),
            "completedAt": iso(now) if done else None,
            "errors": errors,
        }
        return json_response({"data": {"inventory": {"save": submission}}})

    def _schedule(self, call: Call, listing: Listing, qty: int, at: float) -> None:
        if call.fault("forced_zero", "not_applied", listing=listing.key) is not None:
            return
        if at <= time.monotonic():
            listing.pending.clear()
            listing.stock = qty
        else:
            listing.pending.append((at, qty))

    def _read(self, call: Call, m: re.Match[str], variables: Mapping[str, Any]) -> web.Response:
        acc = call.account
        lm = LIMIT_RE.search(m.group(1))
        raw: Any = lm.group(1) if lm else "10"
        if isinstance(raw, str) and raw.startswith("$"):
            raw = variables.get(raw[1:])
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            return gql_errors("limit must be an Int", "BAD_USER_INPUT")
        wanted = [f for f in re.split(r"[\s,]+", m.group(2)) if f] or list(READ_FIELDS)
        unknown = [f for f in wanted if f not in READ_FIELDS]
        if unknown:
            return gql_errors(
                f'Cannot query field "{unknown[0]}" on type "Inventory".',
                "GRAPHQL_VALIDATION_FAILED",
                400,
            )
        mono = time.monotonic()
        rows = []
        for listing in list(acc.listings.values())[: max(0, limit)]:
            listing.settle(mono)
            full = {
                "supplierPartNumber": listing.ident["supplier_part_number"],
                "quantityOnHand": self.shown(acc, listing),
                "quantityBackordered": 0,
                "quantityOnOrder": 0,
                "discontinued": False,
                "itemNextAvailabilityDate": None,
            }
            rows.append({f: full[f] for f in wanted})
        return json_response({"data": {"inventory": rows}})

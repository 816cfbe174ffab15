"""Wayfair Supplier API (GraphQL) client: inventory saves, read-back, client-credentials token.

Owns the request shapes of the ``inventory.save`` mutation (``feedKind``
``DIFFERENTIAL`` by default, ``TRUE_UP`` when configured; batch size
configurable, default 200 as in Wayfair's own plugin), the ``inventory``
read-back query, and the client-credentials token
(``POST token_url`` with ``{grant_type, client_id, client_secret, audience}``),
which is cached in the token store for its lifetime and renewed at half-life
(Wayfair's advice: 24 h tokens, renew every 12 h): never fetched per call, as
the token endpoint itself is rate-limited.

Saves are asynchronous: the answer is a submission record
(``id handle status submittedAt completedAt errors { key }``), not applied
stock. ``ok`` therefore means "accepted for processing"; ``raw["submission"]``
carries the record, and the applied quantity is checked with
:meth:`WayfairChannel.read_stock`. A submission ``errors[]`` entry whose
``key`` is the listing's ``supplier_part_number`` fails that listing
(``code`` ``syncd.submission_error``, ``message`` the key and any message);
entries naming no listing of the call fail every listing. Top-level GraphQL
``errors`` fail the whole call (``extensions.code`` when given, else
``None``; the message verbatim). HTTP 401 drops the cached token, fetches a
new one and re-sends once.

``TRUE_UP`` is a full snapshot: parts not in the feed may be treated as zero
by Wayfair. Use it only when every push carries every part of the supplier
(syncd pushes changed listings, so the default is ``DIFFERENTIAL``).

Settings: ``base_url`` (default ``https://api.wayfair.com``), ``token_url``
(default ``https://sso.auth.wayfair.com/oauth/token``), ``audience``
(default ``base_url`` + ``/``), ``client_id``, ``client_secret`` (secrets),
``supplier_id`` (int, default for listings without one), ``feed_kind``
(``DIFFERENTIAL`` | ``TRUE_UP``), ``batch_size`` (default 200),
``read_limit`` (parts read back per query, default 10000), ``timeout_s``,
``max_connections``.

Listing object: ``{"supplier_part_number": str}`` plus optional
``"supplier_id": int``; optional static fields passed through to
``inventoryInput``: ``quantity_backordered``, ``quantity_on_order``,
``item_next_availability_date``, ``discontinued``, ``product_name_and_options``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncd.channels.answers import HttpResult, fail_unreadable
from syncd.channels.base import (
    BAD_RESPONSE,
    PushOutcome,
    StockUpdate,
    fail_all,
    failure,
    listing_ref,
    success,
)
from syncd.channels.http import GraphQLChannel, graphql_error
from syncd.channels.settings import (
    ChannelSettings,
    Int,
    OptInt,
    OptStr,
    Secret,
    Str,
    field_validator,
)

DEFAULT_BATCH = 200
HARD_MAX_BATCH = 5000
SUBMISSION_ERROR = "syncd.submission_error"
FEED_KINDS = ("DIFFERENTIAL", "TRUE_UP")
PASS_THROUGH = (
    "quantity_backordered",
    "quantity_on_order",
    "item_next_availability_date",
    "discontinued",
    "product_name_and_options",
)
READ_QUERY = (
    "query SyncdReadInventory($limit: Int) { inventory(limit: $limit) {"
    " supplierPartNumber quantityOnHand quantityBackordered quantityOnOrder discontinued"
    " itemNextAvailabilityDate } }"
)


def save_mutation(feed_kind: str) -> str:
    if feed_kind not in FEED_KINDS:
        raise ValueError(feed_kind)
    return (
        "mutation save($inventory: [inventoryInput]!) { inventory {"
        f" save(inventory: $inventory, feedKind: {feed_kind}) {{"
        " id handle status submittedAt completedAt errors { key } } } }"
    )


def valid_listing(listing: Mapping[str, Any], default_supplier: int | None) -> bool:
    spn = listing.get("supplier_part_number")
    sid = listing.get("supplier_id", default_supplier)
    return isinstance(spn, str) and spn != "" and isinstance(sid, int) and not isinstance(sid, bool)


def build_save(
    batch: Sequence[StockUpdate], feed_kind: str, default_supplier: int | None
) -> dict[str, Any]:
    """The GraphQL request of one ``inventory.save`` call."""
    rows = []
    for u in batch:
        row: dict[str, Any] = {
            "supplier_id": u.listing.get("supplier_id", default_supplier),
            "supplier_part_number": u.listing["supplier_part_number"],
            "quantity_on_hand": u.quantity,
        }
        for key in PASS_THROUGH:
            if key in u.listing:
                row[key] = u.listing[key]
        rows.append(row)
    return {"query": save_mutation(feed_kind), "variables": {"inventory": rows}}


def parse_save(batch: Sequence[StockUpdate], result: HttpResult) -> list[PushOutcome]:
    """One outcome per update from an ``inventory.save`` answer."""
    body = result.body
    retry_after = result.retry_after()
    if not isinstance(body, dict):
        return fail_unreadable(batch, result, retry_after)
    data = body.get("data")
    inventory = data.get("inventory") if isinstance(data, dict) else None
    save = inventory.get("save") if isinstance(inventory, dict) else None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and not isinstance(save, dict):
        code, message = graphql_error(errors)
        return fail_all(batch, result.status, code, message, retry_after, {"errors": errors})
    if result.status >= 400 or not isinstance(save, dict):
        code = None if result.status >= 400 else BAD_RESPONSE
        message = result.snippet()
        if isinstance(errors, str):
            message = errors
        elif isinstance(body.get("error"), str):
            code = str(body["error"])
            message = str(body.get("error_description") or body.get("message") or body["error"])
        return fail_all(batch, result.status, code, message, retry_after)
    submission = {k: v for k, v in save.items() if k != "errors"}
    sub_errors = [e for e in save.get("errors") or [] if isinstance(e, dict)]
    by_part: dict[str, dict[str, Any]] = {}
    general: dict[str, Any] | None = None
    parts = {str(u.listing.get("supplier_part_number")) for u in batch}
    for e in sub_errors:
        key = e.get("key")
        if isinstance(key, str) and key in parts:
            by_part.setdefault(key, e)
        elif general is None:
            general = e
    out = []
    for u in batch:
        err = by_part.get(str(u.listing.get("supplier_part_number"))) or general
        raw: dict[str, Any] = {"submission": submission}
        if err is not None:
            raw["error"] = err
            text = str(err.get("key"))
            if err.get("message"):
                text = f"{text}: {err['message']}"
            out.append(failure(u, result.status, SUBMISSION_ERROR, text, None, raw))
        else:
            out.append(success(u, result.status, raw))
    return out


class WayfairSettings(ChannelSettings):
    """A Wayfair supplier's settings (module docstring); ``client_secret`` is a secret."""

    platform = "wayfair"
    token_url: Str = "https://sso.auth.wayfair.com/oauth/token"
    audience: OptStr = None
    """None: ``base_url`` + ``/``."""
    client_id: Str
    client_secret: Secret
    supplier_id: OptInt = None
    feed_kind: Str = "DIFFERENTIAL"
    read_limit: Int = 10000

    @field_validator("feed_kind")
    @classmethod
    def _feed_kind(cls, value: str) -> str:
        if value not in FEED_KINDS:
            raise ValueError("must be DIFFERENTIAL or TRUE_UP")
        return value


class WayfairChannel(GraphQLChannel):
    platform = "wayfair"
    settings_model = WayfairSettings
    settings: WayfairSettings
    hard_max_batch = HARD_MAX_BATCH
    default_batch = DEFAULT_BATCH
    default_base_url = "https://api.wayfair.com"
    invalid_listing_message = (
        "wayfair listing needs supplier_part_number (and supplier_id, or the"
        " account's supplier_id setting)"
    )

    def _configure(self) -> None:
        s = self.settings
        self.token_url = s.token_url
        self.audience = self.base_url + "/" if s.audience is None else s.audience
        self._client_id = s.client_id
        self._client_secret = s.client_secret.get_secret_value()
        self.supplier_id = s.supplier_id
        self.feed_kind = s.feed_kind
        self.read_limit = s.read_limit

    @property
    def graphql_url(self) -> str:
        return self.base_url + "/v1/graphql"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # -- tokens ---------------------------------------------------------------

    def _initial_token(self) -> dict[str, Any] | None:
        return None  # client credentials: the first call fetches a token

    def _can_refresh(self, token: Mapping[str, Any] | None) -> bool:
        return True

    async def _fetch_token(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "audience": self.audience,
        }
        result = await self.request("POST", self.token_url, operation="token", json_body=body)
        data = result.body
        if result.status >= 400 or not isinstance(data, dict) or not data.get("access_token"):
            raise self._oauth_refused(result, "message", event="channel_token_refused")
        now = self._clock()
        expires_in = float(data.get("expires_in") or 86400)
        return {
            "access_token": str(data["access_token"]),
            "expires_at": now + expires_in,
            "refresh_at": now + expires_in / 2,
            "obtained_at": now,
        }

    # -- push -----------------------------------------------------------------

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        return valid_listing(listing, self.supplier_id)

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        request = build_save(batch, self.feed_kind, self.supplier_id)
        result = await self._graphql(request, "inventory_save")
        outcomes = parse_save(batch, result)
        submission = outcomes[0].raw.get("submission") if outcomes and outcomes[0].raw else None
        self._log.info(
            "channel_pushed",
            parts=len(batch),
            failed=sum(1 for o in outcomes if not o.ok),
            http_status=result.status,
            feed_kind=self.feed_kind,
            submission_id=submission.get("id") if isinstance(submission, dict) else None,
        )
        return outcomes

    # -- read-back ------------------------------------------------------------

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """``quantityOnHand`` per listing, from one ``inventory(limit:)`` query.

        Only ``limit`` is a documented argument of the query (no filter, no
        offset), so one call reads up to ``read_limit`` parts; listings beyond
        that are missing from the result (unknown).
        """
        wanted: dict[str, list[dict[str, Any]]] = {}
        for listing in listings:
            if valid_listing(listing, self.supplier_id):
                wanted.setdefault(str(listing["supplier_part_number"]), []).append(listing)
        out: dict[str, int] = {}
        if not wanted:
            return out
        request = {"query": READ_QUERY, "variables": {"limit": self.read_limit}}
        result = await self._graphql(request, "inventory_query")
        body = result.body
        data = body.get("data") if isinstance(body, dict) else None
        rows = data.get("inventory") if isinstance(data, dict) else None
        if result.status >= 400 or not isinstance(rows, list):
            errors = body.get("errors") if isinstance(body, dict) else None
            first = errors[0] if isinstance(errors, list) and errors else None
            ext = first.get("extensions") if isinstance(first, dict) else None
            code = ext.get("code") if isinstance(ext, dict) else None
            self._log_read_failed("inventory_query", result, code)
            return out
        for row in rows:
            if not isinstance(row, dict):
                continue
            found = wanted.pop(str(row.get("supplierPartNumber")), None)
            qty = row.get("quantityOnHand")
            if found and isinstance(qty, int) and not isinstance(qty, bool):
                for listing in found:
                    out[listing_ref(listing)] = qty
        if wanted:
            self._log.info("channel_read_incomplete", missing=len(wanted), limit=self.read_limit)
        return out

"""Shopify client: mutation shape, CAS/idempotency choices, answer parsing; then the same
client against the Shopify sandbox over real HTTP (cost bucket, user errors, token refresh)."""

from __future__ import annotations

import re

import orjson

from syncd.channels.base import BATCH_REJECTED, listing_ref
from syncd.channels.shopify import (
    ShopifyChannel,
    build_read,
    build_set_quantities,
    parse_set_quantities,
    parse_throttle,
)
from syncd.channels.tokens import MemoryTokenStore
from syncd.testing.sandbox import Sandbox
from tests.fixtures.channels import SandboxFactory, answer, upd

ITEM = "gid://shopify/InventoryItem/"
LOC = "gid://shopify/Location/1"


def listing(n: int) -> dict[str, object]:
    return {"inventory_item_id": f"{ITEM}{n}", "location_id": LOC}


BATCH = [upd(listing(1), 5), upd({"inventory_item_id": 2, "location_id": 1}, 0)]


def test_set_quantities_request_2026_04() -> None:
    req = build_set_quantities(BATCH, idempotency_key="6f1c2d3e-0000-4000-8000-000000000001")
    q = req["query"]
    assert "inventorySetQuantities(input: $input)" in q
    assert '@idempotent(key: "6f1c2d3e-0000-4000-8000-000000000001")' in q
    assert "userErrors { field message code }" in q
    inp = req["variables"]["input"]
    assert inp["name"] == "available" and inp["reason"] == "correction"
    assert inp["quantities"][1] == {
        "inventoryItemId": f"{ITEM}2",
        "locationId": LOC,
        "quantity": 0,
        "changeFromQuantity": None,
    }
    # The opt-out is an explicit null on the wire, not an omitted field.
    assert b'"changeFromQuantity":null' in orjson.dumps(req)
    assert "ignoreCompareQuantity" not in inp


def test_set_quantities_request_before_cas_redesign() -> None:
    req = build_set_quantities(
        BATCH, idempotency_key="k", api_version="2025-10", reference_document_uri="syncd://push/1"
    )
    assert "@idempotent" not in req["query"]
    inp = req["variables"]["input"]
    assert inp["ignoreCompareQuantity"] is True
    assert inp["referenceDocumentUri"] == "syncd://push/1"
    assert all("changeFromQuantity" not in q for q in inp["quantities"])


def test_batches_of_250() -> None:
    ch = ShopifyChannel(
        "shopify:x",
        {"base_url": "http://127.0.0.1:1/shops/x", "access_token": "t"},
        MemoryTokenStore(),
    )
    updates = [upd(listing(n), n) for n in range(600)] + [upd({"location_id": 1}, 1)]
    assert [len(b) for b in ch.batches(updates)] == [250, 250, 100, 1]


def test_parse_success_and_cost() -> None:
    body = {
        "data": {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": {"id": "gid://shopify/InventoryAdjustmentGroup/9"},
                "userErrors": [],
            }
        },
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "actualQueryCost": 10,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": 1990.0,
                    "restoreRate": 100.0,
                },
            }
        },
    }
    out = parse_set_quantities(BATCH, answer(200, body))
    assert all(o.ok for o in out)
    t = parse_throttle(body, now=1.0)
    assert t is not None
    assert (t.maximum_available, t.currently_available, t.restore_rate) == (2000.0, 1990.0, 100.0)
    assert t.requested_cost == 10.0 and t.observed_at == 1.0


def test_parse_user_error_by_index_and_rejected_rest() -> None:
    body = {
        "data": {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": None,
                "userErrors": [
                    {
                        "field": ["input", "quantities", "1", "inventoryItemId"],
                        "message": "The specified inventory item could not be found.",
                        "code": "INVALID_INVENTORY_ITEM",
                    }
                ],
            }
        }
    }
    first, second = parse_set_quantities(BATCH, answer(200, body))
    assert not second.ok and second.code == "INVALID_INVENTORY_ITEM"
    assert second.message == "The specified inventory item could not be found."
    assert not first.ok and first.code == BATCH_REJECTED


def test_parse_user_error_without_index_fails_all() -> None:
    body = {
        "data": {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": None,
                "userErrors": [
                    {
                        "field": ["input", "reason"],
                        "message": "bad reason",
                        "code": "INVALID_REASON",
                    }
                ],
            }
        }
    }
    out = parse_set_quantities(BATCH, answer(200, body))
    assert [o.code for o in out] == ["INVALID_REASON", "INVALID_REASON"]


def test_parse_throttled_on_http_200() -> None:
    body = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 252,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 1000.0,
                    "currentlyAvailable": 52.0,
                    "restoreRate": 50.0,
                },
            }
        },
    }
    out = parse_set_quantities(BATCH, answer(200, body))
    assert all(not o.ok and o.http_status == 200 for o in out)
    assert out[0].code == "THROTTLED" and out[0].message == "Throttled"
    assert out[0].retry_after_s == 4.0  # (252 - 52) / 50


def test_parse_other_top_level_errors_and_http_failures() -> None:
    body = {
        "errors": [
            {
                "message": (
                    "The @idempotent directive is required for this mutation but was not provided."
                ),
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
    out = parse_set_quantities(BATCH, answer(200, body))
    assert out[0].code == "BAD_REQUEST" and "@idempotent" in (out[0].message or "")
    unauthorized = {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    out = parse_set_quantities(BATCH, answer(401, unauthorized))
    assert out[0].http_status == 401 and out[0].message is not None
    assert out[0].message.startswith("[API] Invalid API key")
    out = parse_set_quantities(BATCH, answer(429, {"errors": "Exceeded"}, {"Retry-After": "1.5"}))
    assert out[0].retry_after_s == 1.5 and out[0].http_status == 429


def test_read_query_is_aliased_per_listing() -> None:
    req = build_read([listing(1), {"inventory_item_id": 7, "location_id": 3}])
    q = req["query"]
    assert re.search(r"q0: inventoryItem\(id: \$i0\)", q)
    assert "inventoryLevel(locationId: $l1)" in q
    assert 'quantities(names: ["available"])' in q
    assert req["variables"] == {
        "i0": f"{ITEM}1",
        "l0": LOC,
        "i1": f"{ITEM}7",
        "l1": "gid://shopify/Location/3",
    }


# -- against the Shopify sandbox (real HTTP on 127.0.0.1) ------------------------

L1 = {"inventory_item_id": f"{ITEM}101", "location_id": LOC}
L2 = {"inventory_item_id": f"{ITEM}102", "location_id": LOC}
L3 = {"inventory_item_id": 103, "location_id": 1}


async def shopify_setup(
    sandbox_factory: SandboxFactory, store: MemoryTokenStore | None = None, **settings: object
) -> tuple[Sandbox, ShopifyChannel, MemoryTokenStore]:
    sb = await sandbox_factory("shopify")
    creds = sb.add_account("my-shop")
    for lst in (L1, L2, L3):
        sb.add_listing("my-shop", lst, stock=2)
    store = store if store is not None else MemoryTokenStore()
    ch = ShopifyChannel("shopify:my-shop", {**creds, **settings}, store)
    return sb, sandbox_factory.closing(ch), store


async def test_sandbox_set_and_read_back_with_cost(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopify_setup(sandbox_factory)
    assert ch.throttle_status is None
    out = await ch.push([upd(L1, 11), upd(L2, 0), upd(L3, 4)])
    assert all(o.ok for o in out)
    assert [sb.stock("my-shop", x) for x in (L1, L2, L3)] == [11, 0, 4]
    t = ch.throttle_status
    assert t is not None and t.maximum_available == 2000 and t.restore_rate == 100
    assert t.currently_available <= 1990
    got = await ch.read_stock([L1, L2, L3, {"inventory_item_id": 999, "location_id": 1}])
    assert got == {listing_ref(L1): 11, listing_ref(L2): 0, listing_ref(L3): 4}


async def test_sandbox_older_api_version(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopify_setup(sandbox_factory, api_version="2025-10")
    assert (await ch.push([upd(L1, 3)]))[0].ok and sb.stock("my-shop", L1) == 3


async def test_sandbox_throttled_follows_the_cost_bucket(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopify_setup(sandbox_factory)
    sb.set_limits("my-shop", bucket_size=15, restore_rate=5)
    assert (await ch.push([upd(L1, 1)]))[0].ok  # costs 10 of 15
    out = await ch.push([upd(L1, 2)])
    assert not out[0].ok and out[0].http_status == 200
    assert (out[0].code, out[0].message) == ("THROTTLED", "Throttled")
    assert out[0].retry_after_s is not None and 0 < out[0].retry_after_s <= 2.1
    t = ch.throttle_status
    assert t is not None and t.maximum_available == 15 and t.currently_available < 10


async def test_sandbox_user_error_rejects_the_call(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopify_setup(sandbox_factory)
    sb.inject("my-shop", "unknown_listing", listing=L2, count=1)
    a, b = await ch.push([upd(L1, 6), upd(L2, 6)])
    assert (b.ok, b.code) == (False, "INVALID_INVENTORY_ITEM")
    assert (a.ok, a.code) == (False, BATCH_REJECTED)
    assert sb.stock("my-shop", L1) == 2  # all-or-nothing: nothing applied
    out = await ch.push([upd(L1, 1_000_000_001)])
    assert out[0].code == "INVALID_QUANTITY_TOO_HIGH"


async def test_sandbox_expired_token_refreshed_and_pair_stored(
    sandbox_factory: SandboxFactory,
) -> None:
    sb, ch, store = await shopify_setup(sandbox_factory)
    sb.expire_token("my-shop")
    out = await ch.push([upd(L1, 5)])
    assert out[0].ok and sb.stock("my-shop", L1) == 5
    stats = sb.stats("my-shop")
    assert stats["token_requests"] == 1
    token = store.get("shopify:my-shop")
    creds = sb.credentials("my-shop")
    assert token is not None
    assert (token["access_token"], token["refresh_token"]) == (
        creds["access_token"],
        creds["refresh_token"],
    )
    assert token["refresh_at"] < token["expires_at"]


async def test_sandbox_refresh_refused_and_no_refresh_possible(
    sandbox_factory: SandboxFactory,
) -> None:
    sb, ch, _ = await shopify_setup(sandbox_factory)
    sb.inject("my-shop", "token_revoked")
    out = await ch.push([upd(L1, 5)])
    assert (out[0].ok, out[0].http_status, out[0].code) == (False, 400, "invalid_grant")
    assert out[0].raw is not None and out[0].raw["stage"] == "token"
    creds = sb.credentials("my-shop")
    plain = {k: v for k, v in creds.items() if k not in ("refresh_token", "client_secret")}
    ch2 = sandbox_factory.closing(ShopifyChannel("shopify:other", plain, MemoryTokenStore()))
    out = await ch2.push([upd(L1, 5)])
    assert out[0].http_status == 401
    assert (out[0].message or "").startswith("[API] Invalid API key or access token")

"""Shopify sandbox over real HTTP: inventorySetQuantities (2026-04), cost bucket, token refresh."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.testing.sandbox import Sandbox, start

pytestmark = pytest.mark.timeout(20)

ITEM = "gid://shopify/InventoryItem/101"
ITEM2 = "gid://shopify/InventoryItem/102"
LOC = "gid://shopify/Location/1"
SET = (
    "mutation set($input: InventorySetQuantitiesInput!) "
    '{ inventorySetQuantities(input: $input) @idempotent(key: "%s") '
    "{ inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } } "
    "userErrors { field message code } } }"
)
SET_NO_KEY = SET.replace(' @idempotent(key: "%s")', "")
READ = (
    "query($id: ID!, $loc: ID!) { inventoryItem(id: $id) { id inventoryLevel(locationId: $loc)"
    ' { quantities(names: ["available", "on_hand"]) { name quantity } } } }'
)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = await start("shopify")
    sandbox.add_account("store", shop="demo-shop")
    sandbox.add_listing("store", {"inventory_item_id": ITEM, "location_id": LOC}, stock=5)
    sandbox.add_listing("store", {"inventory_item_id": 102}, stock=2)
    yield sandbox
    await sandbox.close()


def set_input(*rows: tuple[str, int, int | None]) -> dict[str, Any]:
    return {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": "syncd://push/1",
            "quantities": [
                {"inventoryItemId": i, "locationId": LOC, "quantity": q, "changeFromQuantity": c}
                for i, q, c in rows
            ],
        }
    }


async def gql(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    query: str,
    variables: dict[str, Any],
    token: str | None = None,
    version: str = "2026-04",
) -> tuple[int, Any]:
    c = sb.credentials("store")
    url = f"{c['base_url']}/admin/api/{version}/graphql.json"
    headers = {"X-Shopify-Access-Token": token or c["access_token"]}
    async with http.post(url, json={"query": query, "variables": variables}, headers=headers) as r:
        if r.content_type != "application/json":
            return r.status, await r.text()
        return r.status, await r.json()


async def set_qty(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    *rows: tuple[str, int, int | None],
    key: str | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    return await gql(http, sb, SET % (key or uuid.uuid4()), set_input(*rows), token)


async def available(http: aiohttp.ClientSession, sb: Sandbox, item: str = ITEM) -> Any:
    _, body = await gql(http, sb, READ, {"id": item, "loc": LOC})
    return body["data"]["inventoryItem"]


async def test_set_and_read_back(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await set_qty(http, sb, (ITEM, 8, 5), (ITEM2, 0, None))
    result = body["data"]["inventorySetQuantities"]
    assert status == 200 and result["userErrors"] == []
    assert [c["delta"] for c in result["inventoryAdjustmentGroup"]["changes"]] == [3, -2]
    status_ = body["extensions"]["cost"]["throttleStatus"]
    assert status_["maximumAvailable"] == 2000.0 and status_["restoreRate"] == 100.0
    node = await available(http, sb)
    assert node["inventoryLevel"]["quantities"] == [
        {"name": "available", "quantity": 8},
        {"name": "on_hand", "quantity": 8},
    ]
    assert sb.stock("store", {"inventory_item_id": 102}) == 0
    assert sb.stats("store")["last_quantity"] == {f"{ITEM}@{LOC}": 8, f"{ITEM2}@{LOC}": 0}
    assert (await available(http, sb, "gid://shopify/InventoryItem/999")) is None


async def test_aliased_read_of_several_items(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    level = (
        'inventoryLevel(locationId: "' + LOC + '") { quantities(names: ["available"]) '
        "{ name quantity } }"
    )
    query = (
        f'{{ a: inventoryItem(id: "{ITEM}") {{ {level} }} '
        f'b: inventoryItem(id: "{ITEM2}") {{ {level} }} }}'
    )
    _, body = await gql(http, sb, query, {})
    data = body["data"]
    assert data["a"]["inventoryLevel"]["quantities"][0]["quantity"] == 5
    assert data["b"]["inventoryLevel"]["quantities"][0]["quantity"] == 2
    assert body["extensions"]["cost"]["requestedQueryCost"] == 5


async def test_tampered_and_expired_token_get_401(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    good = sb.credentials("store")["access_token"]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    status, body = await set_qty(http, sb, (ITEM, 1, None), token=bad)
    assert status == 401 and "Invalid API key or access token" in body["errors"]
    sb.expire_token("store")
    status, _ = await set_qty(http, sb, (ITEM, 1, None))
    assert status == 401 and sb.stock("store", {"inventory_item_id": ITEM}) == 5


async def test_refresh_rotates_with_grace(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    c = sb.credentials("store")
    url = f"{c['base_url']}/admin/oauth/access_token"
    form = {
        "client_id": c["client_id"],
        "client_secret": c["client_secret"],
        "grant_type": "refresh_token",
        "refresh_token": c["refresh_token"],
    }
    sb.expire_token("store")
    async with http.post(url, data=form) as r:
        first = await r.json()
    assert r.status == 200 and first["expires_in"] == 3600
    assert first["refresh_token"] != c["refresh_token"]
    async with http.post(url, data=form) as r:  # old one still valid: the new one is unused
        second = await r.json()
    assert r.status == 200
    status, _ = await set_qty(http, sb, (ITEM, 1, None), token=second["access_token"])
    assert status == 200
    async with http.post(url, data=form) as r:  # replacement used: old one is gone now
        assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    assert sb.stats("store")["refreshes"] == 2
    sb.inject("store", "refresh_fail", count=1)
    async with http.post(url, data={**form, "refresh_token": second["refresh_token"]}) as r:
        assert r.status == 400


async def test_cost_bucket_throttles(http: aiohttp.ClientSession) -> None:
    sandbox = await start("shopify", bucket_size=25, restore_rate=20)
    try:
        sandbox.add_account("store", shop="demo-shop")
        sandbox.add_listing("store", {"inventory_item_id": ITEM}, stock=5)
        answers = [await set_qty(http, sandbox, (ITEM, n, None)) for n in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert "data" in answers[1][1]
        throttled = answers[2][1]
        assert "data" not in throttled
        assert throttled["errors"] == [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ]
        cost = throttled["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 10
        assert cost["throttleStatus"]["currentlyAvailable"] < 10
        assert cost["throttleStatus"]["maximumAvailable"] == 25.0
        assert sandbox.stats("store")["throttled"] == 1
        await asyncio.sleep(0.3)
        _, body = await set_qty(http, sandbox, (ITEM, 9, None))
        assert "data" in body and sandbox.stock("store", {"inventory_item_id": ITEM}) == 9
    finally:
        await sandbox.close()


async def test_2026_04_requires_idempotency_and_change_from(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, body = await gql(http, sb, SET_NO_KEY, set_input((ITEM, 1, None)))
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "@idempotent directive is required" in body["errors"][0]["message"]
    variables = set_input((ITEM, 1, None))
    del variables["input"]["quantities"][0]["changeFromQuantity"]
    _, body = await gql(http, sb, SET % uuid.uuid4(), variables)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    assert "changeFromQuantity" in body["errors"][0]["message"]
    _, body = await gql(http, sb, SET_NO_KEY, variables, version="2025-10")
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []


async def test_stale_change_from_and_idempotent_replay(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, body = await set_qty(http, sb, (ITEM, 1, 4))
    result = body["data"]["inventorySetQuantities"]
    assert result["inventoryAdjustmentGroup"] is None
    assert result["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    key = str(uuid.uuid4())
    await set_qty(http, sb, (ITEM, 6, 5), key=key)
    sb.set_stock("store", {"inventory_item_id": ITEM}, 2)
    _, body = await set_qty(http, sb, (ITEM, 6, 5), key=key)  # replay: not applied again
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert sb.stock("store", {"inventory_item_id": ITEM}) == 2
    _, body = await set_qty(http, sb, (ITEM, 7, 5), key=key)
    assert (
        body["data"]["inventorySetQuantities"]["userErrors"][0]["code"]
        == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    )


async def test_user_errors_are_all_or_nothing(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, body = await set_qty(
        http, sb, (ITEM, 3, None), ("gid://shopify/InventoryItem/999", 1, None), (ITEM2, -1, None)
    )
    errors = body["data"]["inventorySetQuantities"]["userErrors"]
    assert [e["code"] for e in errors] == ["INVALID_INVENTORY_ITEM", "INVALID_QUANTITY_NEGATIVE"]
    assert errors[0]["field"] == ["input", "quantities", "1", "inventoryItemId"]
    assert sb.stock("store", {"inventory_item_id": ITEM}) == 5
    sb.inject("store", "unknown_listing", listing={"inventory_item_id": ITEM2})
    _, body = await set_qty(http, sb, (ITEM2, 1, None))
    assert (
        body["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "INVALID_INVENTORY_ITEM"
    )


@pytest.mark.parametrize(
    ("fault", "params", "status", "code"),
    [
        ("platform_error", {}, 200, "INTERNAL_SERVER_ERROR"),
        ("throttle", {}, 200, "THROTTLED"),
        ("token_expired", {}, 401, None),
        ("http_error", {"status": 502}, 502, None),
        ("http_error", {"status": 501}, 501, None),
    ],
)
async def test_request_faults(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    fault: str,
    params: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    sb.inject("store", fault, count=1, **params)
    got, body = await set_qty(http, sb, (ITEM, 1, None))
    assert got == status
    if code is not None:
        assert body["errors"][0]["extensions"]["code"] == code and "data" not in body
    assert sb.stock("store", {"inventory_item_id": ITEM}) == 5
    got, body = await set_qty(http, sb, (ITEM, 1, None))
    assert got == 200 and body["data"]["inventorySetQuantities"]["userErrors"] == []


async def test_unsupported_operation_and_unknown_shop(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, body = await gql(http, sb, "{ shop { name } }", {})
    assert body["errors"] and "extensions" in body
    async with http.post(
        sb.root_url + "/shops/nope/admin/api/2026-04/graphql.json",
        json={"query": "{ shop { name } }"},
    ) as r:
        assert r.status == 404


async def test_timeout(sb: Sandbox) -> None:
    sb.inject("store", "timeout", count=1, seconds=1)
    c = sb.credentials("store")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as h:
        with pytest.raises(asyncio.TimeoutError):
            await h.post(
                f"{c['base_url']}/admin/api/2026-04/graphql.json",
                json={"query": READ, "variables": {"id": ITEM, "loc": LOC}},
                headers={"X-Shopify-Access-Token": c["access_token"]},
            )

"""Wayfair sandbox over real HTTP: client-credentials token, GraphQL save and read-back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.testing.sandbox import Sandbox, start

pytestmark = pytest.mark.timeout(20)

SAVE = (
    "mutation save($inventory: [inventoryInput]!) { inventory { save(inventory: $inventory, "
    "feedKind: DIFFERENTIAL) { id handle status submittedAt completedAt errors { key } } } }"
)
SAVE_TRUE_UP = SAVE.replace("DIFFERENTIAL", "TRUE_UP")
READ = (
    "query inventory { inventory(limit: 50) { supplierPartNumber, quantityOnHand, "
    "quantityBackordered, quantityOnOrder, discontinued, itemNextAvailabilityDate } }"
)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = await start("wayfair")
    sandbox.add_account("main", supplier_id=4242)
    for part in ("P-1", "P-2", "P-3"):
        sandbox.add_listing("main", {"supplier_part_number": part}, stock=5)
    yield sandbox
    await sandbox.close()


async def token(
    http: aiohttp.ClientSession, sb: Sandbox, secret: str | None = None
) -> tuple[int, Any]:
    c = sb.credentials("main")
    body = {
        "grant_type": "client_credentials",
        "client_id": c["client_id"],
        "client_secret": c["client_secret"] if secret is None else secret,
        "audience": c["audience"],
    }
    async with http.post(c["token_url"], json=body) as r:
        return r.status, await r.json()


def inputs(*rows: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "supplier_id": 4242,
            "supplier_part_number": p,
            "quantity_on_hand": q,
            "quantity_backordered": 0,
            "quantity_on_order": 0,
            "discontinued": False,
            "item_next_availability_date": None,
            "product_name_and_options": p,
        }
        for p, q in rows
    ]


async def gql(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    tok: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[int, Any, Any]:
    async with http.post(
        sb.base_url + "/v1/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {tok}"},
    ) as r:
        return r.status, r.headers, await r.json()


async def on_hand(http: aiohttp.ClientSession, sb: Sandbox, tok: str) -> dict[str, int]:
    _, _, body = await gql(http, sb, tok, READ)
    return {row["supplierPartNumber"]: row["quantityOnHand"] for row in body["data"]["inventory"]}


async def test_token_save_and_read_back(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, tok = await token(http, sb)
    assert status == 200 and tok["expires_in"] == 86400 and tok["token_type"] == "Bearer"
    status, _, body = await gql(
        http, sb, tok["access_token"], SAVE, {"inventory": inputs(("P-1", 7), ("P-2", 0))}
    )
    sub = body["data"]["inventory"]["save"]
    assert status == 200 and sub["errors"] == [] and sub["status"] == "COMPLETE"
    assert sub["id"] and sub["handle"] and sub["submittedAt"]
    assert await on_hand(http, sb, tok["access_token"]) == {"P-1": 7, "P-2": 0, "P-3": 5}
    assert sb.stock("main", {"supplier_part_number": "P-1"}) == 7
    stats = sb.stats("main")
    assert stats["token_requests"] == 1 and stats["last_quantity"] == {"4242/P-1": 7, "4242/P-2": 0}


async def test_bad_credentials_and_tampered_token(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await token(http, sb, secret="nope")
    assert status == 401 and body["error"] == "access_denied"
    _, tok = await token(http, sb)
    good = tok["access_token"]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    status, headers, body = await gql(http, sb, bad, READ)
    assert status == 401 and body["errors"][0]["message"] == "Unauthorized"
    assert "invalid_token" in headers["WWW-Authenticate"]


async def test_expired_token(http: aiohttp.ClientSession) -> None:
    sandbox = await start("wayfair", token_ttl_s=60)
    try:
        sandbox.add_account("main")
        _, tok = await token(http, sandbox)
        assert tok["expires_in"] == 60
        sandbox.expire_token("main")
        status, _, _ = await gql(http, sandbox, tok["access_token"], READ)
        assert status == 401
        _, tok2 = await token(http, sandbox)
        status, _, _ = await gql(http, sandbox, tok2["access_token"], READ)
        assert status == 200 and sandbox.stats("main")["token_requests"] == 2
    finally:
        await sandbox.close()


async def test_rate_limit_429_retry_after(http: aiohttp.ClientSession) -> None:
    sandbox = await start("wayfair", rate_per_s=2, burst=2)
    try:
        sandbox.add_account("main")
        _, tok = await token(http, sandbox)  # not counted against the API limit
        answers = [await gql(http, sandbox, tok["access_token"], READ) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 429]
        assert answers[2][1]["Retry-After"] == "1"
        assert answers[2][2]["errors"][0]["message"] == "Too Many Requests"
        assert sandbox.stats("main")["throttled"] == 1
    finally:
        await sandbox.close()


async def test_async_apply_delay(http: aiohttp.ClientSession) -> None:
    sandbox = await start("wayfair", apply_delay_s=0.3)
    try:
        sandbox.add_account("main", supplier_id=4242)
        sandbox.add_listing("main", {"supplier_part_number": "P-1"}, stock=5)
        _, tok = await token(http, sandbox)
        _, _, body = await gql(
            http, sandbox, tok["access_token"], SAVE, {"inventory": inputs(("P-1", 1))}
        )
        sub = body["data"]["inventory"]["save"]
        assert sub["status"] == "PROCESSING" and sub["completedAt"] is None
        assert (await on_hand(http, sandbox, tok["access_token"]))["P-1"] == 5
        await asyncio.sleep(0.35)
        assert (await on_hand(http, sandbox, tok["access_token"]))["P-1"] == 1
    finally:
        await sandbox.close()


async def test_true_up_zeroes_missing_parts(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, tok = await token(http, sb)
    await gql(http, sb, tok["access_token"], SAVE_TRUE_UP, {"inventory": inputs(("P-1", 4))})
    assert await on_hand(http, sb, tok["access_token"]) == {"P-1": 4, "P-2": 0, "P-3": 0}


async def test_unknown_part_in_submission_errors(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, tok = await token(http, sb)
    sb.inject("main", "unknown_listing", listing={"supplier_part_number": "P-2"})
    _, _, body = await gql(
        http,
        sb,
        tok["access_token"],
        SAVE,
        {"inventory": inputs(("P-1", 1), ("NOPE", 2), ("P-2", 3))},
    )
    assert body["data"]["inventory"]["save"]["errors"] == [{"key": "NOPE"}, {"key": "P-2"}]
    assert sb.stock("main", {"supplier_part_number": "P-1"}) == 1


async def test_forced_zero_until_cleared(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, tok = await token(http, sb)
    listing = {"supplier_part_number": "P-1"}
    sb.inject("main", "forced_zero", listing=listing)
    assert (await on_hand(http, sb, tok["access_token"]))["P-1"] == 0
    _, _, body = await gql(http, sb, tok["access_token"], SAVE, {"inventory": inputs(("P-1", 9))})
    assert body["data"]["inventory"]["save"]["errors"] == []
    assert (await on_hand(http, sb, tok["access_token"]))["P-1"] == 0
    assert sb.stats("main")["last_quantity"]["4242/P-1"] == 9
    sb.clear("main", "forced_zero")
    assert (await on_hand(http, sb, tok["access_token"]))["P-1"] == 5
    await gql(http, sb, tok["access_token"], SAVE, {"inventory": inputs(("P-1", 9))})
    assert sb.stock("main", listing) == 9


async def test_markdown_not_applied(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, tok = await token(http, sb)
    sb.inject("main", "not_applied", listing={"supplier_part_number": "P-2"})
    _, _, body = await gql(
        http, sb, tok["access_token"], SAVE, {"inventory": inputs(("P-1", 2), ("P-2", 2))}
    )
    assert body["data"]["inventory"]["save"]["errors"] == []
    assert await on_hand(http, sb, tok["access_token"]) == {"P-1": 2, "P-2": 5, "P-3": 5}


async def test_graphql_errors(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, tok = await token(http, sb)
    status, _, body = await gql(http, sb, tok["access_token"], "query { orders { id } }")
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    status, _, body = await gql(http, sb, tok["access_token"], SAVE, {"inventory": [{"x": 1}]})
    assert body["errors"] and body["data"] is None
    sb.inject("main", "platform_error", count=1)
    status, _, body = await gql(http, sb, tok["access_token"], READ)
    assert status == 200 and body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


@pytest.mark.parametrize("code", [500, 501, 502, 503])
async def test_http_errors_and_token_faults(
    sb: Sandbox, http: aiohttp.ClientSession, code: int
) -> None:
    _, tok = await token(http, sb)
    sb.inject("main", "http_error", count=1, status=code)
    async with http.post(
        sb.base_url + "/v1/graphql",
        json={"query": READ},
        headers={"Authorization": f"Bearer {tok['access_token']}"},
    ) as r:
        assert r.status == code and r.content_type == "text/html"
    sb.inject("main", "token_revoked")
    status, _, _ = await gql(http, sb, tok["access_token"], READ)
    assert status == 401
    status, _ = await token(http, sb)
    assert status == 401

"""Shopee sandbox over real HTTP; signatures computed here from the documented recipe."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.testing.sandbox import Sandbox, start

pytestmark = pytest.mark.timeout(20)

UPDATE = "/api/v2/product/update_stock"
MODELS = "/api/v2/product/get_model_list"
BASE_INFO = "/api/v2/product/get_item_base_info"
REFRESH = "/api/v2/auth/access_token/get"
TOKEN_GET = "/api/v2/auth/token/get"


def sign(key: str, base: str) -> str:
    return hmac.new(key.encode(), base.encode(), hashlib.sha256).hexdigest()


def shop_params(
    c: dict[str, Any], path: str, *, ts: int | None = None, token: str | None = None
) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    token = c["access_token"] if token is None else token
    s = sign(c["partner_key"], f"{c['partner_id']}{path}{ts}{token}{c['shop_id']}")
    return {
        "partner_id": str(c["partner_id"]),
        "timestamp": str(ts),
        "access_token": token,
        "shop_id": str(c["shop_id"]),
        "sign": s,
    }


def public_params(c: dict[str, Any], path: str) -> dict[str, str]:
    ts = int(time.time())
    return {
        "partner_id": str(c["partner_id"]),
        "timestamp": str(ts),
        "sign": sign(c["partner_key"], f"{c['partner_id']}{path}{ts}"),
    }


def stock_body(item: int, *models: tuple[int, int]) -> dict[str, Any]:
    return {
        "item_id": item,
        "stock_list": [{"model_id": m, "seller_stock": [{"stock": q}]} for m, q in models],
    }


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = await start("shopee")
    sandbox.add_account("main")
    sandbox.add_listing("main", {"item_id": 10, "model_id": 1}, stock=3)
    sandbox.add_listing("main", {"item_id": 10, "model_id": 2}, stock=4)
    sandbox.add_listing("main", {"item_id": 20}, stock=8)
    yield sandbox
    await sandbox.close()


async def update(
    http: aiohttp.ClientSession, sb: Sandbox, body: dict[str, Any], **kw: Any
) -> tuple[int, Any]:
    c = sb.credentials("main")
    async with http.post(sb.base_url + UPDATE, params=shop_params(c, UPDATE, **kw), json=body) as r:
        return r.status, await r.json(content_type=None)


async def test_signed_update_applies_and_reads_back(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await update(http, sb, stock_body(10, (1, 7), (2, 0)))
    assert status == 200 and body["error"] == ""
    assert body["response"]["success_list"] == [
        {"model_id": 1, "location_id": "", "stock": 7},
        {"model_id": 2, "location_id": "", "stock": 0},
    ]
    assert body["response"]["failure_list"] == []
    c = sb.credentials("main")
    async with http.get(
        sb.base_url + MODELS, params={**shop_params(c, MODELS), "item_id": "10"}
    ) as r:
        models = (await r.json())["response"]["model"]
    stocks = {m["model_id"]: m["stock_info_v2"]["seller_stock"][0]["stock"] for m in models}
    assert stocks == {1: 7, 2: 0}
    status, body = await update(http, sb, stock_body(20, (0, 5)))
    assert body["error"] == "" and body["response"]["success_list"][0]["stock"] == 5
    async with http.get(
        sb.base_url + BASE_INFO, params={**shop_params(c, BASE_INFO), "item_id_list": "20,10"}
    ) as r:
        items = (await r.json())["response"]["item_list"]
    assert items[0]["stock_info_v2"]["seller_stock"][0]["stock"] == 5
    assert items[1]["has_model"] is True and "stock_info_v2" not in items[1]
    assert sb.stock("main", {"item_id": 10, "model_id": 1}) == 7
    stats = sb.stats("main")
    assert stats["last_quantity"] == {"10/1": 7, "10/2": 0, "20/0": 5}
    assert stats["requests"] == 4


async def test_signature_off_by_one_char_is_refused(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    c = sb.credentials("main")
    params = shop_params(c, UPDATE)
    good = params["sign"]
    params["sign"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    async with http.post(sb.base_url + UPDATE, params=params, json=stock_body(10, (1, 9))) as r:
        body = await r.json()
        assert (r.status, body["error"], body["message"]) == (403, "error_sign", "Wrong sign")
    assert sb.stock("main", {"item_id": 10, "model_id": 1}) == 3
    # uppercase hex is not the documented lowercase form either
    params["sign"] = good.upper()
    async with http.post(sb.base_url + UPDATE, params=params, json=stock_body(10, (1, 9))) as r:
        assert (await r.json())["error"] == "error_sign"


async def test_stale_timestamp_is_refused(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await update(http, sb, stock_body(10, (1, 9)), ts=int(time.time()) - 301)
    assert (status, body["error"], body["message"]) == (400, "error_param", "Invalid timestamp")


async def test_expired_token_then_refresh_rotates_refresh_token(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    sb.expire_token("main")
    status, body = await update(http, sb, stock_body(10, (1, 9)))
    assert (status, body["error"], body["message"]) == (403, "error_auth", "Invalid access_token.")
    c = sb.credentials("main")
    old_refresh = c["refresh_token"]
    req = {"refresh_token": old_refresh, "shop_id": c["shop_id"], "partner_id": c["partner_id"]}
    async with http.post(sb.base_url + REFRESH, params=public_params(c, REFRESH), json=req) as r:
        fresh = await r.json()
    assert fresh["error"] == "" and fresh["expire_in"] == 4 * 3600
    assert fresh["refresh_token"] != old_refresh
    async with http.post(sb.base_url + REFRESH, params=public_params(c, REFRESH), json=req) as r:
        again = await r.json()
    assert again["error"] == "error_auth" and "refresh_token" in again["message"]
    status, body = await update(http, sb, stock_body(10, (1, 9)), token=fresh["access_token"])
    assert body["error"] == "" and sb.stock("main", {"item_id": 10, "model_id": 1}) == 9
    assert sb.stats("main")["refreshes"] == 1


async def test_short_token_ttl_expires(http: aiohttp.ClientSession) -> None:
    sandbox = await start("shopee", token_ttl_s=0.2)
    try:
        c = sandbox.add_account("main")
        sandbox.add_listing("main", {"item_id": 1}, stock=1)
        await asyncio.sleep(0.25)
        async with http.post(
            sandbox.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(1, (0, 2))
        ) as r:
            assert (await r.json())["message"] == "Invalid access_token."
    finally:
        await sandbox.close()


async def test_code_exchange_is_single_use(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    c = sb.credentials("main")
    req = {"code": c["code"], "shop_id": c["shop_id"], "partner_id": c["partner_id"]}
    async with http.post(
        sb.base_url + TOKEN_GET, params=public_params(c, TOKEN_GET), json=req
    ) as r:
        first = await r.json()
    async with http.post(
        sb.base_url + TOKEN_GET, params=public_params(c, TOKEN_GET), json=req
    ) as r:
        second = await r.json()
    assert first["error"] == "" and first["access_token"]
    assert second["error"] == "error_auth"
    assert sb.stats("main")["token_requests"] == 1


async def test_rate_limit_answers_429_error_server(http: aiohttp.ClientSession) -> None:
    sandbox = await start("shopee", rate_per_s=5, burst=2)
    try:
        c = sandbox.add_account("main")
        sandbox.add_listing("main", {"item_id": 1}, stock=1)
        answers = []
        for q in range(4):
            async with http.post(
                sandbox.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(1, (0, q))
            ) as r:
                answers.append((r.status, (await r.json())["error"]))
        assert answers[:2] == [(200, ""), (200, "")]
        assert answers[2:] == [(429, "error_server")] * 2
        stats = sandbox.stats("main")
        assert stats["throttled"] == 2 and stats["max_in_1s"] == 4
        await asyncio.sleep(0.25)
        async with http.post(
            sandbox.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(1, (0, 9))
        ) as r:
            assert (await r.json())["error"] == ""
    finally:
        await sandbox.close()


async def test_unknown_item_and_model(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, body = await update(http, sb, stock_body(99, (0, 1)))
    assert body["error"] == "error_item_not_found"
    status, body = await update(http, sb, stock_body(10, (1, 6), (77, 1)))
    assert status == 200 and body["error"] == ""
    assert body["response"]["failure_list"] == [
        {"model_id": 77, "failed_reason": "model ID not exist in sku"}
    ]
    assert sb.stock("main", {"item_id": 10, "model_id": 1}) == 6


@pytest.mark.parametrize(
    ("fault", "params", "expect"),
    [
        (
            "vacation",
            {},
            (200, "error_holiday_mode_change_stock", "Cannot change stock in holiday mode."),
        ),
        ("vacation", {"prefixed": True}, (200, "product.error_holiday_mode_change_stock", None)),
        ("platform_error", {}, (500, "error_inner", None)),
        ("token_expired", {}, (403, "error_auth", "Invalid access_token.")),
        ("throttle", {}, (429, "error_server", "Too many requests, please try again later")),
    ],
)
async def test_request_faults(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    fault: str,
    params: dict[str, Any],
    expect: tuple[Any, ...],
) -> None:
    sb.inject("main", fault, count=1, **params)
    status, body = await update(http, sb, stock_body(10, (1, 9)))
    got = (status, body["error"], body["message"] if expect[2] is not None else None)
    assert got == expect
    assert sb.stock("main", {"item_id": 10, "model_id": 1}) == 3
    status, body = await update(http, sb, stock_body(10, (1, 9)))  # count=1: gone
    assert body["error"] == "" and sb.stock("main", {"item_id": 10, "model_id": 1}) == 9


@pytest.mark.parametrize("code", [500, 501, 502, 503])
async def test_http_errors(sb: Sandbox, http: aiohttp.ClientSession, code: int) -> None:
    sb.inject("main", "http_error", status=code)
    for _ in range(2):
        c = sb.credentials("main")
        async with http.post(
            sb.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(10, (1, 9))
        ) as r:
            assert r.status == code and r.content_type == "text/html"
    assert sb.clear("main", "http_error") == 1
    status, _ = await update(http, sb, stock_body(10, (1, 9)))
    assert status == 200


async def test_timeout_and_slow(sb: Sandbox) -> None:
    sb.inject("main", "timeout", count=1, seconds=1)
    c = sb.credentials("main")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as h:
        with pytest.raises(asyncio.TimeoutError):
            await h.post(
                sb.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(10, (1, 9))
            )
    sb.inject("main", "slow", count=1, delay_s=0.3)
    async with aiohttp.ClientSession() as h:
        t0 = time.monotonic()
        async with h.post(
            sb.base_url + UPDATE, params=shop_params(c, UPDATE), json=stock_body(10, (1, 9))
        ) as r:
            assert (await r.json())["error"] == ""
        assert time.monotonic() - t0 >= 0.3


async def test_refresh_failing(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "token_revoked")
    c = sb.credentials("main")
    _, body = await update(http, sb, stock_body(10, (1, 9)))
    assert body["error"] == "error_auth"
    req = {
        "refresh_token": c["refresh_token"],
        "shop_id": c["shop_id"],
        "partner_id": c["partner_id"],
    }
    async with http.post(sb.base_url + REFRESH, params=public_params(c, REFRESH), json=req) as r:
        assert (await r.json())["message"] == "Invalid refresh_token."


@pytest.mark.parametrize(
    ("shape", "error", "message"),
    [
        ("error_param", "error_param", "Can not update item with stock less than reserved stock"),
        ("error_auth", "error_auth", "Stock should be larger than reserved stock."),
    ],
)
async def test_reserved_stock_whole_call(
    sb: Sandbox, http: aiohttp.ClientSession, shape: str, error: str, message: str
) -> None:
    sb.inject("main", "reserved", listing={"item_id": 10, "model_id": 1}, quantity=4, shape=shape)
    _, body = await update(http, sb, stock_body(10, (1, 3), (2, 1)))
    assert (body["error"], body["message"]) == (error, message)
    _, body = await update(http, sb, stock_body(10, (1, 4)))
    assert body["error"] == ""


async def test_reserved_stock_failure_list_and_readback(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    listing = {"item_id": 10, "model_id": 1}
    sb.inject("main", "reserved", listing=listing, quantity=5)
    status, body = await update(http, sb, stock_body(10, (1, 2), (2, 6)))
    assert status == 200 and body["error"] == ""
    assert body["response"]["failure_list"] == [
        {"model_id": 1, "failed_reason": "Total stock must be more than reserved stock."}
    ]
    assert [s["model_id"] for s in body["response"]["success_list"]] == [2]
    c = sb.credentials("main")
    async with http.get(
        sb.base_url + MODELS, params={**shop_params(c, MODELS), "item_id": "10"}
    ) as r:
        model = (await r.json())["response"]["model"][0]
    assert model["stock_info_v2"]["summary_info"]["total_reserved_stock"] == 5
    assert sb.clear("main", "reserved", listing=listing) == 1
    sb.inject("main", "reserved", listing=listing, quantity=5, shape="promotion")
    _, body = await update(http, sb, stock_body(10, (1, 50)))
    assert body["error"] == "error_promotion_cantnot_update_stock"


async def test_unpaid_minimum_and_failure_list(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "unpaid_min", listing={"item_id": 10, "model_id": 2}, quantity=3)
    sb.inject(
        "main",
        "failure_list",
        listing={"item_id": 10, "model_id": 1},
        reason="Update stock failed",
        error="error_busi_update_stock_failed",
    )
    status, body = await update(http, sb, stock_body(10, (1, 9), (2, 1)))
    assert status == 200 and body["error"] == "error_busi_update_stock_failed"
    assert body["response"]["failure_list"] == [
        {"model_id": 1, "failed_reason": "Update stock failed"},
        {"model_id": 2, "failed_reason": "Stock can not be less than 3 because of unpaid orders."},
    ]
    _, body = await update(http, sb, stock_body(10, (2, 3)))
    assert body["error"] == "" and sb.stock("main", {"item_id": 10, "model_id": 2}) == 3


async def test_unknown_listing_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "unknown_listing", listing={"item_id": 10, "model_id": 2})
    _, body = await update(http, sb, stock_body(10, (1, 1), (2, 1)))
    assert body["response"]["failure_list"] == [
        {"model_id": 2, "failed_reason": "model ID not exist in sku"}
    ]
    sb.inject("main", "unknown_listing", listing={"item_id": 20})
    _, body = await update(http, sb, stock_body(20, (0, 1)))
    assert body["error"] == "error_item_not_found"


async def test_listing_fault_spares_other_items(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "platform_error", listing={"item_id": 20})
    _, body = await update(http, sb, stock_body(10, (1, 5)))
    assert body["error"] == ""
    status, body = await update(http, sb, stock_body(20, (0, 5)))
    assert (status, body["error"]) == (500, "error_inner")

"""Lazada sandbox over real HTTP; signatures computed here from the documented recipe."""

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

UPDATE = "/product/stock/sellable/update"
ITEM_GET = "/product/item/get"
REFRESH = "/auth/token/refresh"
A = {"item_id": 1, "sku_id": 11, "seller_sku": "RED-M"}
B = {"item_id": 1, "sku_id": 12, "seller_sku": "RED-L"}
C = {"item_id": 2, "sku_id": 21, "seller_sku": "BLUE-M"}


def signed(
    c: dict[str, Any], path: str, extra: dict[str, str], *, token: bool = True
) -> dict[str, str]:
    params = {
        "app_key": c["app_key"],
        "timestamp": str(int(time.time() * 1000)),
        "sign_method": "sha256",
        **extra,
    }
    if token:
        params["access_token"] = c["access_token"]
    base = path + "".join(f"{k}{params[k]}" for k in sorted(params))
    params["sign"] = (
        hmac.new(c["app_secret"].encode(), base.encode(), hashlib.sha256).hexdigest().upper()
    )
    return params


def payload(*skus: tuple[dict[str, Any], int]) -> str:
    rows = "".join(
        f"<Sku><ItemId>{s['item_id']}</ItemId><SkuId>{s['sku_id']}</SkuId>"
        f"<SellerSku>{s['seller_sku']}</SellerSku>"
        f"<SellableQuantity>{q}</SellableQuantity></Sku>"
        for s, q in skus
    )
    return f"<Request><Product><Skus>{rows}</Skus></Product></Request>"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = await start("lazada")
    sandbox.add_account("main")
    for listing in (A, B, C):
        sandbox.add_listing("main", listing, stock=5)
    yield sandbox
    await sandbox.close()


async def update(
    http: aiohttp.ClientSession, sb: Sandbox, body: str, tamper: bool = False
) -> tuple[int, Any]:
    params = signed(sb.credentials("main"), UPDATE, {"payload": body})
    if tamper:
        s = params["sign"]
        params["sign"] = s[:-1] + ("A" if s[-1] != "A" else "B")
    form = {"payload": params.pop("payload")}
    async with http.post(sb.base_url + UPDATE, params=params, data=form) as r:
        if r.content_type != "application/json":
            return r.status, await r.text()
        return r.status, await r.json()


async def read(http: aiohttp.ClientSession, sb: Sandbox, **query: str) -> Any:
    params = signed(sb.credentials("main"), ITEM_GET, query)
    async with http.get(sb.base_url + ITEM_GET, params=params) as r:
        return await r.json()


async def test_signed_update_applies_and_reads_back(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await update(http, sb, payload((A, 7), (C, 0)))
    assert status == 200 and body["code"] == "0" and body["request_id"]
    got = await read(http, sb, item_id="1")
    assert got["code"] == "0"
    by_sku = {s["SellerSku"]: s for s in got["data"]["skus"]}
    assert by_sku["RED-M"]["sellableQuantity"] == 7 and by_sku["RED-L"]["Available"] == 5
    assert by_sku["RED-M"]["multiWarehouseInventories"][0]["sellableQuantity"] == 7
    got = await read(http, sb, seller_sku="BLUE-M")
    assert got["data"]["skus"][0]["quantity"] == 0
    assert sb.stock("main", A) == 7
    assert sb.stats("main")["last_quantity"] == {"11": 7, "21": 0}


async def test_all_params_in_form_body(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    params = signed(sb.credentials("main"), UPDATE, {"payload": payload((B, 2))})
    async with http.post(sb.base_url + UPDATE, data=params) as r:
        assert (await r.json())["code"] == "0"
    assert sb.stock("main", B) == 2


async def test_signature_off_by_one_char_is_refused(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await update(http, sb, payload((A, 9)), tamper=True)
    assert status == 200
    assert (body["type"], body["code"]) == ("ISV", "IncompleteSignature")
    assert sb.stock("main", A) == 5
    # lowercase hex is not the documented form
    params = signed(sb.credentials("main"), UPDATE, {"payload": payload((A, 9))})
    params["sign"] = params["sign"].lower()
    async with http.post(sb.base_url + UPDATE, data=params) as r:
        assert (await r.json())["code"] == "IncompleteSignature"


async def test_timestamp_window(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    c = sb.credentials("main")
    params = {
        "app_key": c["app_key"],
        "access_token": c["access_token"],
        "sign_method": "sha256",
        "timestamp": str(int((time.time() - 7300) * 1000)),
        "payload": payload((A, 1)),
    }
    base = UPDATE + "".join(f"{k}{params[k]}" for k in sorted(params))
    params["sign"] = (
        hmac.new(c["app_secret"].encode(), base.encode(), hashlib.sha256).hexdigest().upper()
    )
    async with http.post(sb.base_url + UPDATE, data=params) as r:
        assert (await r.json())["code"] == "InvalidTimestamp"


async def test_expired_token_then_refresh(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.expire_token("main")
    _, body = await update(http, sb, payload((A, 9)))
    assert (body["type"], body["code"]) == ("ISV", "IllegalAccessToken")
    c = sb.credentials("main")
    params = signed(c, REFRESH, {"refresh_token": c["refresh_token"]}, token=False)
    async with http.post(sb.base_url + REFRESH, data=params) as r:
        fresh = await r.json()
    assert fresh["code"] == "0" and fresh["access_token"] != c["access_token"]
    assert fresh["refresh_token"] == c["refresh_token"] and fresh["expires_in"] == 30 * 86400
    assert fresh["country_user_info"][0]["seller_id"] == c["seller_id"]
    _, body = await update(http, sb, payload((A, 9)))
    assert body["code"] == "0" and sb.stats("main")["refreshes"] == 1


async def test_refresh_failing(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "refresh_fail", count=1)
    c = sb.credentials("main")
    params = signed(c, REFRESH, {"refresh_token": c["refresh_token"]}, token=False)
    async with http.post(sb.base_url + REFRESH, data=params) as r:
        assert (await r.json())["code"] == "IllegalRefreshToken"


async def test_rate_limit_answers_api_call_limit(http: aiohttp.ClientSession) -> None:
    sandbox = await start("lazada", rate_per_s=4, burst=1)
    try:
        sandbox.add_account("main")
        sandbox.add_listing("main", A, stock=1)
        codes = []
        for q in range(3):
            _, body = await update(http, sandbox, payload((A, q)))
            codes.append((body["code"], body.get("message", "")))
        assert codes[0] == ("0", "")
        assert [c for c, _ in codes[1:]] == ["ApiCallLimit", "ApiCallLimit"]
        assert "this ban will last 1 seconds" in codes[1][1]
        assert sandbox.stats("main")["throttled"] == 2
        await asyncio.sleep(0.3)
        _, body = await update(http, sandbox, payload((A, 8)))
        assert body["code"] == "0" and sandbox.stock("main", A) == 8
    finally:
        await sandbox.close()


async def test_batch_limit_and_format(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, body = await update(http, sb, payload(*[(A, 1)] * 51))
    assert body["code"] == "E204"
    _, body = await update(http, sb, "<Request><Product>")
    assert body["code"] == "E005"


async def test_invalid_seller_sku_detail(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    bad = {"item_id": 1, "sku_id": 999, "seller_sku": "RED  M"}
    _, body = await update(http, sb, payload((A, 3), (bad, 4)))
    assert body["code"] != "0" and body["type"] == "ISV"
    assert body["detail"] == [
        {"field": "SellerSku", "seller_sku": "RED  M", "message": "SELLER_SKU_INVALID"}
    ]
    assert sb.stock("main", A) == 3
    sb.inject("main", "unknown_listing", listing=B)
    _, body = await update(http, sb, payload((B, 3)))
    assert body["detail"][0]["message"] == "SELLER_SKU_INVALID"


async def test_campaign_lock_and_unpaid_minimum(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("main", "reserved", listing=A, quantity=4)
    sb.inject("main", "unpaid_min", listing=B, quantity=2)
    _, body = await update(http, sb, payload((A, 3), (B, 1), (C, 6)))
    assert body["code"] == "501"
    messages = {d["seller_sku"]: d["message"] for d in body["detail"]}
    assert "4" in messages["RED-M"] and "campaign" in messages["RED-M"]
    assert "2" in messages["RED-L"] and "unpaid" in messages["RED-L"]
    assert sb.stock("main", C) == 6 and sb.stock("main", A) == 5
    got = await read(http, sb, item_id="1")
    by_sku = {s["SellerSku"]: s for s in got["data"]["skus"]}
    assert by_sku["RED-M"]["channelInventories"][0]["sellableQuantity"] == 4
    assert by_sku["RED-L"]["multiWarehouseInventories"][0]["withholdQuantity"] == 2
    _, body = await update(http, sb, payload((A, 4), (B, 2)))
    assert body["code"] == "0"


@pytest.mark.parametrize(
    ("fault", "params", "expect"),
    [
        ("platform_error", {}, ("ISP", "1000")),
        ("vacation", {}, ("ISV", "SELLER_HOLIDAY_MODE")),
        ("token_expired", {}, ("ISV", "IllegalAccessToken")),
        ("throttle", {}, ("ISV", "ApiCallLimit")),
        ("throttle", {"code": "E901"}, ("ISV", "E901")),
    ],
)
async def test_request_faults(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    fault: str,
    params: dict[str, Any],
    expect: tuple[str, str],
) -> None:
    sb.inject("main", fault, count=1, **params)
    status, body = await update(http, sb, payload((A, 9)))
    assert status == 200 and (body["type"], body["code"]) == expect
    assert sb.stock("main", A) == 5
    _, body = await update(http, sb, payload((A, 9)))
    assert body["code"] == "0"


@pytest.mark.parametrize("code", [500, 501, 502, 503])
async def test_http_errors(sb: Sandbox, http: aiohttp.ClientSession, code: int) -> None:
    sb.inject("main", "http_error", listing=A, count=1, status=code)
    status, _ = await update(http, sb, payload((C, 1)))  # other listing: unaffected
    assert status == 200
    status, body = await update(http, sb, payload((A, 1)))
    assert status == code and "<html>" in body


async def test_timeout(sb: Sandbox) -> None:
    sb.inject("main", "timeout", count=1, seconds=1)
    params = signed(sb.credentials("main"), UPDATE, {"payload": payload((A, 1))})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as h:
        with pytest.raises(asyncio.TimeoutError):
            await h.post(sb.base_url + UPDATE, data=params)

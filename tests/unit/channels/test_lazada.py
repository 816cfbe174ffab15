"""Lazada client: XML payload, batching, answer parsing; then the same client against the
Lazada sandbox over real HTTP (pushes, read-back, faults, token refresh)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from syncd.channels.base import BATCH_REJECTED, INVALID_LISTING, listing_ref
from syncd.channels.lazada import (
    LazadaChannel,
    build_payload,
    parse_sellable_update,
    sellable_of,
)
from syncd.channels.tokens import MemoryTokenStore
from syncd.testing.sandbox import Sandbox
from tests.fixtures.channels import SandboxFactory, answer, upd

SETTINGS = {"app_key": "100", "app_secret": "s", "access_token": "a", "refresh_token": "r"}


def channel(**extra: object) -> LazadaChannel:
    return LazadaChannel("lazada:sg", {**SETTINGS, **extra}, MemoryTokenStore())


def test_payload_single_warehouse_shape() -> None:
    batch = [
        upd({"item_id": 234234234, "sku_id": 234, "seller_sku": "TS-RED-M"}, 20),
        upd({"seller_sku": "A&B <x>"}, 0),
    ]
    xml = build_payload(batch)
    assert xml.startswith(
        "<Request><Product><Skus><Sku><ItemId>234234234</ItemId><SkuId>234</SkuId>"
    )
    root = ET.fromstring(xml)
    assert root.tag == "Request"
    skus = root.findall("./Product/Skus/Sku")
    assert len(skus) == 2
    first, second = skus
    assert [c.tag for c in first] == ["ItemId", "SkuId", "SellerSku", "SellableQuantity"]
    assert first.findtext("SellableQuantity") == "20"
    assert [c.tag for c in second] == ["SellerSku", "SellableQuantity"]
    assert second.findtext("SellerSku") == "A&B <x>"  # escaped on the wire, intact when parsed


def test_payload_multi_warehouse_shape() -> None:
    xml = build_payload([upd({"item_id": 1, "sku_id": 2, "warehouse_code": "wh1"}, 30)])
    sku = ET.fromstring(xml).find("./Product/Skus/Sku")
    assert sku is not None and sku.find("SellableQuantity") is None
    inv = sku.find("./MultiWarehouseInventories/MultiWarehouseInventory")
    assert inv is not None
    assert inv.findtext("WarehouseCode") == "wh1" and inv.findtext("SellableQuantity") == "30"


def test_batches_of_50_spanning_items() -> None:
    updates = [upd({"item_id": i // 3, "sku_id": i}, i) for i in range(120)]
    updates.append(upd({"item_id": 5}, 1))  # neither sku_id nor seller_sku
    batches = channel().batches(updates)
    assert [len(b) for b in batches] == [50, 50, 20, 1]
    assert len({u.listing["item_id"] for u in batches[0]}) > 1
    assert [len(b) for b in channel(batch_size=20).batches(updates[:45])] == [20, 20, 5]


BATCH = [
    upd({"item_id": 1, "sku_id": 11, "seller_sku": "S-11"}, 5),
    upd({"item_id": 1, "sku_id": 12, "seller_sku": "S-12"}, 6),
]


def test_parse_success() -> None:
    out = parse_sellable_update(BATCH, answer(200, {"code": "0", "data": {}, "request_id": "x"}))
    assert all(o.ok for o in out)
    assert out[0].raw is not None and out[0].raw["request_id"] == "x"


def test_parse_error_with_detail_names_one_sku() -> None:
    body = {
        "type": "ISV",
        "code": "E501",
        "message": "Update product failed",
        "request_id": "y",
        "detail": [{"field": "SellerSku", "seller_sku": "S-12", "message": "SELLER_SKU_INVALID"}],
    }
    first, second = parse_sellable_update(BATCH, answer(200, body))
    assert not second.ok and second.code == "E501" and second.message == "SELLER_SKU_INVALID"
    assert not first.ok and first.code == BATCH_REJECTED
    assert first.message is not None and "E501" in first.message


def test_parse_error_without_detail_applies_to_all() -> None:
    body = {"type": "ISP", "code": "1000", "message": "Internal Application Error"}
    out = parse_sellable_update(BATCH, answer(200, body))
    assert [(o.ok, o.code, o.message) for o in out] == [
        (False, "1000", "Internal Application Error")
    ] * 2


def test_parse_throttle_reads_ban_seconds() -> None:
    body = {
        "type": "ISP",
        "code": "ApiCallLimit",
        "message": "The request has exceeded the limit, this ban will last 3 seconds",
    }
    out = parse_sellable_update(BATCH, answer(200, body))
    assert out[0].code == "ApiCallLimit" and out[0].retry_after_s == 3.0
    e901 = {"code": "E901", "message": "The request is too frequent"}
    assert parse_sellable_update(BATCH, answer(200, e901))[0].retry_after_s is None


def test_parse_gateway_error_page() -> None:
    out = parse_sellable_update(BATCH, answer(503, "<html>503 Service Unavailable</html>"))
    assert out[0].http_status == 503 and out[0].code is None and not out[0].ok


def test_token_error_detection() -> None:
    illegal = {
        "type": "ISV",
        "code": "IllegalAccessToken",
        "message": "The specified access token is invalid or expired",
    }
    assert LazadaChannel._is_token_error(answer(200, illegal))
    assert not LazadaChannel._is_token_error(answer(200, {"code": "E501", "message": "x"}))


def test_sellable_read_back_fields() -> None:
    sku = {
        "SellerSku": "S",
        "SkuId": 1,
        "quantity": 50,
        "Available": 40,
        "sellableQuantity": 38,
        "multiWarehouseInventories": [
            {"warehouseCode": "dropshipping", "sellableQuantity": 30, "totalQuantity": 35},
            {"warehouseCode": "wh2", "sellableQuantity": 8, "totalQuantity": 15},
        ],
    }
    assert sellable_of(sku, None) == 38
    assert sellable_of(sku, "wh2") == 8
    assert sellable_of({"Available": 4}, None) == 4
    assert sellable_of({"quantity": 4}, None) is None  # total, not sellable


async def test_invalid_listing_is_not_sent() -> None:
    ch = channel()
    out = await ch.push([upd({"item_id": 3}, 1)])
    assert out[0].code == INVALID_LISTING
    await ch.close()


# -- against the Lazada sandbox (real HTTP on 127.0.0.1) -------------------------

A = {"item_id": 5001, "sku_id": 61, "seller_sku": "TS-RED-M"}
B = {"item_id": 5001, "sku_id": 62, "seller_sku": "TS-RED-L"}
C = {"item_id": 5002, "sku_id": 71, "seller_sku": "MUG-1"}


async def lazada_setup(
    sandbox_factory: SandboxFactory, **settings: object
) -> tuple[Sandbox, LazadaChannel, MemoryTokenStore]:
    sb = await sandbox_factory("lazada")
    creds = sb.add_account("sg")
    for lst in (A, B, C):
        sb.add_listing("sg", lst, stock=1)
    store = MemoryTokenStore()
    full = {**creds, "auth_url": creds["base_url"], **settings}
    return sb, sandbox_factory.closing(LazadaChannel("lazada:sg", full, store)), store


async def test_sandbox_push_and_read_back(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await lazada_setup(sandbox_factory)
    by_sku_only = {"seller_sku": "MUG-1"}
    out = await ch.push([upd(A, 10), upd(B, 0), upd(by_sku_only, 4)])
    assert all(o.ok for o in out)
    assert (sb.stock("sg", A), sb.stock("sg", B), sb.stock("sg", C)) == (10, 0, 4)
    got = await ch.read_stock([A, B, by_sku_only, {"item_id": 1, "sku_id": 1}])
    assert got == {listing_ref(A): 10, listing_ref(B): 0, listing_ref(by_sku_only): 4}
    stats = sb.stats("sg")["by_path"]
    assert stats["/rest/product/stock/sellable/update"] == 1  # one call, two items
    # One call per item id (A and B share one) or per lone seller_sku.
    assert stats["/rest/product/item/get"] == 3


async def test_sandbox_detail_and_throttle_answers(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await lazada_setup(sandbox_factory)
    sb.inject("sg", "unknown_listing", listing=B, count=1)
    a, b = await ch.push([upd(A, 3), upd(B, 3)])
    assert (b.code, b.message) == ("501", "SELLER_SKU_INVALID")
    assert a.code == BATCH_REJECTED  # not known to be applied: re-sending is harmless

    sb.inject("sg", "reserved", listing=A, quantity=5)
    out = await ch.push([upd(A, 2)])
    assert out[0].message == "SellableQuantity cannot be less than the campaign locked quantity 5"

    sb.inject("sg", "throttle", count=1, retry_after_s=3)
    out = await ch.push([upd(C, 1)])
    assert out[0].code == "ApiCallLimit" and out[0].retry_after_s == 3.0
    assert out[0].http_status == 200


async def test_sandbox_expired_token_refresh_and_resend(sandbox_factory: SandboxFactory) -> None:
    sb, ch, store = await lazada_setup(sandbox_factory)
    sb.expire_token("sg")
    out = await ch.push([upd(A, 8)])
    assert out[0].ok and sb.stock("sg", A) == 8
    stats = sb.stats("sg")
    assert stats["refreshes"] == 1
    assert stats["by_path"]["/rest/product/stock/sellable/update"] == 2
    token = store.get("lazada:sg")
    assert token is not None
    assert token["access_token"] == sb.credentials("sg")["access_token"]
    assert "refresh_expires_at" in token
    # The new token is used from now on, without another refresh.
    assert (await ch.push([upd(A, 9)]))[0].ok
    assert sb.stats("sg")["refreshes"] == 1


async def test_sandbox_refresh_refused(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await lazada_setup(sandbox_factory)
    sb.inject("sg", "token_revoked")
    out = await ch.push([upd(A, 1)])
    assert not out[0].ok and out[0].code == "IllegalRefreshToken"
    assert out[0].raw is not None and out[0].raw["stage"] == "token"

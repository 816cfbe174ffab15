"""Signing: each client's signature equals one computed here from the platform's recipe.

The expected values are computed in the tests with ``hmac``/``hashlib``
directly (not through syncd.channels.signing), plus LAZOP's published worked
example (developer guide "HTTP request sample": app secret ``helloworld``).
"""

from __future__ import annotations

import hashlib
import hmac

from syncd.channels.lazada import LazadaChannel
from syncd.channels.shopee import ShopeeChannel
from syncd.channels.signing import (
    lazada_base_string,
    lazada_sign,
    shopee_base_string,
    shopee_sign,
)
from syncd.channels.tokens import MemoryTokenStore

PARTNER_KEY = "shpk4f6b2c1a7e9d3b5a8c0f2e4d6b8a1c3e5f7a9b"


def _shopee_expected(key: str, base: str) -> str:
    return hmac.new(key.encode(), base.encode(), hashlib.sha256).hexdigest()


def _lazada_expected(secret: str, base: str) -> str:
    return hmac.new(secret.encode(), base.encode(), hashlib.sha256).hexdigest().upper()


# -- Shopee -------------------------------------------------------------------


def test_shopee_shop_api_signature() -> None:
    path = "/api/v2/product/update_stock"
    expected = _shopee_expected(
        PARTNER_KEY, "2001887" + path + "1700000000" + "4f4d4c4e6944554d7945727a" + "57360480"
    )
    got = shopee_sign(PARTNER_KEY, 2001887, path, 1700000000, "4f4d4c4e6944554d7945727a", 57360480)
    assert got == expected
    assert got == got.lower() and len(got) == 64


def test_shopee_public_api_signature_has_no_token_or_shop() -> None:
    path = "/api/v2/auth/access_token/get"
    expected = _shopee_expected(PARTNER_KEY, f"2001887{path}1700000000")
    assert shopee_sign(PARTNER_KEY, 2001887, path, 1700000000) == expected
    assert shopee_base_string(2001887, path, 1700000000) == f"2001887{path}1700000000"


def test_shopee_channel_query_params_are_signed_with_its_clock() -> None:
    ch = ShopeeChannel(
        "shopee:main",
        {"partner_id": 2001887, "partner_key": PARTNER_KEY, "shop_id": 57360480},
        MemoryTokenStore(),
        clock=lambda: 1700000123.9,
    )
    params = ch._shop_params("/api/v2/product/get_model_list", "tok")
    assert params["timestamp"] == "1700000123"  # Unix seconds
    assert params["partner_id"] == "2001887" and params["shop_id"] == "57360480"
    assert params["access_token"] == "tok"
    base = "2001887/api/v2/product/get_model_list1700000123tok57360480"
    assert params["sign"] == _shopee_expected(PARTNER_KEY, base)
    public = ch._public_params("/api/v2/auth/access_token/get")
    assert set(public) == {"partner_id", "timestamp", "sign"}
    assert public["sign"] == _shopee_expected(
        PARTNER_KEY, "2001887/api/v2/auth/access_token/get1700000123"
    )


# -- Lazada -------------------------------------------------------------------


def test_lazada_published_example() -> None:
    params = {
        "app_key": "123456",
        "access_token": "test",
        "timestamp": "1517820392000",
        "sign_method": "sha256",
        "order_id": "1234",
    }
    base = lazada_base_string("/order/get", params)
    assert base == (
        "/order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000"
    )
    # Published value from the LAZOP developer guide.
    published = "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
    assert lazada_sign("helloworld", "/order/get", params) == published
    assert _lazada_expected("helloworld", base) == published


def test_lazada_sort_order_and_sign_excluded() -> None:
    params = {"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4", "sign": "XYZ"}
    assert lazada_base_string("/test/api", params) == "/test/apibar2foo1foo_bar3foobar4"
    assert lazada_sign("s3cr3t", "/test/api", params) == _lazada_expected(
        "s3cr3t", "/test/apibar2foo1foo_bar3foobar4"
    )


def test_lazada_payload_is_signed_and_body_appended() -> None:
    payload = "<Request><Product><Skus><Sku><SellerSku>A&amp;B</SellerSku></Sku></Skus></Product>"
    params = {"app_key": "100", "payload": payload, "timestamp": "1"}
    base = f"/product/stock/sellable/updateapp_key100payload{payload}timestamp1"
    assert lazada_sign("k", "/product/stock/sellable/update", params) == _lazada_expected("k", base)
    assert lazada_sign("k", "/x", {"a": "1"}, body="{}") == _lazada_expected("k", "/xa1{}")


def test_lazada_channel_signs_system_and_api_parameters() -> None:
    ch = LazadaChannel(
        "lazada:sg",
        {"app_key": "112233", "app_secret": "sekret", "base_url": "http://127.0.0.1:1/rest"},
        MemoryTokenStore(),
        clock=lambda: 1700000000.123,
    )
    params = ch.signed("/product/item/get", {"item_id": "42"}, "acc")
    assert params["timestamp"] == "1700000000123"  # epoch milliseconds
    assert params["sign_method"] == "sha256"
    base = (
        "/product/item/get"
        + "access_tokenacc"
        + "app_key112233"
        + "item_id42"
        + "sign_methodsha256"
        + "timestamp1700000000123"
    )
    assert params["sign"] == _lazada_expected("sekret", base)
    # The refresh call carries no access_token.
    refresh = ch.signed("/auth/token/refresh", {"refresh_token": "r"}, None)
    assert "access_token" not in refresh

"""Shopee client: batching, request body, answer parsing; then the same client against the
Shopee sandbox over real HTTP (pushes, read-back, faults, token rotation)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from syncd.channels.base import BAD_RESPONSE, INVALID_LISTING, NO_RESULT, TokenStore, listing_ref
from syncd.channels.shopee import (
    ShopeeChannel,
    build_update_stock,
    is_token_error,
    parse_update_stock,
    seller_stock_of,
)
from syncd.channels.tokens import JsonFileTokenStore, MemoryTokenStore
from syncd.core.errortable import bare_code
from syncd.errors import ChannelAuthError, ChannelTimeout
from syncd.testing.sandbox import Sandbox
from tests.fixtures.channels import SandboxFactory, answer, upd

SETTINGS = {"partner_id": 1, "partner_key": "k", "shop_id": 2, "refresh_token": "r"}


def channel(**extra: object) -> ShopeeChannel:
    return ShopeeChannel("shopee:main", {**SETTINGS, **extra}, MemoryTokenStore())


def test_batches_one_item_per_call_at_most_50_models() -> None:
    updates = [upd({"item_id": 1, "model_id": m}, m) for m in range(1, 121)]
    updates += [upd({"item_id": 2, "model_id": 5}, 1), upd({"item_id": 3}, 7)]
    batches = channel().batches(updates)
    assert [len(b) for b in batches] == [50, 50, 20, 1, 1]
    for b in batches:
        assert len({u.listing["item_id"] for u in b}) == 1


def test_batches_respect_configured_size_and_isolate_bad_listings() -> None:
    updates = [upd({"item_id": 1, "model_id": m}, m) for m in range(1, 8)]
    updates.append(upd({"model_id": 3}, 1))
    updates.append(upd({"item_id": 1, "model_id": 1}, 99))  # newer quantity for model 1
    batches = channel(batch_size=3).batches(updates)
    assert [len(b) for b in batches] == [3, 3, 1, 1]
    assert batches[-1][0].listing == {"model_id": 3}
    flat = [u for b in batches[:-1] for u in b]
    assert [u.quantity for u in flat if u.listing["model_id"] == 1] == [99]


def test_update_stock_body_shape() -> None:
    batch = [
        upd({"item_id": 800123, "model_id": 10}, 5),
        upd({"item_id": 800123, "model_id": 11}, 0),
    ]
    assert build_update_stock(batch) == {
        "item_id": 800123,
        "stock_list": [
            {"model_id": 10, "seller_stock": [{"stock": 5}]},
            {"model_id": 11, "seller_stock": [{"stock": 0}]},
        ],
    }
    no_model = build_update_stock([upd({"item_id": 7}, 3)])
    assert no_model["stock_list"] == [{"model_id": 0, "seller_stock": [{"stock": 3}]}]
    located = build_update_stock([upd({"item_id": 7, "model_id": 1, "location_id": "SGZ"}, 4)])
    assert located["stock_list"][0]["seller_stock"] == [{"location_id": "SGZ", "stock": 4}]


BATCH = [upd({"item_id": 1, "model_id": 10}, 5), upd({"item_id": 1, "model_id": 11}, 6)]


def test_parse_all_success() -> None:
    body = {
        "request_id": "r1",
        "error": "",
        "message": "",
        "response": {
            "success_list": [
                {"model_id": 10, "location_id": "", "stock": 5},
                {"model_id": 11, "location_id": "", "stock": 6},
            ],
            "failure_list": [],
        },
    }
    out = parse_update_stock(BATCH, answer(200, body))
    assert [o.ok for o in out] == [True, True]
    assert out[0].raw is not None and out[0].raw["request_id"] == "r1"
    assert out[0].code is None and out[0].http_status == 200


def test_parse_failure_list_with_empty_error_on_http_200() -> None:
    body = {
        "request_id": "r2",
        "error": "",
        "message": "",
        "response": {
            "success_list": [{"model_id": 10, "stock": 5}],
            "failure_list": [{"model_id": 11, "failed_reason": "model ID not exist in sku"}],
        },
    }
    ok, bad = parse_update_stock(BATCH, answer(200, body))
    assert ok.ok
    assert not bad.ok and bad.code is None and bad.message == "model ID not exist in sku"
    assert bad.http_status == 200


def test_parse_business_error_together_with_failure_list() -> None:
    body = {
        "error": "error_busi_update_stock_failed",
        "message": "Update stock failed, please check failure_list for detailed reason",
        "response": {
            "success_list": [],
            "failure_list": [
                {"model_id": 10, "failed_reason": "Total stock must be more than reserved stock."},
                {"model_id": 11, "failed_reason": "Stock should be within 0-10000000"},
            ],
        },
    }
    out = parse_update_stock(BATCH, answer(200, body))
    assert [o.code for o in out] == ["error_busi_update_stock_failed"] * 2
    assert out[0].message == "Total stock must be more than reserved stock."
    assert out[1].message == "Stock should be within 0-10000000"


def test_parse_top_level_error_keeps_module_prefix() -> None:
    body = {
        "error": "product.error_holiday_mode_change_stock",
        "message": "Cannot change stock in holiday mode.",
        "request_id": "r3",
    }
    out = parse_update_stock(BATCH, answer(200, body))
    assert all(not o.ok for o in out)
    assert {o.code for o in out} == {"product.error_holiday_mode_change_stock"}
    assert {o.message for o in out} == {"Cannot change stock in holiday mode."}


def test_parse_throttle_answer_with_retry_after() -> None:
    body = {"error": "error_server", "message": "Too many requests, please try again later"}
    out = parse_update_stock(BATCH, answer(429, body, {"Retry-After": "2"}))
    assert [o.http_status for o in out] == [429, 429]
    assert out[0].code == "error_server" and out[0].retry_after_s == 2.0


def test_parse_gateway_html_and_empty_answer() -> None:
    out = parse_update_stock(BATCH, answer(502, "<html>Bad Gateway</html>"))
    assert out[0].http_status == 502 and out[0].code is None
    assert out[0].message is not None and "Bad Gateway" in out[0].message
    weird = parse_update_stock(BATCH, answer(200, "not json"))
    assert weird[0].code == BAD_RESPONSE


def test_parse_model_missing_from_both_lists() -> None:
    body = {"error": "", "response": {"success_list": [{"model_id": 10}], "failure_list": []}}
    ok, unknown = parse_update_stock(BATCH, answer(200, body))
    assert ok.ok and not unknown.ok and unknown.code == NO_RESULT


def test_token_error_detection() -> None:
    assert is_token_error(200, {"error": "error_auth", "message": "Invalid access_token."})
    assert is_token_error(403, {"error": "invalid_acceess_token", "message": "x"})
    assert is_token_error(
        200, {"error": "error_param", "message": "There is no access_token in query"}
    )
    assert not is_token_error(
        200, {"error": "error_auth", "message": "Total stock must be more than reserved stock."}
    )
    assert not is_token_error(
        200, {"error": "error_auth", "message": "Invalid partner_id or shopid."}
    )
    assert not is_token_error(200, {"error": "", "message": ""})
    assert bare_code("shopee", "product.error_busi") == "error_busi"


def test_seller_stock_read_back() -> None:
    info = {
        "summary_info": {"total_reserved_stock": 2, "total_available_stock": 9},
        "seller_stock": [
            {"location_id": "A", "stock": 4, "if_saleable": True},
            {"location_id": "B", "stock": 5, "if_saleable": True},
        ],
        "shopee_stock": [{"location_id": "F", "stock": 100}],
    }
    assert seller_stock_of(info, None) == 9
    assert seller_stock_of(info, "B") == 5
    assert seller_stock_of(info, "Z") is None
    assert seller_stock_of(None, None) is None


async def test_invalid_listing_is_not_sent() -> None:
    ch = channel()
    bad = upd({"item_id": "abc"}, 3)
    out = await ch.push([bad])
    assert len(out) == 1 and out[0].code == INVALID_LISTING and out[0].http_status is None
    await ch.close()


# -- against the Shopee sandbox (real HTTP on 127.0.0.1) -------------------------

M10 = {"item_id": 800001, "model_id": 10}
M11 = {"item_id": 800001, "model_id": 11}
PLAIN = {"item_id": 800002}


async def shopee_setup(
    sandbox_factory: SandboxFactory, store: TokenStore | None = None, **settings: object
) -> tuple[Sandbox, ShopeeChannel, TokenStore]:
    sb = await sandbox_factory("shopee")
    creds = sb.add_account("main")
    for lst, stock in ((M10, 1), (M11, 2), (PLAIN, 3)):
        sb.add_listing("main", lst, stock=stock)
    store = store if store is not None else MemoryTokenStore()
    ch = sandbox_factory.closing(ShopeeChannel("shopee:main", {**creds, **settings}, store))
    return sb, ch, store


def store_current_token(
    sb: Sandbox, store: TokenStore, *, expires_in: float, refresh_in: float
) -> None:
    """Put the sandbox's current tokens in ``store``, expiring and due for refresh
    ``expires_in`` and ``refresh_in`` seconds from now."""
    creds = sb.credentials("main")
    store.put(
        "shopee:main",
        {
            "access_token": creds["access_token"],
            "refresh_token": creds["refresh_token"],
            "expires_at": time.time() + expires_in,
            "refresh_at": time.time() + refresh_in,
        },
    )


async def test_sandbox_push_and_read_back(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory)
    out = await ch.push([upd(M10, 7), upd(M11, 0)])
    assert [(o.ok, o.http_status) for o in out] == [(True, 200), (True, 200)]
    out = await ch.push([upd(PLAIN, 9)])
    assert out[0].ok
    assert sb.stock("main", M10) == 7 and sb.stock("main", M11) == 0
    assert sb.stock("main", PLAIN) == 9
    got = await ch.read_stock([M10, M11, PLAIN, {"item_id": 999, "model_id": 1}])
    assert got == {listing_ref(M10): 7, listing_ref(M11): 0, listing_ref(PLAIN): 9}
    assert sb.stats("main")["by_path"]["/api/v2/product/update_stock"] == 2


async def test_sandbox_mixed_batch_is_split_per_item(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory)
    out = await ch.push([upd(M10, 4), upd(PLAIN, 5), upd(M11, 6)])
    assert [o.listing_ref for o in out] == [listing_ref(x) for x in (M10, PLAIN, M11)]
    assert all(o.ok for o in out)
    assert sb.stats("main")["by_path"]["/api/v2/product/update_stock"] == 2


async def test_sandbox_platform_answers_become_outcomes(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory)
    sb.inject("main", "unknown_listing", listing=M11, count=1)
    ok, bad = await ch.push([upd(M10, 1), upd(M11, 1)])
    assert ok.ok and not bad.ok
    assert bad.http_status == 200 and bad.message == "model ID not exist in sku"

    sb.inject("main", "vacation", count=1, prefixed=True)
    out = await ch.push([upd(M10, 1)])
    assert out[0].code == "product.error_holiday_mode_change_stock"
    assert out[0].message == "Cannot change stock in holiday mode."

    sb.inject("main", "reserved", listing=M10, count=1, quantity=5, error="error_busi")
    out = await ch.push([upd(M10, 2)])
    assert out[0].code == "error_busi"
    assert out[0].message == "Total stock must be more than reserved stock."

    sb.inject("main", "throttle", count=1)
    out = await ch.push([upd(M10, 1)])
    assert (out[0].http_status, out[0].code) == (429, "error_server")

    sb.inject("main", "http_error", count=1, status=502)
    out = await ch.push([upd(M10, 1)])
    assert (out[0].ok, out[0].http_status, out[0].code) == (False, 502, None)

    sb.inject("main", "platform_error", count=1)
    out = await ch.push([upd(M10, 1)])
    assert out[0].code == "error_inner"


async def test_sandbox_timeout_raises_retriable(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory, timeout_s=0.3)
    sb.inject("main", "timeout", count=1, seconds=1)
    with pytest.raises(ChannelTimeout) as e:
        await ch.push([upd(M10, 1)])
    assert e.value.retriable


async def test_sandbox_expired_token_is_refreshed_and_new_refresh_token_kept(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    sb, ch, _ = await shopee_setup(sandbox_factory, store)
    old_refresh = sb.credentials("main")["refresh_token"]
    assert (await ch.push([upd(M10, 3)]))[0].ok
    sb.expire_token("main")  # the access token is now refused as invalid/expired
    out = await ch.push([upd(M10, 4)])
    assert out[0].ok and sb.stock("main", M10) == 4
    stats = sb.stats("main")
    assert stats["refreshes"] == 1
    assert stats["by_path"]["/api/v2/product/update_stock"] == 3  # refused + re-sent
    kept = store.get("shopee:main")
    assert kept is not None
    current = sb.credentials("main")
    assert kept["refresh_token"] == current["refresh_token"] != old_refresh
    assert kept["access_token"] == current["access_token"]
    # A restart reads the rotated refresh token from the file: the old one no longer works.
    sb.expire_token("main")
    again = ShopeeChannel(
        "shopee:main",
        sb.credentials("main") | {"refresh_token": old_refresh},
        JsonFileTokenStore(tmp_path / "tokens.json"),
    )
    sandbox_factory.closing(again)
    assert (await again.push([upd(M10, 5)]))[0].ok
    assert sb.stats("main")["refreshes"] == 2


async def test_sandbox_refresh_ahead_of_expiry(sandbox_factory: SandboxFactory) -> None:
    sb, ch, store = await shopee_setup(sandbox_factory)
    # Expires in 2 minutes: within the 10-minute refresh-ahead window.
    store_current_token(sb, store, expires_in=120, refresh_in=-480)
    assert (await ch.push([upd(M10, 2)]))[0].ok
    stats = sb.stats("main")
    assert stats["refreshes"] == 1
    assert stats["by_path"]["/api/v2/product/update_stock"] == 1  # no refused call
    token = store.get("shopee:main")
    assert token is not None and token["expires_at"] > time.time() + 3 * 3600


async def test_sandbox_concurrent_pushes_refresh_once(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory)
    assert (await ch.push([upd(M10, 1)]))[0].ok
    sb.expire_token("main")
    results = await asyncio.gather(*(ch.push([upd(M10, n)]) for n in range(5)))
    assert all(r[0].ok for r in results)
    assert sb.stats("main")["refreshes"] == 1


async def test_sandbox_refresh_refused_becomes_outcome(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await shopee_setup(sandbox_factory)
    sb.inject("main", "token_revoked")
    out = await ch.push([upd(M10, 1), upd(M11, 1)])
    assert [o.ok for o in out] == [False, False]
    assert out[0].code == "error_auth" and out[0].message == "Invalid refresh_token."
    assert out[0].raw is not None and out[0].raw["stage"] == "token"
    with pytest.raises(ChannelAuthError) as e:
        await ch.read_stock([M10])
    assert e.value.platform_code == "error_auth" and not e.value.retriable
    creds = sb.credentials("main")
    assert creds["partner_key"] not in str(e.value)
    assert creds["refresh_token"] not in str(e.value)


async def test_sandbox_refused_early_refresh_keeps_the_valid_token(
    sandbox_factory: SandboxFactory,
) -> None:
    sb, ch, store = await shopee_setup(sandbox_factory)
    store_current_token(sb, store, expires_in=120, refresh_in=-1)
    sb.inject("main", "refresh_fail", count=1)
    assert (await ch.push([upd(M10, 6)]))[0].ok  # still valid: used as it is
    assert sb.stock("main", M10) == 6
    assert (await ch.push([upd(M10, 7)]))[0].ok  # the next call refreshes
    assert sb.stats("main")["refreshes"] == 1

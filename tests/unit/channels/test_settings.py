"""Typed channel settings: one model per platform, every problem at once, secrets masked."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.channels import check_settings, make_channel, platforms
from syncd.channels.lazada import LazadaChannel, LazadaSettings
from syncd.channels.shopee import ShopeeChannel, ShopeeSettings
from syncd.channels.shopify import ShopifyChannel, ShopifySettings
from syncd.channels.tokens import MemoryTokenStore
from syncd.channels.wayfair import WayfairChannel, WayfairSettings
from syncd.errors import ConfigError

GOOD: dict[str, dict[str, Any]] = {
    "shopee": {"partner_id": 1, "partner_key": "PK-XYZZY", "shop_id": 2, "refresh_token": "r"},
    "lazada": {"app_key": 123, "app_secret": "AS-XYZZY", "access_token": "a"},
    "wayfair": {"client_id": "c", "client_secret": "CS-XYZZY", "supplier_id": "9"},
    "shopify": {"base_url": "http://127.0.0.1:1/shops/x", "access_token": "AT-XYZZY"},
}


def test_each_builtin_platform_has_its_own_model() -> None:
    assert platforms()[:4] == ("shopee", "lazada", "wayfair", "shopify")
    models = {
        ShopeeChannel: ShopeeSettings,
        LazadaChannel: LazadaSettings,
        WayfairChannel: WayfairSettings,
        ShopifyChannel: ShopifySettings,
    }
    for cls, model in models.items():
        assert cls.settings_model is model
        assert model.platform == cls.platform


@pytest.mark.parametrize("platform", ["shopee", "lazada", "wayfair", "shopify"])
def test_good_settings_have_no_problems(platform: str) -> None:
    assert check_settings(platform, GOOD[platform]) == []
    # The publish stage's keys live in the same table.
    extra = {"rate_per_s": 2, "burst": 3, "max_in_flight": 1, "propagation_delay_s": 0}
    assert check_settings(platform, {**GOOD[platform], **extra}) == []


def test_a_typo_is_reported_with_the_close_key() -> None:
    settings = {"partnerid": 1, "partner_key": "k", "shop_id": 2}
    problems = check_settings("shopee", settings)
    assert ("partner_id", "is required") in problems
    assert ("partnerid", "unknown setting for shopee; did you mean 'partner_id'?") in problems
    far = check_settings("wayfair", {**GOOD["wayfair"], "zzz": 1})
    assert len(far) == 1 and far[0][0] == "zzz"
    assert far[0][1].startswith("unknown setting for wayfair (known: access_token,")


def test_every_problem_is_reported_at_once() -> None:
    settings = {
        "partner_key": 5,
        "shop_id": "two",
        "timeout_s": True,
        "batch_size": 0,
        "rate_per_s": -1,
        "burst": 0,
        "max_in_flight": 0,
        "propagation_delay_s": "soon",
    }
    assert dict(check_settings("shopee", settings)) == {
        "partner_id": "is required",
        "partner_key": "must be str",
        "shop_id": "must be int",
        "timeout_s": "must be float",
        "batch_size": "must be at least 1",
        "rate_per_s": "must be a number > 0",
        "burst": "must be at least 1",
        "max_in_flight": "must be at least 1",
        "propagation_delay_s": "must be a number >= 0",
    }
    assert dict(check_settings("lazada", {"app_key": True, "auth_url": 1})) == {
        "app_key": "is required (string or integer)",
        "app_secret": "is required",
        "auth_url": "must be str",
    }
    wayfair = {**GOOD["wayfair"], "feed_kind": "FULL", "read_limit": 1.5}
    assert dict(check_settings("wayfair", wayfair)) == {
        "feed_kind": "must be DIFFERENTIAL or TRUE_UP",
        "read_limit": "must be int",
    }
    assert check_settings("shopify", {"access_token": "t"}) == [("base_url", "is required")]
    assert check_settings("ebay", {}) == [("<platform>", "unknown platform 'ebay'")]


def test_none_counts_as_absent() -> None:
    assert check_settings("wayfair", {**GOOD["wayfair"], "access_token": None}) == []
    assert check_settings("shopee", {**GOOD["shopee"], "partner_id": None}) == [
        ("partner_id", "is required")
    ]


def test_make_channel_reads_through_the_same_model() -> None:
    store = MemoryTokenStore()
    ch = make_channel("shopee", "shopee:a", {**GOOD["shopee"], "partner_id": "17"}, store)
    assert isinstance(ch, ShopeeChannel)
    assert isinstance(ch.settings, ShopeeSettings) and ch.settings.partner_id == 17
    # The first problem raises, naming the key.
    with pytest.raises(ConfigError) as e:
        make_channel("shopee", "shopee:a", {**GOOD["shopee"], "shop_id": "x"}, store)
    assert (e.value.key, e.value.reason) == ("channels.shopee:a.shop_id", "must be int")
    # Unknown keys are reported by check_settings but do not stop a client (as before).
    assert make_channel("lazada", "lazada:a", {**GOOD["lazada"], "seller_id": "s"}, store)


@pytest.mark.parametrize("platform", ["shopee", "lazada", "wayfair", "shopify"])
def test_secrets_are_never_printed(platform: str) -> None:
    ch = make_channel(platform, f"{platform}:a", GOOD[platform], MemoryTokenStore())
    assert isinstance(ch, ShopeeChannel | LazadaChannel | WayfairChannel | ShopifyChannel)
    for text in (repr(ch.settings), str(ch.settings)):
        assert "XYZZY" not in text
        assert "**********" in text

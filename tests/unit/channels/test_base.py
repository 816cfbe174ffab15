"""Channel contract pieces: token stores, factory, listing refs, transport errors."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from syncd.channels import make_channel
from syncd.channels.answers import seconds_in
from syncd.channels.base import Channel, StockUpdate, dedupe_last, listing_ref
from syncd.channels.lazada import LazadaChannel
from syncd.channels.shopee import ShopeeChannel
from syncd.channels.shopify import ShopifyChannel
from syncd.channels.tokens import JsonFileTokenStore, MemoryTokenStore
from syncd.channels.wayfair import WayfairChannel
from syncd.errors import (
    ChannelError,
    ChannelTimeout,
    ChannelTransportError,
    ConfigError,
    SyncdError,
)

SETTINGS: dict[str, dict[str, Any]] = {
    "shopee": {"partner_id": 1, "partner_key": "k", "shop_id": 2, "refresh_token": "r"},
    "lazada": {"app_key": "1", "app_secret": "s", "access_token": "a", "refresh_token": "r"},
    "wayfair": {"client_id": "c", "client_secret": "s", "supplier_id": 9},
    "shopify": {"base_url": "http://127.0.0.1:1/shops/x", "access_token": "t"},
}


def test_listing_ref_is_sorted_compact_json() -> None:
    assert listing_ref({"model_id": 2, "item_id": 1}) == '{"item_id":1,"model_id":2}'


def test_dedupe_keeps_last_update_per_listing() -> None:
    a1, b, a2 = (
        StockUpdate({"a": 1}, "a", 1),
        StockUpdate({"b": 1}, "b", 2),
        StockUpdate({"a": 1}, "a", 3),
    )
    assert dedupe_last([a1, b, a2]) == [b, a2]


def test_seconds_in_platform_messages() -> None:
    assert seconds_in("The request is too frequent, this ban will last 3 seconds") == 3.0
    assert seconds_in("no number here") is None
    assert seconds_in(None) is None


def test_memory_store_returns_copies() -> None:
    store = MemoryTokenStore()
    token = {"access_token": "a"}
    store.put("x", token)
    token["access_token"] = "changed"
    got = store.get("x")
    assert got == {"access_token": "a"}
    assert got is not None
    got["access_token"] = "mutated"
    assert store.get("x") == {"access_token": "a"}
    assert store.get("missing") is None


def test_file_store_is_atomic_private_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tokens.json"
    store = JsonFileTokenStore(path)
    assert store.get("shopee:main") is None
    store.put("shopee:main", {"access_token": "a1", "refresh_token": "r1"})
    store.put("lazada:sg", {"access_token": "b"})
    store.put("shopee:main", {"access_token": "a2", "refresh_token": "r2"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temporary files are left next to it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokens.json"]
    reopened = JsonFileTokenStore(path)
    assert reopened.get("shopee:main") == {"access_token": "a2", "refresh_token": "r2"}
    assert reopened.get("lazada:sg") == {"access_token": "b"}
    assert orjson.loads(path.read_bytes())["shopee:main"]["refresh_token"] == "r2"


def test_file_store_tightens_mode_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    JsonFileTokenStore(path).put("a", {"access_token": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_store_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError):
        JsonFileTokenStore(path).get("a")


@pytest.mark.parametrize(
    ("platform", "cls"),
    [
        ("shopee", ShopeeChannel),
        ("lazada", LazadaChannel),
        ("wayfair", WayfairChannel),
        ("shopify", ShopifyChannel),
    ],
)
def test_factory_builds_each_platform(platform: str, cls: type) -> None:
    ch = make_channel(platform, f"{platform}:main", SETTINGS[platform], MemoryTokenStore())
    assert isinstance(ch, cls)
    assert isinstance(ch, Channel)
    assert ch.platform == platform and ch.account == f"{platform}:main"


def test_factory_max_batch_is_clamped_to_platform_limits() -> None:
    store = MemoryTokenStore()
    assert make_channel("shopee", "shopee:a", SETTINGS["shopee"], store).max_batch == 50
    big = {**SETTINGS["lazada"], "batch_size": 500}
    assert make_channel("lazada", "lazada:a", big, store).max_batch == 50
    assert make_channel("shopify", "shopify:a", SETTINGS["shopify"], store).max_batch == 250
    assert make_channel("wayfair", "wayfair:a", SETTINGS["wayfair"], store).max_batch == 200
    small = {**SETTINGS["wayfair"], "batch_size": 25}
    assert make_channel("wayfair", "wayfair:a", small, store).max_batch == 25


def test_factory_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError) as e:
        make_channel("ebay", "ebay:x", {}, MemoryTokenStore())
    assert e.value.key == "channels.ebay:x"
    with pytest.raises(ConfigError) as e:
        make_channel("shopee", "shopee:x", {"partner_id": 1, "shop_id": 2}, MemoryTokenStore())
    assert e.value.key == "channels.shopee:x.partner_key"
    with pytest.raises(ConfigError) as e:
        make_channel(
            "wayfair",
            "wayfair:x",
            {**SETTINGS["wayfair"], "feed_kind": "FULL"},
            MemoryTokenStore(),
        )
    assert e.value.key == "channels.wayfair:x.feed_kind"


def test_channel_errors_are_in_the_tree() -> None:
    err = ChannelTimeout("shopee", "shopee:a", "update_stock", "no answer")
    assert isinstance(err, ChannelTransportError)
    assert isinstance(err, ChannelError) and isinstance(err, SyncdError)
    assert err.retriable and err.code == "channel_timeout"
    assert ChannelTransportError.code == "channel_transport"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_raises_retriable_transport_error() -> None:
    port = _closed_port()
    settings = {
        **SETTINGS["shopify"],
        "base_url": f"http://127.0.0.1:{port}/shops/x",
        "access_token": "shpat_SECRET123",
    }
    ch = make_channel("shopify", "shopify:x", settings, MemoryTokenStore())
    listing = {"inventory_item_id": 1, "location_id": 2}
    try:
        with pytest.raises(ChannelTransportError) as e:
            await ch.push([StockUpdate(listing, listing_ref(listing), 3)])
    finally:
        await ch.close()
    assert e.value.retriable
    assert "SECRET123" not in str(e.value)
    assert "SECRET123" not in repr(e.value.context)

"""A new platform is one module plus error-table rows.

This module is that module: a toy marketplace ("toy", an aiohttp server on
127.0.0.1), its settings model and client class, registered through
:func:`syncd.channels.register`, and rows for it added to an error table built
here. The quantities then go through the real
:class:`~syncd.publish.pusher.AccountPusher`, the contract decodes the toy's
listings and the configuration takes a toy account, with no edit anywhere
else in syncd.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiohttp import web

from syncd import channels, config, contract, platforms
from syncd.channels.answers import HttpResult, fail_unreadable
from syncd.channels.base import PushOutcome, StockUpdate, failure, listing_ref, success
from syncd.channels.http import HttpChannel
from syncd.channels.settings import ChannelSettings, Secret, Str
from syncd.channels.tokens import MemoryTokenStore
from syncd.config import PublishConfig
from syncd.config.error_table import shipped_text
from syncd.core.errortable import ErrorTable, parse
from syncd.core.sending import Desired
from syncd.errors import ConfigError, InvalidRecord
from syncd.publish.limits import AccountLimits, make_limiter
from syncd.publish.pusher import AccountPusher
from syncd.testing.fakes import MemorySink

pytestmark = pytest.mark.timeout(60)

TOKEN = "toy-token-XYZZY"

# -- the platform module ------------------------------------------------------------------


class ToySettings(ChannelSettings):
    """A toy shop: its API root, shop name and API token."""

    platform = "toy"
    base_url: Str
    shop: Str
    access_token: Secret


class ToyChannel(HttpChannel):
    """``POST {base_url}/shops/{shop}/stock`` with ``{"items": [{"id", "qty"}]}``; the
    answer lists ``{"id", "ok"}`` or ``{"id", "error", "message"}`` per item."""

    platform = "toy"
    settings_model = ToySettings
    settings: ToySettings
    hard_max_batch = 20
    default_batch = 20
    invalid_listing_message = "toy listing needs a string toy_id"

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        return isinstance(listing.get("toy_id"), str)

    def _can_refresh(self, token: Mapping[str, Any] | None) -> bool:
        return False  # a static API token

    @property
    def _stock_url(self) -> str:
        return f"{self.base_url}/shops/{self.settings.shop}/stock"

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        body = {"items": [{"id": u.listing["toy_id"], "qty": u.quantity} for u in batch]}

        async def send(token: str) -> HttpResult:
            headers = {"Authorization": f"Bearer {token}"}
            return await self.request(
                "POST", self._stock_url, operation="set_stock", json_body=body, headers=headers
            )

        result = await self.with_token(send, lambda r: r.status == 401)
        items = result.body.get("results") if isinstance(result.body, dict) else None
        if not isinstance(items, list):
            return fail_unreadable(batch, result, result.retry_after())
        by_id = {str(e.get("id")): e for e in items if isinstance(e, dict)}
        out = []
        for u in batch:
            entry = by_id.get(u.listing["toy_id"], {})
            if entry.get("ok"):
                out.append(success(u, result.status, {"item": entry}))
            else:
                code, message = entry.get("error"), entry.get("message")
                out.append(failure(u, result.status, code, message, None, {"item": entry}))
        return out

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        result = await self.with_token(
            lambda token: self.request(
                "GET",
                self._stock_url,
                operation="get_stock",
                headers={"Authorization": f"Bearer {token}"},
            ),
            lambda r: r.status == 401,
        )
        shown = result.body if isinstance(result.body, dict) else {}
        return {
            listing_ref(lst): shown[lst["toy_id"]] for lst in listings if lst["toy_id"] in shown
        }


TOY_ROWS = [
    {
        "id": "toy-listing-locked",
        "platform": "toy",
        "code": "LISTING_LOCKED",
        "class": "manual",
        "action": "toy-unlock-listing",
        "hint": "Toy locked the listing of SKU {sku} ({message}): unlock it, then press Retry.",
    },
    {
        "id": "toy-default",
        "platform": "toy",
        "default": True,
        "class": "retry",
        "max_attempts": 2,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "give_up_after_s": 5.0,
        "action": "unknown-error",
        "hint": "Toy refused SKU {sku} ({code}: {message}).",
    },
]


def toy_table() -> ErrorTable:
    """The shipped table plus the toy's rows."""
    raw = tomllib.loads(shipped_text())
    return parse({**raw, "rows": [*raw["rows"], *TOY_ROWS]}, source="shipped + toy rows")


# -- the toy marketplace --------------------------------------------------------------------


class ToyShop:
    """The toy's server: quantities per item id; items named ``locked-*`` are refused."""

    def __init__(self) -> None:
        self.stock: dict[str, int] = {}
        self.calls = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def _set(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "UNAUTHORIZED"}, status=401)
        self.calls += 1
        results = []
        for item in (await request.json())["items"]:
            if item["id"].startswith("locked-"):
                message = f"listing {item['id']} is locked by a moderator"
                results.append({"id": item["id"], "error": "LISTING_LOCKED", "message": message})
            else:
                self.stock[item["id"]] = item["qty"]
                results.append({"id": item["id"], "ok": True})
        return web.json_response({"results": results})

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self.stock)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/shops/{shop}/stock", self._set)
        app.router.add_get("/shops/{shop}/stock", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
def toy_registered() -> Iterable[None]:
    channels.register("toy", ToyChannel)
    yield
    channels.unregister("toy")


@pytest.fixture
async def shop() -> AsyncIterator[ToyShop]:
    s = ToyShop()
    await s.start()
    yield s
    await s.close()


async def _until(cond: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.usefixtures("toy_registered")
async def test_a_registered_platform_is_pushed_to_through_the_real_pusher(shop: ToyShop) -> None:
    assert "toy" in channels.platforms() and platforms.is_known("toy")
    account = "toy:corner-shop"
    settings = {"base_url": shop.base_url, "shop": "corner", "access_token": TOKEN}
    settings |= {"rate_per_s": 50}
    assert channels.check_settings("toy", settings) == []
    assert channels.check_settings("toy", {**settings, "shopp": "x"}) == [
        ("shopp", "unknown setting for toy; did you mean 'shop'?")
    ]
    channel = channels.make_channel("toy", account, settings, MemoryTokenStore())
    assert isinstance(channel, ToyChannel) and TOKEN not in repr(channel.settings)
    limits = AccountLimits.from_settings(account, "toy", settings, PublishConfig())
    sink = MemorySink()
    pusher = AccountPusher(
        account,
        0,
        channel,
        make_limiter(limits),
        limits,
        None,
        sink,
        retry_pass_s=0.0,
        table=toy_table(),
        actions=sink.write_actions,
    )
    listings = [{"toy_id": "apple"}, {"toy_id": "pear"}, {"toy_id": "locked-plum"}]
    for offset, (listing, quantity) in enumerate(zip(listings, (7, 0, 3), strict=True)):
        ref = listing_ref(listing)
        sku = f"SKU-{listing['toy_id'].upper()}"
        pusher.offer(Desired(f"{account}/{ref}", listing, ref, sku, quantity, None, [offset]))
    pusher.start()
    try:
        await _until(lambda: sorted(sink.resolved) == [0, 1, 2] and pusher.idle)
    finally:
        await pusher.stop()
        await channel.close()

    # The quantities arrived.
    assert shop.stock == {"apple": 7, "pear": 0}
    assert await channel.read_stock(listings[:2]) == {
        listing_ref(listings[0]): 7,
        listing_ref(listings[1]): 0,
    }
    await channel.close()
    ok = {r["sku"] for r in sink.results if r["ok"]}
    assert ok == {"SKU-APPLE", "SKU-PEAR"}
    # The refusal was classified by the toy's own row.
    [locked] = [r for r in sink.results if r["sku"] == "SKU-LOCKED-PLUM"]
    assert (locked["ok"], locked["code"], locked["row"], locked["class"]) == (
        False,
        "LISTING_LOCKED",
        "toy-listing-locked",
        "manual",
    )
    assert [value["action"] for _, value in sink.actions] == ["toy-unlock-listing"]


@pytest.mark.usefixtures("toy_registered")
def test_the_lower_layers_know_a_registered_platform() -> None:
    # The contract decodes a toy listing (the schema's channel pattern is generic).
    listing = {"toy_id": "apple"}
    value = {
        "type": "listing.linked",
        "event_id": "e1",
        "channel": "toy:corner-shop",
        "listing": listing,
        "sku": "SKU-APPLE",
    }
    key = f"toy:corner-shop/{listing_ref(listing)}".encode()
    ev = contract.decode_catalog(key, orjson.dumps(value), max_bytes=65536)
    assert ev.channel == "toy:corner-shop"
    # The configuration takes a toy account.
    cfg = config.parse({"channels": {"toy:corner-shop": {"shop": "corner"}}}, env={})
    assert cfg.channels["toy:corner-shop"].platform == "toy"
    # The error table: the toy's rows classify its answers; a table without a default row
    # for the toy is refused.
    table = toy_table()
    decision = table.classify("toy", "LISTING_LOCKED")
    assert decision.row.id == "toy-listing-locked"
    assert table.classify("toy", "SOMETHING_ELSE").row.id == "toy-default"
    with pytest.raises(ConfigError, match=r"no default row .* for toy"):
        parse({"rows": [*tomllib.loads(shipped_text())["rows"], TOY_ROWS[0]]})


def test_an_unregistered_platform_is_refused_everywhere() -> None:
    assert not platforms.is_known("toy") and "toy" not in channels.platforms()
    value = {
        "type": "listing.unlinked",
        "event_id": "e1",
        "channel": "toy:corner-shop",
        "listing": {"toy_id": "apple"},
    }
    with pytest.raises(InvalidRecord) as e:
        contract.decode_catalog(b"toy:corner-shop/x", orjson.dumps(value), max_bytes=65536)
    assert e.value.code == "invalid_value"
    assert e.value.reason == (
        "channel is \"toy:corner-shop\"; expected '<platform>:<account name>' with platform"
        " one of shopee, lazada, wayfair, shopify"
    )
    with pytest.raises(ConfigError) as c:
        config.parse({"channels": {"toy:corner-shop": {}}}, env={})
    assert c.value.key == "channels.toy:corner-shop"
    with pytest.raises(ConfigError) as m:
        channels.make_channel("toy", "toy:x", {}, MemoryTokenStore())
    assert m.value.key == "channels.toy:x"
    with pytest.raises(ConfigError, match="must be one of shopee, lazada, wayfair, shopify or"):
        parse({"rows": [*tomllib.loads(shipped_text())["rows"], TOY_ROWS[1]]})

"""The control API under /_sandbox (over HTTP), the Python API and the command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.testing.sandbox import PLATFORMS, Sandbox, start
from syncd.testing.sandbox.__main__ import start_from_config

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("platform", "listing"),
    [
        ("shopee", {"item_id": 5, "model_id": 6}),
        ("lazada", {"item_id": 5, "sku_id": 6}),
        ("wayfair", {"supplier_part_number": "P-6"}),
        ("shopify", {"inventory_item_id": 6}),
    ],
)
async def test_control_api_round_trip(
    http: aiohttp.ClientSession, platform: str, listing: dict[str, Any]
) -> None:
    sb = await start(platform)
    try:
        cu = sb.control_url
        status, creds = await call(http, "POST", cu + "/accounts", {"name": "acc", "rate_per_s": 9})
        assert status == 200 and creds["base_url"].startswith("http://127.0.0.1:")
        status, again = await call(http, "GET", cu + "/accounts/acc")
        assert again == creds
        status, got = await call(
            http, "POST", cu + "/accounts/acc/listings", {"listing": listing, "stock": 4}
        )
        key = got["key"]
        status, state = await call(
            http, "POST", cu + "/accounts/acc/stock", {"listing": listing, "quantity": 11}
        )
        assert state["stock"] == 11 and state["key"] == key
        status, state = await call(
            http, "POST", cu + "/accounts/acc/stock/get", {"listing": listing}
        )
        assert state["shown"] == 11
        status, all_ = await call(http, "GET", cu + "/accounts/acc/stock")
        assert [s["key"] for s in all_["listings"]] == [key]
        status, lim = await call(
            http, "POST", cu + "/accounts/acc/limits", {"rate_per_s": None, "token_ttl_s": 5}
        )
        assert lim["limits"]["rate_per_s"] is None and lim["limits"]["token_ttl_s"] == 5
        status, f = await call(
            http,
            "POST",
            cu + "/accounts/acc/faults",
            {"fault": "http_error", "listing": listing, "count": 2, "params": {"status": 503}},
        )
        assert status == 200 and f["id"]
        status, faults = await call(http, "GET", cu + "/accounts/acc/faults")
        assert faults["faults"][0]["listing"] == key and faults["faults"][0]["remaining"] == 2
        status, bad = await call(http, "POST", cu + "/accounts/acc/faults", {"fault": "nope"})
        assert status == 400 and "nope" in bad["error"]
        status, cleared = await call(http, "DELETE", cu + "/accounts/acc/faults", {})
        assert cleared == {"cleared": 1}
        status, _ = await call(http, "POST", cu + "/accounts/acc/expire_token", {"refresh": True})
        assert status == 200
        status, stats = await call(http, "GET", cu + "/accounts/acc/stats")
        assert stats["requests"] == 0 and stats["max_in_1s"] == 0
        status, _ = await call(http, "POST", cu + "/reset", {})
        status, info = await call(http, "GET", cu)
        assert info == {"platform": platform, "base_url": sb.base_url, "accounts": ["acc"]}
        status, _ = await call(http, "POST", cu + "/reset", {"hard": True})
        status, missing = await call(http, "GET", cu + "/accounts/acc/stats")
        assert status == 404 and "acc" in missing["error"]
    finally:
        await sb.close()


async def test_control_api_rejects_bad_bodies(http: aiohttp.ClientSession) -> None:
    sb = await start("shopee")
    try:
        async with http.post(sb.control_url + "/accounts", data=b"not json") as r:
            assert r.status == 400
        status, body = await call(http, "POST", sb.control_url + "/accounts", {})
        assert status == 400 and "name" in body["error"]
        sb.add_account("a")
        status, body = await call(
            http, "POST", sb.control_url + "/accounts/a/listings", {"listing": {"item_id": "x"}}
        )
        assert status == 400
    finally:
        await sb.close()


async def test_python_api_faults_and_sliding_window() -> None:
    sb = await start("lazada")
    try:
        sb.add_account("a")
        with pytest.raises(ValueError, match="forced_zero"):
            sb.inject("a", "forced_zero")
        with pytest.raises(ValueError, match="count"):
            sb.inject("a", "throttle", count=0)
        acc = sb.accounts["a"]
        acc.times.extend([0.0, 0.1, 0.5, 0.99, 1.0, 1.5, 3.0])
        assert sb.stats("a")["max_in_1s"] == 4
        assert sb.request_times("a")[-1] == 3.0
        with pytest.raises(ValueError, match="loopback"):
            await start("shopee", host="0.0.0.0")
        with pytest.raises(ValueError, match="platform"):
            await start("amazon")
    finally:
        await sb.close()


async def test_start_from_config_all_platforms() -> None:
    config = {
        "shopee": {
            "rate_per_s": 5,
            "accounts": [
                {"name": "s", "shop_id": 42, "listings": [{"listing": {"item_id": 1}, "stock": 3}]}
            ],
        },
        "lazada": {
            "accounts": [
                {"name": "l", "listings": [{"listing": {"item_id": 1, "sku_id": 2}, "stock": 4}]}
            ]
        },
        "wayfair": {
            "apply_delay_s": 0.5,
            "accounts": [
                {"name": "w", "listings": [{"listing": {"supplier_part_number": "X"}, "stock": 5}]}
            ],
        },
        "shopify": {
            "bucket_size": 50,
            "accounts": [
                {
                    "name": "f",
                    "shop": "f-shop",
                    "listings": [{"listing": {"inventory_item_id": 9}, "stock": 6}],
                }
            ],
        },
    }
    sandboxes = await start_from_config(config)
    try:
        assert [sb.platform for sb in sandboxes] == list(PLATFORMS)
        by = {sb.platform: sb for sb in sandboxes}
        assert by["shopee"].credentials("s")["shop_id"] == 42
        assert by["shopee"].stock("s", {"item_id": 1}) == 3
        assert by["wayfair"].accounts["w"].limits.apply_delay_s == 0.5
        assert by["shopify"].credentials("f")["base_url"].endswith("/shops/f-shop")
        assert by["shopify"].stock("f", {"inventory_item_id": 9}) == 6
    finally:
        for sb in sandboxes:
            await sb.close()
    with pytest.raises(ValueError, match="amazon"):
        await start_from_config({"amazon": {}})


async def test_command_line_prints_base_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "sb.toml"
    cfg.write_text(
        '[shopee]\nport = 0\n[[shopee.accounts]]\nname = "s"\n'
        "[[shopee.accounts.listings]]\nlisting = { item_id = 1 }\nstock = 2\n"
        '[shopify]\n[[shopify.accounts]]\nname = "f"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd.testing.sandbox",
        "--config",
        str(cfg),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 15)) for _ in range(2)]
        assert [x["platform"] for x in lines] == ["shopee", "shopify"]
        async with aiohttp.ClientSession() as h, h.get(lines[0]["control_url"]) as r:
            assert (await r.json())["accounts"] == ["s"]
        assert lines[1]["accounts"]["f"]["base_url"].endswith("/shops/f")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_example_config_parses() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "config" / "sandbox.example.toml").read_text())
    assert set(config) == set(PLATFORMS)


async def test_sandbox_is_async_context_manager() -> None:
    async with await start("wayfair") as sb:
        assert isinstance(sb, Sandbox) and sb.base_url == sb.root_url

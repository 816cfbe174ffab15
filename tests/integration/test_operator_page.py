"""The operator page (syncd/admin.py, docs/admin.md) end to end in headless Chromium.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright; the real broker, a
Shopee sandbox in the test's event loop and the real daemon (``syncd run``, a
subprocess, admin server on a free port, admin token from its environment). The
error table is the shipped one with its retry bounds shortened, and the retry pass is
far away, so only the operator's Retry sends the failed listing again:

a listing's calls fail with HTTP 500 (sandbox fault), retries run out, the page shows
the action under its account with the row's hint and the listing; the fault is
cleared through the sandbox's control API, Retry is clicked with the token typed into
the page (a wrong token first: refused), and the listing's desired quantity arrives.
A second shop in vacation mode shows as parked, with the row and its hint.
A screenshot goes to /tmp when it fails. Without Chromium the test fails, never skips.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from playwright.async_api import Page, async_playwright, expect

from dev import sample
from dev.kafkaio import channel_settings, config_head, create_inputs, produce
from syncd import config
from syncd.channels.base import listing_ref
from syncd.testing.sandbox import Sandbox, start
from tests.fixtures.kafka import ROOT, syncd_cmd

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ACCOUNT = "shopee:main"
HOLIDAY = "shopee:holiday"
"""A second shop, in vacation mode: parked from its first call."""
ON_HAND = (17, 9)
SAFETY_UNITS = 2
WAIT_S = 30.0


def fast_table(tmp: Path) -> Path:
    """The shipped error table with every retry bound shortened (same rows and hints)."""
    text = (ROOT / "syncd" / "config" / "error-table.toml").read_text()
    for key, value in (("max_attempts", "2"), ("base_delay_s", "0.05"), ("max_delay_s", "0.1")):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
    path = tmp / "error-table.toml"
    path.write_text(text)
    return path


def snapshot(i: int, on_hand: int) -> sample.Rec:
    sku = sample.sku_name(i)
    ev = {
        "type": "stock.snapshot",
        "event_id": f"snap-{i}",
        "sku": sku,
        "warehouse": sample.WAREHOUSES[0],
        "on_hand": on_hand,
        "as_of": sample.rfc3339(sample.T0),
    }
    return sample.Rec("stock", sku.encode(), orjson.dumps(ev))


async def until(what: str, check: Callable[[], Awaitable[bool]], within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


class Daemon:
    """``syncd run`` as a subprocess, its JSON log in a file."""

    def __init__(self, cfg_path: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                syncd_cmd(cfg_path, "run"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
            )

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if f'"{name}"' in line:
                out.append(json.loads(line))
        return out

    async def admin_port(self) -> int:
        async def started() -> bool:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            return bool(self.events("admin_started"))

        await until("admin_started", started)
        return int(self.events("admin_started")[0]["port"])

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 30)


async def operate(
    page: Page,
    url: str,
    http: aiohttp.ClientSession,
    shopee: Sandbox,
    listings: list[dict[str, Any]],
    token: str,
    desired: list[int],
) -> None:
    """What an operator does in the page, and what the sandbox then shows."""
    control = f"{shopee.control_url}/accounts/{ACCOUNT.split(':', 1)[1]}"
    offsite: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(url) else offsite.append(r.url))
    await page.goto(url)
    section = page.locator(f'section[data-account="{ACCOUNT}"]')
    state = section.locator("p.state")
    row = section.locator(f'tr[data-action="{ACCOUNT}/platform-unavailable"]')
    status = page.locator("#status")

    async def shown(i: int) -> int:
        async with http.post(f"{control}/stock/get", json={"listing": listings[i]}) as r:
            return int((await r.json())["shown"])

    async def action_listed() -> bool:
        success = state.get_by_text(re.compile(r"last success: \d+ s ago"))
        if await row.count() and await success.count():
            return True
        await page.reload()
        return False

    # retries ran out: the action under its account; the other listing arrived
    await until("the action and a last success on the page", action_listed)
    await expect(row).to_contain_text("kept answering with server errors (HTTP 500)")
    await expect(row).to_contain_text(listing_ref(listings[0]))
    await expect(row).to_contain_text(re.compile(r"\d+ s"))  # its age
    for text in ("active", "calls/s", "queue depth: 0", "waiting for the retry pass: 1"):
        await expect(state).to_contain_text(text)
    parked = page.locator(f'section[data-account="{HOLIDAY}"]')
    await expect(parked.locator("p.state")).to_contain_text(
        re.compile(
            r"parked \(park-account, row shopee-holiday-mode\): .*holiday \(vacation\) mode"
            r".*queue depth: \d+ .*last success: not seen yet"
        )
    )
    await expect(parked.locator(f'tr[data-action="{HOLIDAY}/end-holiday-mode"]')).to_contain_text(
        "Vacation Mode: turn it off"
    )
    assert await shown(1) == desired[1]
    assert await shown(0) == 0

    async with http.delete(f"{control}/faults", json={"listing": listings[0]}) as r:
        assert (await r.json())["cleared"] == 1
    await asyncio.sleep(1.0)
    assert await shown(0) == 0  # nothing but the operator sends it again

    token_field = page.get_by_label("Admin token")
    await token_field.fill("not-the-token")
    await row.get_by_role("button", name="Retry").click()
    await expect(status).to_contain_text("retry refused (401)")
    await token_field.fill(token)
    await row.get_by_role("button", name="Retry").click()
    await expect(status).to_contain_text(
        f"Retry sent for {ACCOUNT}/platform-unavailable: 1 listing(s) sent again now"
    )

    async def arrived() -> bool:
        return await shown(0) == desired[0]

    await until("the retried quantity at the sandbox", arrived)

    async def action_gone() -> bool:
        await page.reload()
        return await row.count() == 0

    await until("the action resolved on the page", action_gone)
    await expect(section).to_contain_text("No open action.")
    await expect(status).to_contain_text("Retry sent for")  # kept across the reload
    assert await page.evaluate("sessionStorage.getItem('syncd-admin-token')") == token
    assert token not in await page.content()
    assert offsite == []  # no external resource: the page works offline


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; missing, the test fails (CI installs it, see .ci/run)."""
    assert Path(CHROMIUM).is_file(), f"Debian's chromium is needed at {CHROMIUM}"
    return CHROMIUM


@pytest.fixture
async def shopee() -> AsyncIterator[Sandbox]:
    sb = await start("shopee", host="127.0.0.1", port=0)
    try:
        yield sb
    finally:
        await sb.close()


async def test_retry_in_the_page_sends_the_listing_once_the_fault_is_cleared(
    kafka_bootstrap: str, tmp_path: Path, shopee: Sandbox, chromium: str
) -> None:
    token = f"page-{uuid.uuid4().hex}"
    env = {"SYNCD_TEST_ADMIN_TOKEN": token}
    settings = []
    for account in (ACCOUNT, HOLIDAY):
        shop = account.split(":", 1)[1]
        creds = shopee.add_account(shop)
        for i in range(len(ON_HAND)):
            shopee.add_listing(shop, sample.listing_for(account, i), 0)
        settings.append(f'[channels."{account}"]\n{channel_settings(creds, env)}\n')
    listings = [sample.listing_for(ACCOUNT, i) for i in range(len(ON_HAND))]
    shopee.inject("main", "http_error", listing=listings[0], status=500)
    shopee.inject("holiday", "vacation")
    prefix = f"op{uuid.uuid4().hex[:8]}"
    text = (
        config_head(kafka_bootstrap, prefix, input_partitions=1, desired_partitions=1)
        + (
            f'[policy]\nsafety = "fixed"\nsafety_units = {SAFETY_UNITS}\n'
            f'[publish]\nerror_table = "{fast_table(tmp_path)}"\nretry_pass_s = 600\n'
            'stop_deadline_s = 1.0\n[admin]\nport = 0\ntoken_env = "SYNCD_TEST_ADMIN_TOKEN"\n'
        )
        + "".join(settings)
    )
    cfg_path = tmp_path / "syncd.toml"
    cfg_path.write_text(text)
    cfg = config.load(cfg_path, env={**os.environ, **env})
    await create_inputs(cfg, partitions=1)
    await produce(
        cfg,
        sample.catalog(len(ON_HAND), (ACCOUNT, HOLIDAY))
        + [snapshot(i, q) for i, q in enumerate(ON_HAND)],
    )
    desired = [q - SAFETY_UNITS for q in ON_HAND]

    daemon = Daemon(cfg_path, env, tmp_path / "syncd.log")
    try:
        url = f"http://127.0.0.1:{await daemon.admin_port()}/"
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            try:
                await operate(page, url, http, shopee, listings, token, desired)
            except BaseException:
                shot = Path("/tmp") / f"operator-page-{uuid.uuid4().hex[:8]}.png"
                await page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}\nsyncd log: {daemon.log}")
                raise
            finally:
                await browser.close()
    finally:
        await daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()[-3000:]

"""Reconciliation against the marketplace sandboxes, over HTTP.

A pusher with a real channel client acknowledges quantities, the sandbox's control
API changes a listing's stock out of band (drift) or switches on Wayfair's forced zero,
and :meth:`syncd.publish.pusher.AccountPusher.reconcile` reads back through the account's
limiter and a read budget: a drift is confirmed, pushed again once and, if it persists,
one manual action per cause and account (``read-back-drift``; Wayfair's Confirm Stock
Status row for a forced zero, the listing held and probed until the alert is gone); a
save still propagating is waited for; a quantity whose retries ran out but which the
platform shows is adopted; the reads keep to their share of the rate.

The read rounds are driven by the test (the daemon's interval task only calls
``reconcile`` every ``reconcile_interval_s``; tests/integration/test_restart_state.py runs it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiolimiter import AsyncLimiter

from syncd.channels.base import listing_ref
from syncd.core.reconcile import LISTINGS_PER_READ, Settings
from syncd.testing.sandbox import Sandbox
from tests.fixtures.error_rig import PROBE_S, Rig, rig
from tests.fixtures.publishing import SandboxFactory, wait_until

pytestmark = pytest.mark.timeout(60)

FAST = 1000.0


def reconciling(r: Rig, *, delay_s: float = 0.0, persist_s: float = 0.0) -> AsyncLimiter:
    """Give the rig's pusher reconciliation settings; returns a read budget."""
    platform = r.sb.platform
    r.pusher.reconcile_settings = Settings(0, FAST, delay_s, persist_s, LISTINGS_PER_READ[platform])
    return AsyncLimiter(1, 1 / FAST)


async def drift(sb: Sandbox, listing: dict[str, Any], quantity: int) -> None:
    """Change a listing's stock out of band, through the sandbox's control API."""
    url = f"{sb.root_url}/_sandbox/accounts/acct/stock"
    body = {"listing": listing, "quantity": quantity}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()


def requests(sb: Sandbox) -> int:
    return int(sb.stats("acct")["requests"])


async def test_drift_is_confirmed_pushed_again_once_and_a_persisting_one_opens_one_action(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb, n=3)
    budget = reconciling(r, persist_s=0.3)
    for i in range(3):
        r.offer(i, 5 + i)
    await r.settled()
    await drift(sb, r.listings[0], 2)
    await r.pusher.reconcile(budget)
    assert r.pusher.counts["reconcile_drift"] == 1 and r.pusher.counts["reconcile_ok"] == 2
    assert r.stock() == [2, 6, 7]  # first sight: nothing sent yet
    await r.pusher.reconcile(budget)
    await r.settled()
    assert r.stock() == [5, 6, 7]  # pushed again
    await r.pusher.reconcile(budget)
    assert not r.pusher.drift  # the read matches: drift over
    assert r.actions.written == []

    # a drift that persists (someone keeps editing two listings in the seller centre)
    for i in (0, 1):
        await drift(sb, r.listings[i], 1)
    await r.pusher.reconcile(budget)  # seen
    await r.pusher.reconcile(budget)  # pushed again
    await r.settled()
    assert r.stock() == [5, 6, 7]
    for i in (0, 1):
        await drift(sb, r.listings[i], 1)
    await asyncio.sleep(0.3)
    calls = requests(sb)
    await r.pusher.reconcile(budget)
    assert requests(sb) == calls + 3  # three reads, nothing pushed
    a = r.action("stock-drift")
    assert a["state"] == "open" and a["class"] == "manual" and a["count"] == 2
    assert a["listings"] == [listing_ref(r.listings[0]), listing_ref(r.listings[1])]
    # the newest failure's hint
    assert "Lazada keeps showing a different quantity for SKU SKU-0001" in a["hint"]
    assert "read back 1 since" in a["hint"] and "sent 6" in a["hint"]
    written = len(r.actions.written)
    await r.pusher.reconcile(budget)
    assert len(r.actions.written) == written  # still drifting: no new record
    # the seller fixes the listings: the next read-back resolves the action
    await drift(sb, r.listings[0], 5)
    await drift(sb, r.listings[1], 6)
    await r.pusher.reconcile(budget)
    assert r.action("stock-drift")["state"] == "resolved"
    await r.close()


async def test_a_save_still_propagating_is_waited_for(sandbox: SandboxFactory) -> None:
    sb = await sandbox("wayfair")
    r = await rig(sb, n=1)
    sb.set_limits("acct", apply_delay_s=0.8)
    budget = reconciling(r, delay_s=1.5)
    r.offer(0, 9)
    await r.settled()
    assert sb.stock("acct", r.listings[0]) == 10  # accepted, not applied yet
    await r.pusher.reconcile(budget)
    assert r.pusher.counts["reconcile_wait"] == 1 and not r.pusher.drift
    await wait_until(lambda: sb.stock("acct", r.listings[0]) == 9, 5, "applied")
    await r.pusher.reconcile(budget)
    assert r.pusher.counts["reconcile_ok"] == 1
    await r.close()


async def test_wayfair_forced_zero_opens_confirm_stock_status_and_clears_after_the_alert(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("wayfair")
    r = await rig(sb, n=2)
    budget = reconciling(r, persist_s=0.2)
    r.offer(0, 6)
    r.offer(1, 4)
    await r.settled()
    sb.inject("acct", "forced_zero", listing=r.listings[0])
    await r.pusher.reconcile(budget)  # seen
    await r.pusher.reconcile(budget)  # pushed again: accepted, dropped by the alert
    await r.settled()
    await asyncio.sleep(0.2)
    await r.pusher.reconcile(budget)
    a = r.action("confirm-stock-status")
    assert a["state"] == "open" and a["class"] == "park-listing"
    assert a["listings"] == [listing_ref(r.listings[0])]
    assert "Partner Home > Inventory > Confirm Stock Status" in a["hint"]
    key = f"{r.account}/{listing_ref(r.listings[0])}"
    assert key in r.pusher.held  # held, probed every PROBE_S
    r.offer(0, 8)  # a newer quantity while held: kept for the probe
    sb.clear("acct", "forced_zero")

    async def cleared() -> bool:
        await r.pusher.reconcile(budget)
        return bool(r.action("confirm-stock-status")["state"] == "resolved")

    deadline = time.monotonic() + 20
    while not await cleared():
        assert time.monotonic() < deadline, "the action was not resolved"
        await wait_until(lambda: r.pusher.idle, 5, "idle")
        await asyncio.sleep(PROBE_S / 3)
    assert r.stock() == [8, 4]
    assert r.action("confirm-stock-status")["listings"] == []
    await r.close()


async def test_a_quantity_whose_retries_ran_out_is_adopted_when_the_platform_shows_it(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("shopee")
    r = await rig(sb, n=2)
    budget = reconciling(r)
    sb.inject("acct", "http_error", listing=r.listings[0], status=503)
    r.offer(0, 3)
    r.offer(1, 4)
    await wait_until(lambda: len(r.pusher.parked) == 1, what="retries ran out")
    assert r.action("platform-unavailable")["state"] == "open"
    sb.clear("acct")
    await drift(sb, r.listings[0], 3)  # it did arrive after all (or a person set it)
    calls = requests(sb)
    await r.pusher.reconcile(budget)
    assert requests(sb) == calls + 2
    key = f"{r.account}/{listing_ref(r.listings[0])}"
    assert not r.pusher.parked and r.pusher.acked[key] == 3
    assert r.pusher.counts["reconcile_adopt"] == 1
    assert r.action("platform-unavailable")["state"] == "resolved"
    await r.close()


async def test_reads_keep_to_their_share_and_go_through_the_account_limiter(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb, n=10, settings={"rate_per_s": 20})
    for i in range(10):
        r.offer(i, 1 + i)
    await r.settled()
    r.pusher.reconcile_settings = Settings(0, 5.0, 0.0, 0.0, 1)  # 0.25 x 20 calls/s
    budget = AsyncLimiter(1, 1 / 5.0)
    acquired = 0
    acquire = r.pusher.limiter.acquire

    async def counting() -> None:
        nonlocal acquired
        acquired += 1
        await acquire()

    r.pusher.limiter.acquire = counting  # type: ignore[method-assign]
    t0 = time.monotonic()
    await r.pusher.reconcile(budget)
    took = time.monotonic() - t0
    assert r.pusher.counts["reconcile_reads"] == 10 and acquired == 10
    assert took >= 9 / 5.0 * 0.9  # one read per 1/5 s after the first
    times = sb.request_times("acct")[-10:]
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 6
    await r.close()

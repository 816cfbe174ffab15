"""The publisher acting on the error table, against the real marketplace sandboxes.

Each test drives one :class:`syncd.publish.pusher.AccountPusher` with a real channel client
talking to an in-process sandbox over HTTP, injects a fault through the sandbox's API,
and checks what syncd does for the row's class (retried, refreshed, parked and flushed,
adjusted, held, or a manual action with the row's hint, grouped per cause), and that
once the fault clears the sandbox shows the newest desired quantity.

The shipped table is used with its timings shortened (``fast_table``, in
tests/fixtures/error_rig.py): same rows, classes, matchers and hints.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncd.channels.base import listing_ref
from syncd.core.actions import ActionBook
from syncd.publish.limits import RequestLimiter
from tests.fixtures.error_rig import fast_table, rig
from tests.fixtures.publishing import SandboxFactory, wait_until

pytestmark = pytest.mark.timeout(60)

# -- retry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "fault", "params", "row"),
    [
        ("shopee", "http_error", {"status": 500}, "http-5xx"),
        ("lazada", "http_error", {"status": 501}, "http-5xx"),
        ("wayfair", "timeout", {"seconds": 2}, "transport"),
        ("lazada", "throttle", {"retry_after_s": 0.2}, "lazada-throttle"),
        ("shopify", "throttle", {"retry_after_s": 0.2}, "shopify-throttled"),
    ],
)
async def test_retry_rows_back_off_and_the_newest_quantity_arrives(
    sandbox: SandboxFactory, platform: str, fault: str, params: dict[str, Any], row: str
) -> None:
    sb = await sandbox(platform)
    r = await rig(sb, settings={"timeout_s": 0.5})
    sb.inject("acct", fault, count=2, **params)
    for i in range(3):
        r.offer(i, 1 + i)
    await wait_until(lambda: any(not x["ok"] for x in r.sink.results), what="a failure")
    for i in range(3):
        r.offer(i, 20 + i)  # newer quantities while retrying
    await r.settled()
    assert r.stock() == [20, 21, 22]
    failed = [x for x in r.sink.results if not x["ok"]]
    assert failed and all(x["row"] == row and x["retriable"] for x in failed)
    assert not any(x["final"] for x in failed)
    assert r.actions.written == []  # recovered within the bounds: nothing to do
    if row == "lazada-throttle":  # a throttling row slows the account's limiter
        assert isinstance(r.pusher.limiter, RequestLimiter)
        assert r.pusher.limiter.current_rate < r.pusher.limits.rate_per_s  # type: ignore[operator]
    await r.close()


async def test_retries_run_out_into_one_grouped_action_resolved_by_the_retry_pass(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb, retry_pass_s=0.5)
    sb.inject("acct", "http_error", status=502)  # until cleared
    for i in range(3):
        r.offer(i, 4 + i)
    await wait_until(lambda: len(r.pusher.parked) == 3, what="retries ran out")
    finals = [x for x in r.sink.results if x["final"]]
    assert len(finals) == 3 and all(not x["ok"] and x["attempt"] == 4 for x in finals)
    ids = {k for k, _ in r.actions.written}
    assert ids == {"lazada:acct/platform-unavailable"}  # one cause, one account: one action
    a = r.action("platform-unavailable")
    assert (a["state"], a["class"], a["count"]) == ("open", "retry", 3)
    assert a["listings"] == [listing_ref(lst) for lst in r.listings]
    assert "server errors (HTTP 502)" in a["hint"] and "press Retry" in a["hint"]
    r.offer(2, 9)  # newer than the one that failed
    sb.clear("acct")
    await wait_until(lambda: r.pusher.idle and not r.pusher.parked, what="retry pass")
    assert r.stock() == [4, 5, 9]
    a = r.action("platform-unavailable")
    assert (a["state"], a["listings"]) == ("resolved", [])
    await r.close()


# -- refresh-auth ------------------------------------------------------------------------


async def test_expired_token_is_refreshed_and_sent_again(sandbox: SandboxFactory) -> None:
    sb = await sandbox("shopee")
    r = await rig(sb)
    sb.inject("acct", "token_expired", count=2)  # the client's own refresh-and-resend fails too
    for i in range(3):
        r.offer(i, 7)
    await r.settled()
    assert r.stock() == [7, 7, 7]
    assert sb.stats("acct")["refreshes"] == 2  # the client's, then the forced one
    refused = [x for x in r.sink.results if not x["ok"]]
    assert refused and all(x["class"] == "refresh-auth" and not x["final"] for x in refused)
    assert r.actions.written == []
    await r.close()


async def test_a_refresh_that_does_not_help_parks_the_account_with_reconnect_action(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("wayfair")
    r = await rig(sb)
    sb.inject("acct", "token_expired")  # every token refused until cleared
    for i in range(3):
        r.offer(i, 3)
    await wait_until(lambda: r.pusher.account_park is not None, what="parked")
    a = r.action("reconnect-store")
    assert a["state"] == "open" and "Wayfair Partner Home" in a["hint"]
    for i in range(3):
        r.offer(i, 11 + i)  # kept while parked; their offsets are handed over
    assert sorted(r.sink.resolved) == list(range(6))
    sb.clear("acct")
    await r.settled()
    assert r.stock() == [11, 12, 13]
    assert r.action("reconnect-store")["state"] == "resolved"
    await r.close()


# -- park-account -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "fault", "row", "action"),
    [
        ("shopee", "vacation", "shopee-holiday-mode", "end-holiday-mode"),
        ("lazada", "vacation", "lazada-holiday-mode", "end-holiday-mode"),
        ("shopify", "token_revoked", "shopify-refresh-refused", "reconnect-store"),
    ],
)
async def test_park_account_probes_then_flushes_the_newest(
    sandbox: SandboxFactory, platform: str, fault: str, row: str, action: str
) -> None:
    sb = await sandbox(platform)
    r = await rig(sb, settings={"batch_size": 1})
    sb.inject("acct", fault)
    for i in range(3):
        r.offer(i, 2)
    await wait_until(lambda: r.pusher.account_park is not None, what="parked")
    assert r.pusher.account_park is not None
    assert r.pusher.account_park.decision.row.id == row
    for i in range(3):
        r.offer(i, 30 + i)
    t0 = sb.stats("acct")["requests"]
    await wait_until(lambda: sb.stats("acct")["requests"] >= t0 + 2, what="two probes")
    probes = sb.stats("acct")["requests"] - t0
    assert probes <= 4  # one listing per probe interval, not the backlog
    a = r.action(action)
    assert a["state"] == "open" and a["class"] == "park-account"
    sb.clear("acct")
    await r.settled()
    assert r.stock() == [30, 31, 32]
    assert r.action(action)["state"] == "resolved"
    await r.close()


# -- park-listing --------------------------------------------------------------------------


async def test_promotion_lock_holds_only_that_listing_and_probes_it(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("shopee")
    r = await rig(sb)
    sb.inject("acct", "reserved", listing=r.listings[0], shape="promotion")
    for i in range(3):
        r.offer(i, 5)
    await wait_until(lambda: bool(r.pusher.held), what="held")
    await wait_until(lambda: r.stock()[1:] == [5, 5], what="the others go on")
    r.offer(0, 8)
    a = r.action("promotion-lock")
    assert a["listings"] == [listing_ref(r.listings[0])] and "promotion" in a["hint"]
    await wait_until(lambda: len(r.results(0)) >= 2, what="a probe")  # probed while locked
    sb.clear("acct")
    await r.settled()
    assert r.stock() == [8, 5, 5]
    assert r.action("promotion-lock")["state"] == "resolved"
    await r.close()


# -- adjust ----------------------------------------------------------------------------


async def test_unpaid_order_minimum_is_sent_and_recorded(sandbox: SandboxFactory) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb)
    sb.inject("acct", "unpaid_min", listing=r.listings[0], quantity=5)
    r.offer(0, 2)
    r.offer(1, 2)
    await r.settled()
    assert (
        sb.stats("acct")["last_quantity"][sb.listing_key(sb.accounts["acct"], r.listings[0])] == 5
    )
    last = r.results(0)[-1]
    assert last["ok"] and (last["quantity"], last["desired_quantity"]) == (5, 2)
    assert last["min_quantity"] == 5
    assert r.results(0)[0]["class"] == "adjust" and not r.results(0)[0]["final"]
    sb.clear("acct")
    r.offer(0, 1)
    await r.settled()
    assert r.stock()[:2] == [1, 2]
    await r.close()


async def test_campaign_hold_is_recorded_and_at_least_the_held_units_sent(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb)
    sb.inject("acct", "reserved", listing=r.listings[0], quantity=6)
    r.offer(0, 4)
    await r.settled()
    last = r.results(0)[-1]
    assert last["ok"] and last["held"] == 6 and last["quantity"] == 6
    assert r.results(0)[0]["held"] == 6 and r.results(0)[0]["row"] == "lazada-campaign-lock"
    sb.clear("acct")
    r.offer(0, 3)
    await r.settled()
    assert r.stock()[0] == 3
    await r.close()


# -- manual ------------------------------------------------------------------------------


async def test_unknown_listings_are_one_manual_action_with_the_rows_hint(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("shopee")
    r = await rig(sb, n=4)
    for i in (0, 1):
        sb.inject("acct", "unknown_listing", listing=r.listings[i])
    for i in range(4):
        r.offer(i, 9)
    await r.settled()
    assert r.stock()[2:] == [9, 9]
    for i in (0, 1):
        (res,) = r.results(i)  # not retried
        assert (res["final"], res["class"], res["row"]) == (True, "manual", "shopee-item-not-found")
    assert {k for k, _ in r.actions.written} == {"shopee:acct/unknown-listing"}
    a = r.action("unknown-listing")
    assert a["count"] == 2 and a["listings"] == [listing_ref(r.listings[i]) for i in (0, 1)]
    assert "Shopee does not know" in a["hint"] and "SKU-0001" in a["hint"]
    sb.clear("acct")
    r.offer(0, 10)
    r.offer(1, 11)
    await r.settled()
    assert r.stock() == [10, 11, 9, 9]
    assert r.action("unknown-listing")["state"] == "resolved"
    await r.close()


def test_action_book_groups_and_resolves() -> None:
    table = fast_table()
    book = ActionBook("shopee:x")
    dec = table.classify("shopee", "channel_timeout", sku="A", account="shopee:x")
    ids = [book.open(dec, ref, 1) for ref in ("r1", "r2", "r1")]
    assert set(ids) == {"shopee:x/platform-unreachable"}
    ((key, rec),) = book.records(ids)
    assert rec["listings"] == ["r1", "r2"] and rec["count"] == 3 and rec["state"] == "open"
    assert book.cleared("r1", 2) == [key] and book.records([key])[0][1]["state"] == "open"
    book.cleared("r2", 3)
    rec = book.records([key])[0][1]
    assert (rec["state"], rec["opened_at"], rec["updated_at"]) == ("resolved", 1, 3)
    book.open(dec, "r3", 4)  # the same cause again: reopened
    rec = book.records([key])[0][1]
    assert (rec["state"], rec["count"], rec["opened_at"]) == ("open", 1, 4)

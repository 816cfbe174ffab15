"""The publish rules, one account at a time, against the real marketplace sandboxes (no Kafka).

Each test drives :class:`syncd.publish.pusher.AccountPusher` with a real channel client
talking to an in-process sandbox on 127.0.0.1, and a :class:`MemorySink`
that keeps what the Kafka sink would write. What the sandbox received, and in
which order, is read from the sandbox itself (``Account.received`` is tapped
to keep the order; the sandbox still handles every request itself).

Also: the outcome classification and the two limiters on their own.

The shared helpers (``sandbox``, ``listing_for``, ``wait_until``, ...) live in
tests/fixtures/publishing.py; the in-memory sink is :class:`syncd.testing.fakes.MemorySink`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from syncd.channels import make_channel
from syncd.channels.base import Channel, listing_ref
from syncd.channels.tokens import MemoryTokenStore
from syncd.config import PublishConfig
from syncd.publish.limits import (
    AccountLimits,
    CostLimiter,
    RequestLimiter,
    make_limiter,
)
from syncd.publish.pusher import AccountPusher, Desired
from syncd.testing.fakes import MemorySink, RetryPolicy
from syncd.testing.sandbox import Sandbox
from tests.fixtures.publishing import (
    SandboxFactory,
    client_settings,
    listing_for,
    tap,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = RetryPolicy(
    max_attempts=6, max_seconds=20.0, backoff_initial_s=0.05, backoff_max_s=0.3
)


# -- the rig ----------------------------------------------------------------------


class Rig:
    """One sandbox account, its channel client and a pusher."""

    def __init__(
        self,
        sb: Sandbox,
        name: str,
        channel: Channel,
        pusher: AccountPusher,
        sink: MemorySink,
        listings: list[dict[str, Any]],
    ) -> None:
        self.sb, self.name, self.channel, self.pusher = sb, name, channel, pusher
        self.sink, self.listings = sink, listings
        self.account = pusher.account
        self._offset = 0

    def offer(self, i: int, quantity: int) -> int:
        lst = self.listings[i]
        ref = listing_ref(lst)
        off = self._offset
        self._offset += 1
        self.pusher.offer(
            Desired(
                f"{self.account}/{ref}",
                lst,
                ref,
                f"SKU-{i:04d}",
                quantity,
                int(time.time() * 1000),
                [off],
            )
        )
        return off

    def key(self, i: int) -> str:
        return self.sb.listing_key(self.sb.accounts[self.name], self.listings[i])

    async def idle(self, within: float = 20.0) -> None:
        await wait_until(lambda: self.pusher.idle, within, f"{self.account} idle")

    async def close(self) -> None:
        await self.pusher.stop()
        await self.channel.close()


async def rig(
    sb: Sandbox,
    *,
    n: int = 10,
    stock: int = 10,
    name: str = "acct",
    settings: Any = None,
    limits: dict[str, Any] | None = None,
    acked: dict[int, int] | None = None,
    retry: RetryPolicy = FAST_RETRY,
    retry_pass_s: float = 0.0,
    start_now: bool = True,
    sink: MemorySink | None = None,
) -> Rig:
    creds = sb.add_account(name)
    listings = [listing_for(sb.platform, i, creds) for i in range(n)]
    for lst in listings:
        sb.add_listing(name, lst, stock)
    account = f"{sb.platform}:{name}"
    cfg_settings = client_settings(creds, **(settings or {}))
    channel = make_channel(sb.platform, account, cfg_settings, MemoryTokenStore())
    lim = AccountLimits.from_settings(
        account, sb.platform, {**cfg_settings, **(limits or {})}, PublishConfig()
    )
    sink = sink or MemorySink()
    acked_map = {f"{account}/{listing_ref(listings[i])}": q for i, q in (acked or {}).items()}
    pusher = AccountPusher(
        account,
        0,
        channel,
        make_limiter(lim),
        lim,
        retry,
        sink,
        acked=acked_map,
        retry_pass_s=retry_pass_s,
    )
    r = Rig(sb, name, channel, pusher, sink, listings)
    if start_now:
        pusher.start()
    return r


# -- ordering ---------------------------------------------------------------------------


async def test_backlog_sends_stock_outs_then_decreases_then_increases(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(
        sb,
        n=10,
        settings={"batch_size": 2},
        limits={"rate_per_s": 20},
        acked={i: 10 for i in range(10)},
        start_now=False,
    )
    seen = tap(sb, "acct")
    for i in range(6):
        r.offer(i, 20 + i)  # increases, first in the topic
    r.offer(6, 5)  # a decrease
    r.offer(7, 0)  # a stock-out
    r.offer(8, 15)
    r.offer(8, 0)  # increase then drop to zero: only the zero goes, with the stock-outs
    r.offer(9, 3)  # a decrease
    r.pusher.start()
    await r.idle()
    keys = [k for k, _ in seen]
    expected = [7, 8, 6, 9, 0, 1, 2, 3, 4, 5]
    assert keys == [r.key(i) for i in expected]
    assert dict(seen) == {
        r.key(i): q for i, q in [(7, 0), (8, 0), (6, 5), (9, 3), *[(i, 20 + i) for i in range(6)]]
    }
    assert sb.stats("acct")["requests"] == 5  # batches of 2, in class order
    assert sorted(r.sink.resolved) == list(range(11))
    await r.close()


async def test_a_stock_out_arriving_mid_backlog_overtakes_pending_increases(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("shopee")
    r = await rig(
        sb,
        n=12,
        settings={"batch_size": 1},
        limits={"rate_per_s": 10},
        acked={i: 10 for i in range(12)},
        start_now=False,
    )
    seen = tap(sb, "acct")
    for i in range(11):
        r.offer(i, 50)
    r.pusher.start()
    await wait_until(lambda: len(seen) >= 3, what="three increases sent")
    before = len(seen)
    r.offer(11, 0)
    await r.idle()
    pos = [k for k, _ in seen].index(r.key(11))
    assert pos <= before + 1  # next call, or the one after a call already picked
    assert len(seen) == 12 and seen[pos] == (r.key(11), 0)
    await r.close()


# -- coalescing -------------------------------------------------------------------------


async def test_many_records_one_call(sandbox: SandboxFactory) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb, n=5, start_now=False)
    for q in range(50):
        for i in range(5):
            r.offer(i, q)
    r.pusher.start()
    await r.idle()
    stats = sb.stats("acct")
    assert stats["requests"] == 1
    assert stats["updates"] == {r.key(i): 1 for i in range(5)}
    assert all(sb.stock("acct", lst) == 49 for lst in r.listings)
    assert sorted(r.sink.resolved) == list(range(250))
    assert r.pusher.counts["coalesced"] == 245
    await r.close()


async def test_records_arriving_during_a_call_join_the_next_one(sandbox: SandboxFactory) -> None:
    sb = await sandbox("wayfair")
    r = await rig(sb, n=3, settings={"batch_size": 10})
    sb.inject("acct", "slow", listing=r.listings[0], delay_s=0.5, count=1)
    r.offer(0, 1)
    await wait_until(lambda: r.pusher.inflight, what="first call in flight")
    for q in range(2, 30):
        for i in range(3):
            r.offer(i, q)
    await r.idle()
    # listing 0: the slow call, then one call with its newest quantity; 1 and 2: one call
    assert sb.stats("acct")["updates"] == {r.key(0): 2, r.key(1): 1, r.key(2): 1}
    assert sb.stats("acct")["by_path"].get("/v1/graphql") == 3
    assert all(sb.stock("acct", lst) == 29 for lst in r.listings)
    await r.close()


async def test_a_quantity_equal_to_the_acknowledged_one_is_not_sent(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    r = await rig(sb, n=3, acked={0: 7, 1: 7, 2: 7}, start_now=False)
    r.offer(0, 7)
    r.offer(1, 9)
    r.offer(1, 7)  # back where it was before anything went out
    r.offer(2, 8)
    r.pusher.start()
    await r.idle()
    assert sb.stats("acct")["updates"] == {r.key(2): 1}
    assert sorted(r.sink.resolved) == [0, 1, 2, 3]
    await r.close()


# -- failures and retries ---------------------------------------------------------------


async def test_after_retryable_faults_clear_every_listing_shows_the_newest_quantity(
    sandbox: SandboxFactory,
) -> None:
    rigs: list[tuple[Rig, int]] = []  # (rig, throttling answers injected)
    shopee = await sandbox("shopee")
    r = await rig(shopee, n=4, settings={"batch_size": 1})
    shopee.inject("acct", "http_error", status=503, count=2)
    shopee.inject("acct", "http_error", status=501, count=1)
    rigs.append((r, 0))
    lazada = await sandbox("lazada")
    r = await rig(lazada, n=4, settings={"batch_size": 2})
    lazada.inject("acct", "throttle", retry_after_s=0.2, count=2)
    lazada.inject("acct", "platform_error", count=1)
    rigs.append((r, 2))
    wayfair = await sandbox("wayfair")
    r = await rig(wayfair, n=4, settings={"timeout_s": 0.5, "batch_size": 4})
    wayfair.inject("acct", "timeout", seconds=2, count=1)
    rigs.append((r, 0))
    shopify = await sandbox("shopify")
    r = await rig(shopify, n=4, settings={"batch_size": 3})
    shopify.inject("acct", "throttle", retry_after_s=0.2, count=1)
    shopify.inject("acct", "platform_error", count=1)
    rigs.append((r, 1))
    try:
        for r, _ in rigs:
            for q in (3, 8, 5):
                for i in range(4):
                    r.offer(i, q + i)
        await asyncio.gather(*(r.idle(30) for r, _ in rigs))
        for r, throttles in rigs:
            assert [r.sb.stock("acct", lst) for lst in r.listings] == [5, 6, 7, 8], r.account
            failed = [x for x in r.sink.results if not x["ok"]]
            assert failed, r.account
            assert all(x["retriable"] and not x["final"] for x in failed), r.account
            last = {x["listing_ref"]: x for x in r.sink.results}
            assert all(x["ok"] and x["final"] for x in last.values()), r.account
            assert sorted(r.sink.resolved) == list(range(12))
            assert r.sb.stats("acct")["throttled"] == throttles  # only the injected ones
    finally:
        for r, _ in rigs:
            await r.close()


async def test_a_permanent_failure_is_recorded_once_and_blocks_nothing(
    sandbox: SandboxFactory,
) -> None:
    shopee = await sandbox("shopee")
    sink = MemorySink()
    a = await rig(shopee, n=4, settings={"batch_size": 1}, sink=sink, start_now=False)
    ghost = {"item_id": 999999, "model_id": 0}  # not a listing of this shop
    ghost_ref = listing_ref(ghost)
    lazada = await sandbox("lazada")
    b = await rig(lazada, n=3, sink=sink, start_now=False)
    a.pusher.offer(Desired(f"{a.account}/{ghost_ref}", ghost, ghost_ref, "GHOST", 0, None, [100]))
    for i in range(4):
        a.offer(i, 20 + i)
    for i in range(3):
        b.offer(i, 30 + i)
    a.pusher.start()
    b.pusher.start()
    await a.idle()
    await b.idle()
    ghost_results = sink.for_ref(ghost_ref)
    assert len(ghost_results) == 1  # not retried
    (g,) = ghost_results
    assert (g["ok"], g["final"], g["retriable"], g["attempt"]) == (False, True, False, 1)
    assert g["code"] and g["http_status"] is not None and g["quantity"] == 0
    assert 100 in sink.resolved  # handed over: its offset may be committed
    assert [shopee.stock("acct", lst) for lst in a.listings] == [20, 21, 22, 23]
    assert [lazada.stock("acct", lst) for lst in b.listings] == [30, 31, 32]
    assert not a.pusher.parked  # permanent: only a newer record sends it again
    await a.close()
    await b.close()


async def test_retries_run_out_then_the_retry_pass_sends_the_newest(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("lazada")
    retry = RetryPolicy(max_attempts=3, max_seconds=5.0, backoff_initial_s=0.02, backoff_max_s=0.05)
    r = await rig(sb, n=2, retry=retry, retry_pass_s=0.5)
    sb.inject("acct", "http_error", status=502)  # until cleared
    r.offer(0, 4)
    r.offer(1, 6)
    await wait_until(lambda: len(r.pusher.parked) == 2, what="both parked")
    finals = [x for x in r.sink.results if x["final"]]
    assert len(finals) == 2 and all(not x["ok"] and x["attempt"] == 3 for x in finals)
    assert sorted(r.sink.resolved) == [0, 1]  # handed over
    r.offer(1, 9)  # a newer record replaces the parked quantity
    sb.clear("acct")
    await wait_until(lambda: r.pusher.idle and not r.pusher.parked, what="retry pass")
    assert [sb.stock("acct", lst) for lst in r.listings] == [4, 9]
    await r.close()


async def test_cancellation_is_never_retried_or_swallowed(sandbox: SandboxFactory) -> None:
    sb = await sandbox("wayfair")
    slow_retry = RetryPolicy(
        max_attempts=50, max_seconds=600.0, backoff_initial_s=5.0, backoff_max_s=5.0
    )
    r = await rig(sb, n=2, settings={"timeout_s": 30.0, "batch_size": 1}, retry=slow_retry)
    sb.inject("acct", "timeout", seconds=30, listing=r.listings[0])
    sb.inject("acct", "http_error", status=500, listing=r.listings[1])
    r.offer(0, 1)
    r.offer(1, 2)
    await wait_until(lambda: len(r.sink.results) >= 1, what="one failed attempt")
    t0 = time.monotonic()
    await r.pusher.stop()  # one call hangs, the other sleeps in backoff
    assert time.monotonic() - t0 < 2.0  # not the 30 s hang, nor the 5 s backoff
    assert r.pusher.error() is None
    assert r.sink.resolved == []  # nothing acknowledged: nothing may be committed
    assert not any(x["ok"] for x in r.sink.results)
    await r.channel.close()


# -- limits -------------------------------------------------------------------------------


async def test_shopify_follows_its_cost_bucket_without_being_throttled(
    sandbox: SandboxFactory,
) -> None:
    sb = await sandbox("shopify", bucket_size=40, restore_rate=50)  # 4 calls, then 5/s
    r = await rig(sb, n=20, settings={"batch_size": 1})
    for i in range(20):
        r.offer(i, i + 1)
    t0 = time.monotonic()
    await r.idle()
    took = time.monotonic() - t0
    stats = sb.stats("acct")
    assert stats["throttled"] == 0
    assert stats["requests"] == 20
    assert took >= (20 - 4) / 5 * 0.9
    assert [sb.stock("acct", lst) for lst in r.listings] == list(range(1, 21))
    await r.close()


async def test_request_limiter_keeps_rate_plus_burst_per_second() -> None:
    lim = RequestLimiter(20.0, burst=2)
    stamps = []
    t0 = time.monotonic()
    for _ in range(42):
        await lim.acquire()
        stamps.append(time.monotonic())
    took = time.monotonic() - t0
    assert 1.9 <= took <= 4.0  # 2 at once, then 40 at 20/s (upper bound: a busy machine)
    most = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert most <= 20 + 2


async def test_hold_pauses_every_caller() -> None:
    lim = RequestLimiter(1000.0)
    lim.hold(0.3)
    t0 = time.monotonic()
    await lim.acquire()
    assert time.monotonic() - t0 >= 0.29
    cost = CostLimiter()
    cost.hold(0.2)
    t0 = time.monotonic()
    await cost.acquire()
    assert time.monotonic() - t0 >= 0.19


def test_default_limits_per_platform() -> None:
    pub = PublishConfig()
    lazada = AccountLimits.from_settings("lazada:x", "lazada", {}, pub)
    assert (lazada.rate_per_s, lazada.burst, lazada.cost_bucket) == (50.0, 1, False)
    assert AccountLimits.from_settings("shopee:x", "shopee", {}, pub).rate_per_s == 5.0
    assert AccountLimits.from_settings("wayfair:x", "wayfair", {}, pub).rate_per_s == 5.0
    shopify = AccountLimits.from_settings("shopify:x", "shopify", {}, pub)
    assert (shopify.rate_per_s, shopify.cost_bucket) == (None, True)
    own = AccountLimits.from_settings(
        "shopee:x", "shopee", {"rate_per_s": 12, "burst": 3, "max_in_flight": 2}, pub
    )
    assert (own.rate_per_s, own.burst, own.max_in_flight, own.source) == (12.0, 3, 2, "config")


# -- configuration ------------------------------------------------------------------------


def test_publish_table_is_parsed_and_checked() -> None:
    from syncd import config
    from syncd.errors import ConfigError

    cfg = config.parse(
        {"publish": {"token_store": "/tmp/t.json", "max_in_flight": 3, "retry_pass_s": 2}},
        env={},
    )
    assert cfg.publish == PublishConfig(
        token_store="/tmp/t.json", max_in_flight=3, retry_pass_s=2.0
    )
    assert config.parse({}, env={}).publish == PublishConfig()
    assert cfg.topics.acked == "syncd.acked"
    for bad, key in [
        ({"max_attempts": 0}, "publish.max_attempts"),  # removed: the rows carry the bounds
        ({"max_in_flight": 0}, "publish.max_in_flight"),
        ({"stop_deadline_s": -1}, "publish.stop_deadline_s"),
        ({"token_store": 5}, "publish.token_store"),
        ({"retries": 5}, "publish.retries"),
    ]:
        with pytest.raises(ConfigError) as err:
            config.parse({"publish": bad}, env={})
        assert err.value.key == key

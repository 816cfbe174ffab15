"""Wayfair client: save mutation, batching, submission parsing; then the same client against
the Wayfair sandbox over real HTTP (async apply, token cached per lifetime, faults)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from syncd.channels.base import INVALID_LISTING, listing_ref
from syncd.channels.tokens import MemoryTokenStore
from syncd.channels.wayfair import (
    SUBMISSION_ERROR,
    WayfairChannel,
    build_save,
    parse_save,
)
from syncd.testing.sandbox import Sandbox
from tests.fixtures.channels import SandboxFactory, answer, upd

SETTINGS = {"client_id": "c", "client_secret": "s", "supplier_id": 1234}


def channel(**extra: object) -> WayfairChannel:
    return WayfairChannel("wayfair:main", {**SETTINGS, **extra}, MemoryTokenStore())


def test_save_request_shape() -> None:
    batch = [
        upd({"supplier_part_number": "ABC-1"}, 7),
        upd({"supplier_part_number": "ABC-2", "supplier_id": 99, "discontinued": True}, 0),
    ]
    req = build_save(batch, "DIFFERENTIAL", 1234)
    q = req["query"]
    assert "mutation save($inventory: [inventoryInput]!)" in q
    assert "save(inventory: $inventory, feedKind: DIFFERENTIAL)" in q
    assert "id handle status submittedAt completedAt errors { key }" in q
    assert req["variables"]["inventory"] == [
        {"supplier_id": 1234, "supplier_part_number": "ABC-1", "quantity_on_hand": 7},
        {
            "supplier_id": 99,
            "supplier_part_number": "ABC-2",
            "quantity_on_hand": 0,
            "discontinued": True,
        },
    ]
    assert "feedKind: TRUE_UP" in build_save(batch, "TRUE_UP", 1)["query"]


def test_batches_default_200_and_configurable() -> None:
    updates = [upd({"supplier_part_number": f"P{n}"}, n) for n in range(450)]
    assert [len(b) for b in channel().batches(updates)] == [200, 200, 50]
    assert [len(b) for b in channel(batch_size=100).batches(updates)] == [100] * 4 + [50]
    no_supplier = WayfairChannel(
        "wayfair:x", {"client_id": "c", "client_secret": "s"}, MemoryTokenStore()
    )
    assert no_supplier.batches([upd({"supplier_part_number": "P"}, 1)]) == [
        [upd({"supplier_part_number": "P"}, 1)]
    ]


BATCH = [upd({"supplier_part_number": "ABC-1"}, 7), upd({"supplier_part_number": "ABC-2"}, 3)]
SUBMISSION = {
    "id": 481516,
    "handle": "9f0e-aa",
    "status": "PROCESSING",
    "submittedAt": "2026-11-23 10:00:00.000000",
    "completedAt": None,
}


def test_parse_accepted_submission() -> None:
    body = {"data": {"inventory": {"save": {**SUBMISSION, "errors": []}}}}
    out = parse_save(BATCH, answer(200, body))
    assert all(o.ok for o in out)
    assert out[0].raw == {"submission": SUBMISSION}


def test_parse_submission_errors_by_key() -> None:
    body = {"data": {"inventory": {"save": {**SUBMISSION, "errors": [{"key": "ABC-2"}]}}}}
    ok, bad = parse_save(BATCH, answer(200, body))
    assert ok.ok
    assert not bad.ok and bad.code == SUBMISSION_ERROR and bad.message == "ABC-2"
    other = {"data": {"inventory": {"save": {**SUBMISSION, "errors": [{"key": "feed"}]}}}}
    assert [o.ok for o in parse_save(BATCH, answer(200, other))] == [False, False]


def test_parse_top_level_graphql_errors_and_http() -> None:
    body = {"errors": [{"message": "Internal server error"}], "data": None}
    out = parse_save(BATCH, answer(200, body))
    assert [(o.ok, o.code, o.message) for o in out] == [(False, None, "Internal server error")] * 2
    coded = {"errors": [{"message": "nope", "extensions": {"code": "FORBIDDEN"}}]}
    assert parse_save(BATCH, answer(200, coded))[0].code == "FORBIDDEN"
    throttled = parse_save(BATCH, answer(429, {"message": "slow down"}, {"Retry-After": "52"}))
    assert throttled[0].retry_after_s == 52.0 and throttled[0].http_status == 429


async def test_invalid_listing_is_not_sent() -> None:
    ch = WayfairChannel("wayfair:x", {"client_id": "c", "client_secret": "s"}, MemoryTokenStore())
    out = await ch.push([upd({"supplier_part_number": "P"}, 1)])
    assert out[0].code == INVALID_LISTING
    await ch.close()


# -- against the Wayfair sandbox (real HTTP on 127.0.0.1) ------------------------

P1 = {"supplier_part_number": "WF-CHAIR-1"}
P2 = {"supplier_part_number": "WF-TABLE-2"}
P3 = {"supplier_part_number": "WF-LAMP-3"}


async def wayfair_setup(
    sandbox_factory: SandboxFactory,
    store: MemoryTokenStore | None = None,
    clock: Callable[[], float] | None = None,
    **start: object,
) -> tuple[Sandbox, WayfairChannel, MemoryTokenStore]:
    sb = await sandbox_factory("wayfair", **start)
    creds = sb.add_account("main")
    for lst in (P1, P2, P3):
        sb.add_listing("main", lst, stock=5)
    store = store if store is not None else MemoryTokenStore()
    ch = WayfairChannel("wayfair:main", creds, store, clock=clock)
    return sb, sandbox_factory.closing(ch), store


async def test_sandbox_save_and_read_back(sandbox_factory: SandboxFactory) -> None:
    _, ch, _ = await wayfair_setup(sandbox_factory)
    out = await ch.push([upd(P1, 7), upd(P2, 0)])
    assert all(o.ok for o in out)
    assert out[0].raw is not None and out[0].raw["submission"]["status"] == "COMPLETE"
    got = await ch.read_stock([P1, P2, P3, {"supplier_part_number": "NOPE"}])
    assert got == {listing_ref(P1): 7, listing_ref(P2): 0, listing_ref(P3): 5}


async def test_sandbox_token_fetched_once_per_lifetime(sandbox_factory: SandboxFactory) -> None:
    now = [time.time()]
    sb, ch, store = await wayfair_setup(sandbox_factory, clock=lambda: now[0])
    for n in range(5):
        assert (await ch.push([upd(P1, n)]))[0].ok
    await ch.read_stock([P1])
    await asyncio.gather(*(ch.push([upd(P2, n)]) for n in range(5)))
    stats = sb.stats("main")
    assert stats["token_requests"] == 1
    assert stats["by_path"]["/v1/graphql"] == 11
    token = store.get("wayfair:main")
    assert token is not None
    assert token["refresh_at"] - token["obtained_at"] == pytest.approx(43200)  # half of 24 h
    # Another process (or a restart) with the same store reuses the cached token.
    other = sandbox_factory.closing(WayfairChannel("wayfair:main", sb.credentials("main"), store))
    assert (await other.push([upd(P3, 1)]))[0].ok
    assert sb.stats("main")["token_requests"] == 1
    # Past half-life the next call renews it, once.
    now[0] += 43200 + 1
    assert (await ch.push([upd(P1, 9)]))[0].ok
    assert (await ch.push([upd(P1, 8)]))[0].ok
    assert sb.stats("main")["token_requests"] == 2


async def test_sandbox_unauthorized_refetches_once(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await wayfair_setup(sandbox_factory)
    assert (await ch.push([upd(P1, 1)]))[0].ok
    sb.inject("main", "token_expired", count=1)
    out = await ch.push([upd(P1, 2)])
    assert out[0].ok and sb.stock("main", P1) == 2
    assert sb.stats("main")["token_requests"] == 2
    sb.inject("main", "token_expired", count=2)  # refused again after the new token
    out = await ch.push([upd(P1, 3)])
    assert (out[0].ok, out[0].http_status, out[0].message) == (False, 401, "Unauthorized")
    assert sb.stats("main")["token_requests"] == 3


async def test_sandbox_submission_errors_and_assumed_holds(sandbox_factory: SandboxFactory) -> None:
    sb, ch, _ = await wayfair_setup(sandbox_factory)
    sb.inject("main", "unknown_listing", listing=P2, count=1)
    a, b = await ch.push([upd(P1, 4), upd(P2, 4)])
    assert a.ok and not b.ok
    assert (b.code, b.message) == (SUBMISSION_ERROR, "WF-TABLE-2")

    sb.inject("main", "forced_zero", listing=P3)
    out = await ch.push([upd(P3, 6)])
    assert out[0].ok  # accepted: only the read-back shows the hold
    assert (await ch.read_stock([P3])) == {listing_ref(P3): 0}

    sb.inject("main", "throttle", count=1, retry_after_s=2)
    out = await ch.push([upd(P1, 1)])
    assert (out[0].http_status, out[0].retry_after_s) == (429, 2.0)
    assert out[0].message == "Too Many Requests"

    sb.inject("main", "platform_error", count=1)
    out = await ch.push([upd(P1, 1)])
    assert (out[0].code, out[0].message) == ("INTERNAL_SERVER_ERROR", "Internal server error")


async def test_sandbox_async_apply_shows_on_read_back_later(
    sandbox_factory: SandboxFactory,
) -> None:
    _, ch, _ = await wayfair_setup(sandbox_factory, apply_delay_s=0.3)
    out = await ch.push([upd(P1, 9)])
    assert out[0].ok and out[0].raw is not None
    assert out[0].raw["submission"]["status"] == "PROCESSING"
    assert (await ch.read_stock([P1])) == {listing_ref(P1): 5}
    await asyncio.sleep(0.4)
    assert (await ch.read_stock([P1])) == {listing_ref(P1): 9}


async def test_sandbox_bad_client_credentials(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory("wayfair")
    creds = sb.add_account("main")
    settings = {**creds, "client_secret": "wrong"}
    ch = sandbox_factory.closing(WayfairChannel("wayfair:main", settings, MemoryTokenStore()))
    out = await ch.push([upd(P1, 1)])
    assert not out[0].ok and out[0].http_status == 401 and out[0].code == "access_denied"
    assert out[0].raw is not None and out[0].raw["stage"] == "token"
    assert "wrong" not in (out[0].message or "")

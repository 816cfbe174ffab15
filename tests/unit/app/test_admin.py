"""The admin HTTP server (syncd/admin.py, docs/admin.md) over in-memory pushers.

The pushers are real ``AccountPusher`` objects that are never started (no sender
task): the tests check the HTTP layer and what Retry / Resolve change in them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from syncd.app.admin import ROUTES, Admin
from syncd.channels.base import PushOutcome, StockUpdate
from syncd.config import AdminConfig, PublishConfig
from syncd.config.error_table import default_table
from syncd.publish.limits import AccountLimits, RequestLimiter
from syncd.publish.pusher import AccountPusher, Desired
from syncd.testing.fakes import FakeChannel, MemorySink

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "lazada:sg-main"
TOKEN = "s3cret-admin-token-value"


def never_pushed(batch: Sequence[StockUpdate]) -> list[PushOutcome]:
    raise AssertionError("the pusher is never started here")


class Publisher:
    """Publisher-like: what the admin server reads (``pushers``)."""

    def __init__(self) -> None:
        self.pushers: dict[str, AccountPusher] = {}
        self.written: list[tuple[str, dict[str, Any]]] = []

    async def write_actions(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.written.extend(records)


def make_pusher(pub: Publisher) -> AccountPusher:
    limits = AccountLimits.from_settings(ACCOUNT, "lazada", {}, PublishConfig())
    pusher = AccountPusher(
        ACCOUNT,
        0,
        FakeChannel(never_pushed, platform="lazada", account=ACCOUNT),
        RequestLimiter(limits.rate_per_s or 50.0),
        limits,
        None,
        MemorySink(),
        actions=pub.write_actions,
    )
    pub.pushers[ACCOUNT] = pusher
    return pusher


def give_up(pusher: AccountPusher, ref: str, quantity: int) -> str:
    """A listing whose retries ran out: kept for the retry pass, its action opened."""
    dec = default_table().classify(
        "lazada", "channel_timeout", sku=f"SKU-{ref}", listing=ref, account=ACCOUNT
    )
    key = f"{ACCOUNT}/{ref}"
    pusher.parked[key] = Desired(key, {"item_id": ref}, ref, f"SKU-{ref}", quantity, None)
    return pusher.book.open(dec, ref, 1_000)


async def client_for(admin: Admin) -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = TestClient(TestServer(admin.app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def pub() -> Publisher:
    return Publisher()


@pytest.fixture
async def client(pub: Publisher) -> AsyncIterator[TestClient[Any, Any]]:
    make_pusher(pub)
    async for c in client_for(Admin(AdminConfig(token=TOKEN), [pub])):
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_get_actions_lists_the_open_action_with_its_listings(
    client: TestClient[Any, Any], pub: Publisher
) -> None:
    action_id = give_up(pub.pushers[ACCOUNT], "L1", 7)
    give_up(pub.pushers[ACCOUNT], "L2", 3)
    r = await client.get("/actions")
    assert r.status == 200
    body = await r.json()
    [a] = body["actions"]
    assert a["id"] == action_id == f"{ACCOUNT}/platform-unreachable"
    assert a["state"] == "open"
    assert a["listings"] == ["L1", "L2"]
    assert a["count"] == 2
    assert "Press Retry" in a["hint"] or "press Retry" in a["hint"]
    assert a["age_s"] >= 0


async def test_mutations_need_the_right_bearer_token(
    client: TestClient[Any, Any], pub: Publisher
) -> None:
    action_id = give_up(pub.pushers[ACCOUNT], "L1", 7)
    for what in ("retry", "resolve"):
        r = await client.post(f"/actions/{action_id}/{what}")
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await r.json())["error"] == "unauthorized"
        r = await client.post(
            f"/actions/{action_id}/{what}", headers={"Authorization": "Bearer wrong"}
        )
        assert r.status == 401
        assert TOKEN not in await r.text()
    assert pub.pushers[ACCOUNT].book.open_actions()  # nothing changed
    assert f"{ACCOUNT}/L1" in pub.pushers[ACCOUNT].parked
    assert pub.written == []


async def test_no_token_configured_answers_403_with_a_reason(pub: Publisher) -> None:
    pusher = make_pusher(pub)
    action_id = give_up(pusher, "L1", 7)
    async for c in client_for(Admin(AdminConfig(token=None), [pub])):
        for what in ("retry", "resolve"):
            r = await c.post(f"/actions/{action_id}/{what}", headers=AUTH)
            assert r.status == 403
            body = await r.json()
            assert body["error"] == "forbidden"
            assert "token_env" in body["reason"]
        assert (await c.get("/actions")).status == 200
    assert pusher.book.open_actions()


async def test_retry_requeues_the_newest_quantity_and_marks_the_action_retried(
    client: TestClient[Any, Any], pub: Publisher
) -> None:
    pusher = pub.pushers[ACCOUNT]
    action_id = give_up(pusher, "L1", 7)
    give_up(pusher, "L2", 3)
    pusher.offer(Desired(f"{ACCOUNT}/L2", {"item_id": "L2"}, "L2", "SKU-L2", 5, None))
    r = await client.post(f"/actions/{action_id}/retry", headers=AUTH)
    assert r.status == 200
    body = await r.json()
    assert body["listings"]["requeued"] == ["L1"]
    assert body["listings"]["already_queued"] == ["L2"]  # a newer record came meanwhile
    assert body["action"]["state"] == "retried"
    assert pusher.pending[f"{ACCOUNT}/L1"].quantity == 7
    assert pusher.pending[f"{ACCOUNT}/L2"].quantity == 5  # the newest, not the failed one
    assert pusher.parked == {}
    [(key, value)] = pub.written
    assert key == action_id and value["state"] == "retried"
    [listed] = (await (await client.get("/actions")).json())["actions"]
    assert listed["state"] == "retried" and listed["retried_at"] is not None


async def test_resolve_marks_the_action_resolved(
    client: TestClient[Any, Any], pub: Publisher
) -> None:
    pusher = pub.pushers[ACCOUNT]
    action_id = give_up(pusher, "L1", 7)
    r = await client.post(f"/actions/{action_id}/resolve", headers=AUTH)
    assert r.status == 200
    assert (await r.json())["action"]["state"] == "resolved"
    assert pusher.book.open_actions() == []
    assert [v["state"] for _k, v in pub.written] == ["resolved"]
    r = await client.post(f"/actions/{action_id}/retry", headers=AUTH)
    assert r.status == 409
    r = await client.post(f"/actions/{ACCOUNT}/no-such-action/retry", headers=AUTH)
    assert r.status == 404


async def test_page_lists_the_open_action_with_hint_listings_and_buttons(
    client: TestClient[Any, Any], pub: Publisher
) -> None:
    pusher = pub.pushers[ACCOUNT]
    action_id = give_up(pusher, "L1", 7)
    r = await client.get("/")
    assert r.status == 200
    assert r.content_type == "text/html"
    page = await r.text()
    assert f"<h2>{ACCOUNT}</h2>" in page
    assert f'data-action="{action_id}"' in page
    assert "could not reach Lazada" in page
    assert "L1" in page
    assert ">Retry</button>" in page and ">Resolve</button>" in page
    assert "active" in page and "queue depth: 0" in page and "calls/s" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # works offline
    assert TOKEN not in page


async def test_no_response_carries_the_token(client: TestClient[Any, Any], pub: Publisher) -> None:
    action_id = give_up(pub.pushers[ACCOUNT], "L1", 7)
    bodies = [await (await client.get(p)).text() for p in ("/", "/actions")]
    for what in ("retry", "resolve"):
        for headers in ({}, {"Authorization": "Bearer nope"}, AUTH):
            bodies.append(
                await (await client.post(f"/actions/{action_id}/{what}", headers=headers)).text()
            )
    assert all(TOKEN not in b for b in bodies)
    assert all(TOKEN not in str(v) for _k, v in pub.written)


async def test_server_binds_a_free_port_and_stops(pub: Publisher) -> None:
    make_pusher(pub)
    admin = Admin(AdminConfig(port=0, token=TOKEN), [pub])
    await admin.start()
    try:
        assert admin.port
        reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
        writer.write(b"GET /actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        await admin.stop()


def test_docs_route_table_equals_the_app_routes() -> None:
    text = (ROOT / "docs" / "admin.md").read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| route"))
    documented = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        method, path = line.split("|")[1].strip().strip("`").split()
        documented.append((method, path))
    app = Admin(AdminConfig(), []).app()
    served = [
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    ]
    assert documented == served == list(ROUTES)

"""Prometheus metrics (syncd/metrics.py, docs/metrics.md).

- the acceptance test: a real ``syncd run`` (both stages, unbounded, a subprocess) against
  the shared broker and two marketplace sandboxes; input events are produced while it
  runs and ``GET /metrics`` is scraped over HTTP until the counters show them: exactly
  the events sent per topic, type and outcome (bad records dead-lettered), desired
  changes, pushes per account and class, the histograms, the consumer lag back at 0, a
  parked account with its open action, and no configured secret anywhere in the scrape;
- :func:`syncd.obs.metrics.record_call` and :func:`syncd.obs.metrics.count_batch` on real values.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dev.kafkaio import create_inputs, produce
from dev.sample import Rec, rfc3339
from syncd.channels.base import PushOutcome, listing_ref
from syncd.config.error_table import default_table
from syncd.obs import metrics
from syncd.publish.pusher import Attempt, Desired
from syncd.testing.sandbox import start
from tests.fixtures.publish_kafka import Setup
from tests.fixtures.publishing import listing_for, wait_until

ROOT = Path(__file__).resolve().parents[3]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (sample name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def by_labels(samples: Samples, name: str, keys: Iterable[str]) -> dict[tuple[str, ...], float]:
    out = {}
    for (n, ls), v in samples.items():
        if n == name:
            d = dict(ls)
            out[tuple(d[k] for k in keys)] = v
    return out


def snapshot(i: int, on_hand: int, at: int, event_id: str) -> Rec:
    sku = f"SKU-{i:04d}"
    ev = {
        "type": "stock.snapshot",
        "event_id": event_id,
        "sku": sku,
        "warehouse": "WH-1",
        "on_hand": on_hand,
        "as_of": rfc3339(at),
    }
    return Rec("stock", sku.encode(), orjson.dumps(ev))


def linked(account: str, listing: dict[str, Any], i: int) -> Rec:
    ev = {
        "type": "listing.linked",
        "event_id": f"cat-{account}-{i}",
        "channel": account,
        "listing": listing,
        "sku": f"SKU-{i:04d}",
    }
    return Rec("catalog", f"{account}/{listing_ref(listing)}".encode(), orjson.dumps(ev))


def inputs(listings: dict[str, list[dict[str, Any]]]) -> tuple[list[Rec], dict[Any, int]]:
    """The records to send and the events counters they must move (topic role, type,
    outcome) -> n."""
    now = int(time.time() * 1000)
    recs = [linked(a, lst, i) for a, lists in listings.items() for i, lst in enumerate(lists)]
    recs += [snapshot(i, 20, now, f"snap-{i}") for i in range(3)]
    recs.append(snapshot(0, 20, now, "snap-0"))  # the producer retried: a duplicate
    recs.append(snapshot(1, 99, now - 60_000, "snap-old"))  # older than the one applied
    adjusted = {
        "type": "stock.adjusted",
        "event_id": "adj-1",
        "sku": "SKU-0002",
        "warehouse": "WH-1",
        "delta": -2,
        "as_of": rfc3339(now + 1000),
    }
    recs.append(Rec("stock", b"SKU-0002", orjson.dumps(adjusted)))
    placed = {
        "type": "order.placed",
        "event_id": "ord-1",
        "order_id": "O-1",
        "channel": next(iter(listings)),
        "placed_at": rfc3339(now + 2000),
        "lines": [{"sku": "SKU-0000", "qty": 1, "warehouse": "WH-1"}],
    }
    recs += [Rec("orders", b"O-1", orjson.dumps(placed))] * 2  # the second: a duplicate
    recs.append(Rec("stock", b"SKU-0001", b"{not json"))
    recs.append(Rec("stock", b"SKU-0001", orjson.dumps({**adjusted, "type": "stock.moved"})))
    bad_order = {**placed, "event_id": "ord-bad", "lines": [{"sku": "SKU-0000", "qty": 0}]}
    recs.append(Rec("orders", b"O-bad", orjson.dumps(bad_order)))
    expected = {
        ("catalog", "listing.linked", "applied"): sum(len(v) for v in listings.values()),
        ("stock", "stock.snapshot", "applied"): 3,
        ("stock", "stock.snapshot", "duplicate"): 1,
        ("stock", "stock.snapshot", "stale"): 1,
        ("stock", "stock.adjusted", "applied"): 1,
        ("orders", "order.placed", "applied"): 1,
        ("orders", "order.placed", "duplicate"): 1,
        ("stock", "unknown", "dead_lettered"): 2,
        ("orders", "unknown", "dead_lettered"): 1,
        ("order_lines", "order_view", "applied"): 1,
    }
    return recs, expected


@pytest.mark.kafka
@pytest.mark.timeout(120)
async def test_scrape_during_a_run_moves_with_the_events_sent(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    shopee = await start("shopee")
    lazada = await start("lazada")
    proc: asyncio.subprocess.Process | None = None
    log = tmp_path / "syncd.log"
    try:
        st = Setup(tmp_path, kafka_bootstrap, partitions=2)
        listings: dict[str, list[dict[str, Any]]] = {}
        for sb, name in ((shopee, "main"), (lazada, "main"), (shopee, "away")):
            creds = sb.add_account(name)
            lists = [listing_for(sb.platform, i, creds) for i in range(3)]
            for lst in lists:
                sb.add_listing(name, lst, 0)
            listings[st.account(sb, name, batch_size=1)] = lists
        shopee.inject("away", "vacation")  # every update refused: the account is parked
        st.env["SYNCD_T_ADMIN_TOKEN"] = "admin-token-" + os.urandom(8).hex()
        path, cfg = st.write('[admin]\nport = 0\ntoken_env = "SYNCD_T_ADMIN_TOKEN"\n')
        await create_inputs(cfg, partitions=1)
        secrets = list(st.env.values())
        assert len(secrets) >= 4  # the admin token and each account's secrets

        out = log.open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "--config",
            str(path),
            "run",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **st.env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
        out.close()  # the child has its own descriptor

        def admin_port() -> int | None:
            for line in log.read_text().splitlines():
                if '"admin_started"' in line:
                    return int(json.loads(line)["port"])
            return None

        await wait_until(lambda: admin_port() is not None, 30, "the admin server")
        url = f"http://127.0.0.1:{admin_port()}/metrics"
        async with aiohttp.ClientSession() as http:

            async def scrape() -> tuple[str, Samples]:
                async with http.get(url) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=")
                    text = await resp.text()
                return text, parse(text)

            _, before = await scrape()
            assert value(before, "syncd_events_total") == 0
            assert value(before, "process_resident_memory_bytes") > 0

            recs, expected = inputs(listings)
            await produce(cfg, recs)
            t = cfg.topics
            topic = {"catalog": t.catalog, "stock": t.stock, "orders": t.orders}
            topic["order_lines"] = t.order_lines
            want = {(topic[r], typ, out): n for (r, typ, out), n in expected.items()}
            main = [a for a in listings if not a.endswith(":away")]

            async def settled() -> tuple[str, Samples]:
                deadline = time.monotonic() + 60
                while True:
                    text, now = await scrape()
                    events = by_labels(now, "syncd_events_total", ("topic", "type", "outcome"))
                    pushed = all(
                        value(now, "syncd_pushes_total", account=a, **{"class": "ok"}) >= 3
                        for a in main
                    )
                    parked = value(now, "syncd_account_parked", account="shopee:away") == 1
                    if events == want and pushed and parked:
                        return text, now
                    assert time.monotonic() < deadline, (events, want, pushed, parked)
                    await asyncio.sleep(0.25)

            text, after = await settled()

        events = by_labels(after, "syncd_events_total", ("topic", "type", "outcome"))
        assert events == want  # exactly the events sent, per topic, type and outcome
        assert value(after, "syncd_desired_changes_total", change="changed") >= 9
        for account in main:
            platform = account.split(":")[0]
            assert value(after, "syncd_pushes_total", account=account, **{"class": "ok"}) >= 3
            assert value(after, "syncd_push_queue_depth", account=account) == 0
            assert value(after, "syncd_account_parked", account=account) == 0
            assert value(after, "syncd_limiter_wait_seconds_count", account=account) >= 3
            assert value(after, "syncd_push_duration_seconds_count", platform=platform) >= 3
            e2e = value(after, "syncd_event_to_channel_seconds_count", platform=platform)
            assert e2e >= 3
            e2e_sum = value(after, "syncd_event_to_channel_seconds_sum", platform=platform)
            assert 0 < e2e_sum / e2e < 30  # produced moments ago, acknowledged since
        away = {"account": "shopee:away"}
        assert value(after, "syncd_pushes_total", **away, **{"class": "park-account"}) >= 1
        assert value(after, "syncd_pushes_total", **away, **{"class": "ok"}) == 0
        assert value(after, "syncd_manual_actions_open", **away, **{"class": "park-account"}) == 1
        assert value(after, "syncd_push_queue_depth", **away) >= 1  # kept for the flush
        for stage in ("compute", "publish"):
            assert value(after, "syncd_changelog_restore_seconds_count", stage=stage) >= 1
        lag = by_labels(after, "syncd_consumer_lag_records", ("topic", "partition"))
        assert lag[t.stock, "0"] == 0 and lag[t.orders, "0"] == 0
        assert {(t.desired, "0"), (t.desired, "1")} <= set(lag)  # the publish consumer
        for secret in secrets:
            assert secret not in text

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await shopee.close()
        await lazada.close()


def _attempt(ok: bool, source_ts: int | None, code: str | None = None) -> Attempt:
    d = Desired("shopee:x/1", {"item_id": 1}, "1", "SKU-1", 5, source_ts)
    o = PushOutcome("1", ok, 200, code, None, None, None)
    dec = None if ok else default_table().classify("shopee", o, account="shopee:x")
    return Attempt(d, o, 1, 120.0, 10_000, True, ok, decision=dec)


def test_record_call_counts_each_update_by_class_and_one_call() -> None:
    before = parse(metrics.exposition().decode())
    attempts = [
        _attempt(True, 7_500),
        _attempt(True, None),
        _attempt(False, 7_500, "error_holiday_mode_change_stock"),
    ]
    metrics.record_call("shopee:x", "shopee", attempts)
    after = parse(metrics.exposition().decode())

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("syncd_pushes_total", account="shopee:x", **{"class": "ok"}) == 2
    assert delta("syncd_pushes_total", account="shopee:x", **{"class": "park-account"}) == 1
    assert delta("syncd_push_duration_seconds_count", platform="shopee") == 1
    assert delta("syncd_push_duration_seconds_sum", platform="shopee") == pytest.approx(0.12)
    # only the acknowledged update that names its source event: 10 000 - 7 500 ms
    assert delta("syncd_event_to_channel_seconds_count", platform="shopee") == 1
    assert delta("syncd_event_to_channel_seconds_sum", platform="shopee") == pytest.approx(2.5)


def test_count_batch_adds_the_batch_counts() -> None:
    before = parse(metrics.exposition().decode())
    events = {
        ("s.stock", "stock.snapshot", "applied"): 4,
        ("s.stock", "unknown", "dead_lettered"): 1,
    }
    metrics.count_batch(events, {("desired", "changed"): 3, ("stock", "applied"): 4})
    after = parse(metrics.exposition().decode())
    for (topic, typ, outcome), n in events.items():
        labels = {"topic": topic, "type": typ, "outcome": outcome}
        assert (
            value(after, "syncd_events_total", **labels)
            - value(before, "syncd_events_total", **labels)
            == n
        )
    changed = {"change": "changed"}
    assert (
        value(after, "syncd_desired_changes_total", **changed)
        - value(before, "syncd_desired_changes_total", **changed)
        == 3
    )

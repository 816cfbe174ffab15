"""Publish-stage benchmark: throughput within limits, calls per event, event-to-channel latency.

    python bench/publish.py [--bootstrap HOST:PORT] [--rate 10] [--batch 20] [--seconds 10]
                            [--events 100000] [--skus 1000] [--eps 1000] [--latency-seconds 10]

Starts a local broker (unless --bootstrap is given) and the four marketplace
sandboxes in this process (127.0.0.1), then measures, in one run:

1. **Throughput within limits.** One account per platform; each sandbox account
   allows ``--rate`` calls/s (Shopify: a cost bucket refilled at ``--rate`` x 10
   points/s, 10 points a call); syncd's limit per account is the same rate with
   burst 1; ``--batch`` updates per call. ``rate x batch x seconds`` desired
   records per account are written to the desired topic, then ``python -m syncd run
   --stage publish --until-caught-up`` sends them. Printed per account: listing
   updates/s sustained (calls/s between the first and last push call x mean
   updates per call), the ceiling (rate x batch), and the throttled answers.
2. **API calls per input event.** ``--events`` input events over ``--skus`` SKUs
   (dev/sample.py; each SKU listed on the four accounts) go through the real
   compute stage (``ComputeStage(until_caught_up=True)``), then the publisher
   (no rate pressure) sends the resulting backlog: calls, listing updates and
   desired records per input event.
3. **Latency.** The compute stage (``python -m syncd run``) and the publisher
   (``python -m syncd run --stage publish``) run as processes while input events are
   produced at ``--eps`` for ``--latency-seconds``; for every quantity the
   sandboxes receive, latency = receipt time - the input record's produce time
   (``source_ts`` of the desired record, joined through push-results). In the
   same run a probe topic measures the bare Kafka produce-to-consume latency.

Goals (issue 3): >= 95% of the ceiling with zero throttled answers; p99
event-to-channel latency <= 3 x the bare Kafka p99 + one sandbox call.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from dev import kafka, sample  # noqa: E402
from dev.kafkaio import (  # noqa: E402
    channel_settings,
    config_head,
    create_inputs,
    produce,
    read_topic,
)
from syncd import config  # noqa: E402
from syncd.channels.base import listing_ref  # noqa: E402
from syncd.compute.stage import ComputeStage  # noqa: E402
from syncd.kafka.clients import ensure_topics  # noqa: E402
from syncd.kafka.partitioning import partition_for  # noqa: E402
from syncd.obs import logs  # noqa: E402
from syncd.publish.stage import PublishService  # noqa: E402
from syncd.testing.sandbox import Sandbox, start  # noqa: E402

PLATFORMS = ("lazada", "shopee", "wayfair", "shopify")
PUSH_PATH = {
    "lazada": "/rest/product/stock/sellable/update",
    "shopee": "/api/v2/product/update_stock",
    "wayfair": "/v1/graphql",
    "shopify": None,  # the GraphQL path carries reads too; all requests are pushes here
}


def listing(platform: str, i: int, creds: dict[str, Any], models: int) -> dict[str, Any]:
    """Listing ``i`` of an account; Shopee listings are ``models`` models per item."""
    if platform == "shopee":
        return {"item_id": 100000 + i // models, "model_id": i % models + 1}
    if platform == "lazada":
        return {"item_id": 200000 + i, "sku_id": 300000 + i, "seller_sku": sample.sku_name(i)}
    if platform == "wayfair":
        return {"supplier_id": creds["supplier_id"], "supplier_part_number": sample.sku_name(i)}
    return {
        "inventory_item_id": f"gid://shopify/InventoryItem/{i + 1}",
        "location_id": "gid://shopify/Location/1",
    }


class Receipts:
    """Taps every sandbox account: (sandbox listing key, quantity) -> wall-clock receipt times."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        self.last = time.monotonic()

    def tap(self, sb: Sandbox, name: str) -> None:
        acc = sb.accounts[name]
        original = acc.received

        def received(key: str, quantity: int) -> None:
            self.times[(f"{sb.platform}:{name}", key, quantity)].append(time.time())
            self.last = time.monotonic()
            original(key, quantity)

        acc.received = received  # type: ignore[method-assign]


class Bench:
    def __init__(self, bootstrap: str, work: Path) -> None:
        self.bootstrap, self.work = bootstrap, work
        self.sandboxes: dict[str, Sandbox] = {}
        self.env: dict[str, str] = {}
        self.receipts = Receipts()
        self._settings: dict[str, dict[str, Any]] = {}

    async def start(self, platforms: tuple[str, ...] = PLATFORMS) -> None:
        for p in platforms:
            self.sandboxes[p] = await start(p)

    async def close(self) -> None:
        for sb in self.sandboxes.values():
            await sb.close()

    def accounts(
        self,
        name: str,
        n: int,
        *,
        models: int,
        sandbox_limits: dict[str, Any],
        settings: dict[str, Any],
    ) -> dict[str, tuple[Sandbox, list[dict[str, Any]]]]:
        """One account ``name`` per platform with ``n`` listings; returns account -> (sb, lists)."""
        out = {}
        for p, sb in self.sandboxes.items():
            creds = sb.add_account(name, **sandbox_limits.get(p, {}))
            lists = [listing(p, i, creds, models) for i in range(n)]
            for lst in lists:
                sb.add_listing(name, lst, 0)
            self.receipts.tap(sb, name)
            out[f"{p}:{name}"] = (sb, lists)
            self._settings[f"{p}:{name}"] = {**creds, **settings.get(p, {})}
        return out

    def write_config(
        self, prefix: str, accounts: list[str], *, compute: str = "", extra: str = ""
    ) -> tuple[Path, config.Config]:
        """A config for ``accounts``; ``compute`` adds lines to [compute], ``extra`` tables."""
        tables = [
            f'[channels."{a}"]\n' + channel_settings(self._settings[a], self.env, tag="B")
            for a in accounts
        ]
        text = (
            config_head(self.bootstrap, prefix, group=prefix, desired_partitions=4)
            + """
[compute]
batch_max_records = 2000
"""
            + compute
            + """
[publish]
commit_interval_ms = 200
[log]
level = "warning"
"""
            + extra
            + "\n\n".join(tables)
            + "\n"
        )
        path = self.work / f"{prefix}.toml"
        path.write_text(text)
        return path, config.load(path, env={**os.environ, **self.env})

    async def run(self, *argv: str, log_name: str) -> asyncio.subprocess.Process:
        log = (self.work / log_name).open("wb")
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )


def catalog_recs(accounts: dict[str, tuple[Sandbox, list[dict[str, Any]]]]) -> list[sample.Rec]:
    out = []
    for account, (_, lists) in accounts.items():
        for i, lst in enumerate(lists):
            ev = {
                "type": "listing.linked",
                "event_id": f"cat-{account}-{i}",
                "channel": account,
                "listing": lst,
                "sku": sample.sku_name(i),
            }
            out.append(
                sample.Rec("catalog", f"{account}/{listing_ref(lst)}".encode(), orjson.dumps(ev))
            )
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


# -- 1. throughput within limits ---------------------------------------------------------


async def throughput(b: Bench, rate: float, batch: int, seconds: float) -> dict[str, Any]:
    n = int(rate * batch * seconds)
    limits = {p: {"rate_per_s": rate, "burst": math.ceil(rate)} for p in PLATFORMS}
    limits["shopify"] = {"bucket_size": 10.0 * 2, "restore_rate": 10.0 * rate}
    settings = {p: {"rate_per_s": rate, "burst": 1, "batch_size": batch} for p in PLATFORMS}
    settings["shopify"] = {"batch_size": batch}  # follows the cost bucket it reads back
    accounts = b.accounts("thr", n, models=batch, sandbox_limits=limits, settings=settings)
    prefix = f"bthr{uuid.uuid4().hex[:6]}"
    path, cfg = b.write_config(prefix, list(accounts))
    counts = await ensure_topics(cfg)
    producer = AIOKafkaProducer(bootstrap_servers=[b.bootstrap], acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for account, (_, lists) in accounts.items():
            p = partition_for(account, counts[cfg.topics.desired])
            for i, lst in enumerate(lists):
                ref = listing_ref(lst)
                value = orjson.dumps(
                    {
                        "account": account,
                        "listing": lst,
                        "listing_ref": ref,
                        "sku": sample.sku_name(i),
                        "quantity": 1 + i % 50,
                        "source_ts": None,
                        "computed_at": 0,
                    }
                )
                futures.append(
                    await producer.send(
                        cfg.topics.desired, value, key=f"{account}/{ref}".encode(), partition=p
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    proc = await b.run(
        "-m",
        "syncd",
        "--config",
        str(path),
        "run",
        "--stage",
        "publish",
        "--until-caught-up",
        log_name="throughput.log",
    )
    rc = await proc.wait()
    if rc != 0:
        sys.exit(f"publisher failed ({b.work / 'throughput.log'})")
    print(
        f"\n1. throughput within limits: {n} listings per account, rate {rate:g} calls/s,"
        f" batch {batch}"
    )
    print(
        f"   {'account':<16}{'calls':>7}{'updates/s':>11}{'ceiling':>9}{'share':>8}"
        f"{'throttled':>11}{'max calls in 1s':>17}"
    )
    rows = {}
    for account, (sb, _) in accounts.items():
        st = sb.stats("thr")
        path_ = PUSH_PATH[sb.platform]
        calls = st["by_path"].get(path_, 0) if path_ else st["requests"]
        stamps = sb.request_times("thr")[-calls:]
        updates = sum(st["updates"].values())
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else math.nan
        per_s = (calls - 1) / span * (updates / calls) if calls > 1 else math.nan
        ceiling = rate * batch
        print(
            f"   {account:<16}{calls:>7}{per_s:>11,.1f}{ceiling:>9,.0f}{per_s / ceiling:>8.1%}"
            f"{st['throttled']:>11}{st['max_in_1s']:>17}"
        )
        rows[account] = {
            "calls": calls,
            "updates_per_s": per_s,
            "ceiling": ceiling,
            "throttled": st["throttled"],
            "max_in_1s": st["max_in_1s"],
        }
    return {"rate": rate, "batch": batch, "listings": n, "accounts": rows}


# -- 2. API calls per input event ----------------------------------------------------------


async def calls_per_event(b: Bench, n_events: int, n_skus: int) -> dict[str, Any]:
    fast = {p: {"rate_per_s": 1000, "burst": 50} for p in PLATFORMS}
    limits = {"shopify": {"bucket_size": 1e9, "restore_rate": 1e9}}
    accounts = b.accounts("burst", n_skus, models=10, sandbox_limits=limits, settings=fast)
    prefix = f"bcpe{uuid.uuid4().hex[:6]}"
    _, cfg = b.write_config(prefix, list(accounts))
    await create_inputs(cfg, 3)
    events = list(sample.events(n_events, n_skus, seed=11))
    t0 = time.monotonic()
    await produce(cfg, catalog_recs(accounts) + events)
    produced = time.monotonic() - t0
    t0 = time.monotonic()
    await ComputeStage(cfg, until_caught_up=True).run()
    computed = time.monotonic() - t0
    desired = [r for r in await read_topic(cfg, cfg.topics.desired) if r.value is not None]
    t0 = time.monotonic()
    await PublishService(cfg, until_caught_up=True).run()
    published = time.monotonic() - t0
    calls = updates = 0
    for sb, _ in accounts.values():
        st = sb.stats("burst")
        calls += st["requests"] - st["token_requests"]
        updates += sum(st["updates"].values())
    listings = sum(len(lists) for _, lists in accounts.values())
    print(
        f"\n2. burst of {n_events:,} input events over {n_skus:,} SKUs ({listings:,} listings"
        f" on 4 accounts); produce {produced:.1f}s, compute {computed:.1f}s,"
        f" publish {published:.1f}s"
    )
    print(
        f"   desired records {len(desired):,} ({len(desired) / n_events:.3f} per event);"
        f" listing updates sent {updates:,} ({updates / n_events:.4f} per event);"
        f" API calls {calls:,} ({calls / n_events:.5f} per event)"
    )
    return {
        "events": n_events,
        "skus": n_skus,
        "desired": len(desired),
        "updates": updates,
        "calls": calls,
        "compute_seconds": computed,
        "publish_seconds": published,
    }


# -- 3. latency ----------------------------------------------------------------------------


async def probe(bootstrap: str, topic: str, stop: asyncio.Event, out: list[float]) -> None:
    """Bare Kafka: produce 100 records/s, consume them, keep produce-to-consume ms."""
    producer = AIOKafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=[bootstrap], enable_auto_commit=False, fetch_max_wait_ms=500
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)

    async def read() -> None:
        while True:
            got = await consumer.getmany(timeout_ms=200)
            now = time.time() * 1000
            out.extend(now - r.timestamp for recs in got.values() for r in recs)

    reader = asyncio.create_task(read())
    try:
        while not stop.is_set():
            await producer.send(topic, b"x")
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


async def latency(b: Bench, n_skus: int, eps: int, seconds: float) -> dict[str, Any]:
    fast = {p: {"rate_per_s": 1000, "burst": 50} for p in PLATFORMS}
    limits = {"shopify": {"bucket_size": 1e9, "restore_rate": 1e9}}
    accounts = b.accounts("lat", n_skus, models=10, sandbox_limits=limits, settings=fast)
    prefix = f"blat{uuid.uuid4().hex[:6]}"
    path, cfg = b.write_config(prefix, list(accounts))
    await create_inputs(cfg, 3)
    await ensure_topics(cfg)
    probe_topic = f"{prefix}.probe"
    admin = AIOKafkaAdminClient(bootstrap_servers=[b.bootstrap])
    await admin.start()
    await admin.create_topics([NewTopic(probe_topic, 1, 1)])
    await admin.close()
    # warm-up: catalog and one snapshot per SKU and warehouse, until every listing has a quantity
    warm = [
        sample.Rec(
            "stock",
            sample.sku_name(i).encode(),
            orjson.dumps(
                {
                    "type": "stock.snapshot",
                    "event_id": f"w{i}{w}",
                    "sku": sample.sku_name(i),
                    "warehouse": w,
                    "on_hand": 30,
                    "as_of": sample.rfc3339(sample.T0),
                }
            ),
        )
        for i in range(n_skus)
        for w in sample.WAREHOUSES
    ]
    await produce(cfg, catalog_recs(accounts) + warm)
    compute = await b.run(
        "-m", "syncd", "--config", str(path), "run", "--stage", "compute", log_name="compute.log"
    )
    publisher = await b.run(
        "-m", "syncd", "--config", str(path), "run", "--stage", "publish", log_name="publisher.log"
    )
    try:
        deadline = time.monotonic() + 120
        while sum(sum(sb.stats("lat")["updates"].values()) for sb, _ in accounts.values()) < (
            len(accounts) * n_skus
        ):
            if time.monotonic() > deadline:
                sys.exit(f"latency warm-up did not finish (logs in {b.work})")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        started_ms = time.time() * 1000
        stop = asyncio.Event()
        bare: list[float] = []
        probe_task = asyncio.create_task(probe(b.bootstrap, probe_topic, stop, bare))
        topic = {"stock": cfg.topics.stock, "orders": cfg.topics.orders}
        producer = AIOKafkaProducer(bootstrap_servers=[b.bootstrap], acks="all", linger_ms=2)
        await producer.start()
        events = sample.events(int(eps * seconds), n_skus, seed=23, step_ms=1)
        t0 = time.monotonic()
        sent = 0
        for rec in events:
            await producer.send(topic[rec.topic], rec.value, key=rec.key)
            sent += 1
            if sent % max(1, eps // 100) == 0:  # pace in 10 ms steps
                ahead = t0 + sent / eps - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        await producer.stop()
        produce_s = time.monotonic() - t0
        stop.set()
        await probe_task
        while True:  # until the pipeline has drained
            if time.monotonic() - b.receipts.last >= 3.0:
                break
            await asyncio.sleep(0.2)
    finally:
        for proc in (compute, publisher):
            proc.send_signal(signal.SIGTERM)
        for proc in (compute, publisher):
            await proc.wait()
    keys = {}
    for account, (sb, lists) in accounts.items():
        acc = sb.accounts["lat"]
        for lst in lists:
            keys[(account, listing_ref(lst))] = sb.listing_key(acc, sb.normalize_listing(acc, lst))
    written: dict[tuple[str, int, int], int] = {}  # (key, quantity, source_ts) -> desired ts
    for rec in await read_topic(cfg, cfg.topics.desired):
        if rec.value is not None:  # type: ignore[attr-defined]
            d = orjson.loads(rec.value)  # type: ignore[attr-defined]
            k = (f"{d['account']}/{d['listing_ref']}", d["quantity"], d["source_ts"])
            written.setdefault(k, rec.timestamp)  # type: ignore[attr-defined]
    e2e: list[float] = []
    compute_ms: list[float] = []
    publish_ms: list[float] = []
    call_ms: list[float] = []
    by_account: dict[str, list[float]] = defaultdict(list)
    for rec in await read_topic(cfg, cfg.topics.push_results):
        r = orjson.loads(rec.value)  # type: ignore[attr-defined]
        ts = r["source_ts"]
        if not r["ok"] or ts is None or ts < started_ms:
            continue
        call_ms.append(r["latency_ms"])
        got = b.receipts.times.get(
            (r["account"], keys[(r["account"], r["listing_ref"])], r["quantity"]), []
        )
        after = [t for t in got if t * 1000 >= ts - 5]
        if after:
            e2e.append(after[0] * 1000 - ts)
            w = written.get((f"{r['account']}/{r['listing_ref']}", r["quantity"], ts))
            if w is not None:
                compute_ms.append(w - ts)
                publish_ms.append(after[0] * 1000 - w)
                by_account[r["account"]].append(after[0] * 1000 - w)
    call = statistics.median(call_ms) if call_ms else math.nan
    goal = 3 * pct(bare, 0.99) + call
    print(
        f"\n3. latency: {sent:,} input events at {sent / produce_s:,.0f}/s over {n_skus:,} SKUs"
        f" ({len(e2e):,} quantities received)"
    )
    print(f"   {'':40}{'p50 ms':>9}{'p99 ms':>9}")
    series = {
        "bare Kafka produce -> consume": bare,
        "sandbox call (push latency)": call_ms,
        "input event -> sandbox received": e2e,
        "  of which: event -> desired written": compute_ms,
        "  of which: desired written -> received": publish_ms,
    }
    for label, xs in series.items():
        print(f"   {label:40}{pct(xs, 0.5):>9.1f}{pct(xs, 0.99):>9.1f}")
    for account, xs in sorted(by_account.items()):
        st = accounts[account][0].stats("lat")
        print(
            f"     {'desired written -> received, ' + account:38}{pct(xs, 0.5):>9.1f}"
            f"{pct(xs, 0.99):>9.1f}   ({st['requests']:,} calls for"
            f" {sum(st['updates'].values()):,} updates)"
        )
    print(
        f"   goal: p99 <= 3 x bare p99 + one call = {goal:.1f} ms:"
        f" {'met' if pct(e2e, 0.99) <= goal else 'NOT met'}"
    )
    return {
        "events": sent,
        "events_per_s": sent / produce_s,
        "skus": n_skus,
        "received": len(e2e),
        "goal_ms": goal,
        "ms": {k.strip(): [pct(xs, q) for q in (0.5, 0.9, 0.99)] for k, xs in series.items()},
        "samples": {"bare": bare, "e2e": e2e},
    }


async def amain(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    logs.configure("error")  # the in-process stages of part 2 warn about sample data
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-publish-"))
    b = Bench(bootstrap, work)
    await b.start()
    try:
        print(f"machine: {os.cpu_count()} cores; broker {kafka.kafka_version()}; logs in {work}")
        return {
            "cores": os.cpu_count(),
            "broker": kafka.kafka_version(),
            "throughput": await throughput(b, args.rate, args.batch, args.seconds),
            "calls_per_event": await calls_per_event(b, args.events, args.skus),
            "latency": await latency(b, args.skus, args.eps, args.latency_seconds),
        }
    finally:
        await b.close()


def run(
    *,
    rate: float = 10.0,
    batch: int = 20,
    seconds: float = 10.0,
    events: int = 100_000,
    skus: int = 1_000,
    eps: int = 1_000,
    latency_seconds: float = 10.0,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """Run the three parts (starting a broker unless ``bootstrap`` is given); their figures."""
    args = argparse.Namespace(
        rate=rate,
        batch=batch,
        seconds=seconds,
        events=events,
        skus=skus,
        eps=eps,
        latency_seconds=latency_seconds,
    )
    broker = None if bootstrap else kafka.start(heap="1g")
    try:
        return asyncio.run(amain(args, bootstrap or broker.bootstrap))  # type: ignore[union-attr]
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--skus", type=int, default=1_000)
    ap.add_argument("--eps", type=int, default=1_000)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    run(**{k: v for k, v in vars(ap.parse_args()).items()})


if __name__ == "__main__":
    main()

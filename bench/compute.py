"""Compute-stage benchmark: syncd's sustained events/s next to a bare aiokafka consumer.

    python bench/compute.py [--events 200000] [--skus 10000] [--bootstrap HOST:PORT]

Produces N events (60% order events, 30% snapshots, 10% adjustments, over
SKUS SKUs with 3 listings each) into the local broker (started here unless
--bootstrap is given), then in the same run:

1. a bare aiokafka consumer reads the same input topics end to end (the floor
   any Python consumer pays: fetch + decompress + record objects);
2. ``syncd run --until-caught-up`` processes them for real (decode, validate,
   order repartition round trip, state, policy, changelog and desired writes,
   commits), in its own process so its peak RSS is its own.

Prints both rates side by side, syncd's peak RSS, and the state bytes per SKU
(the changelog record size, which is also the in-memory form), measured on the
run and on 1,000,000 generated SKU states.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener  # noqa: E402

from dev import kafka, sample  # noqa: E402
from dev.kafkaio import config_head, create_inputs, latest, produce  # noqa: E402
from syncd import config  # noqa: E402
from syncd.core.ledger import (  # noqa: E402
    OrderEntry,
    SkuState,
    Warehouse,
)
from syncd.core.orders import LineView  # noqa: E402

PARTITIONS = 3


def write_config(work: Path, bootstrap: str, prefix: str) -> Path:
    path = work / "bench.toml"
    head = config_head(bootstrap, prefix, group=f"{prefix}-syncd", input_partitions=PARTITIONS)
    path.write_text(
        head
        + """
[compute]
batch_max_records = 5000
[policy]
safety = "velocity"
safety_units = 1
[log]
level = "info"
"""
    )
    return path


class _Assigned(ConsumerRebalanceListener):
    """Stamps the moment partitions are assigned: the fetcher starts reading then."""

    at: float | None = None

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.at = self.at or time.perf_counter()


async def bare_consumer(cfg: config.Config, n: int) -> float:
    """Events/s of a plain consumer group reading the input topics to the end.

    Timed from the partition assignment (when aiokafka's fetcher starts prefetching in the
    background) to the last record, so that prefetched data is not counted for free.
    """
    c = AIOKafkaConsumer(
        bootstrap_servers=list(cfg.kafka.bootstrap_servers),
        group_id=f"{cfg.kafka.group_id}-bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    assigned = _Assigned()
    await c.start()
    c.subscribe([cfg.topics.stock, cfg.topics.orders], listener=assigned)
    try:
        seen = 0
        while seen < n:
            got = await c.getmany(timeout_ms=1000, max_records=5000)
            for recs in got.values():
                for rec in recs:
                    if rec.value is not None:
                        seen += 1
        assert assigned.at is not None
        return seen / (time.perf_counter() - assigned.at)
    finally:
        await c.stop()


def run_syncd(cfg_path: Path) -> tuple[float, int, float]:
    """(events/s, peak RSS bytes, seconds) of one bounded syncd run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log_path = cfg_path.with_suffix(".log")
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd",
            "--config",
            str(cfg_path),
            "run",
            "--stage",
            "compute",
            "--until-caught-up",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    proc.wait()
    log_file.close()
    out = log_path.read_text()
    if proc.returncode != 0:
        sys.exit(f"syncd failed (log {log_path}):\n{out[-3000:]}")
    stopped = [orjson.loads(line) for line in out.splitlines() if '"compute_stopped"' in line][-1]
    return stopped["events"] / stopped["busy_seconds"], peak, stopped["busy_seconds"]


def generated_state_bytes(n_skus: int, seed: int = 1) -> tuple[float, float]:
    """(serialised bytes per SKU, bytes per SKU held as syncd holds it) for n_skus states.

    Held = what tracemalloc sees allocated for the store (dict, keys, values) once the
    temporary objects are gone: exactly what the compute stage keeps per SKU between batches.
    """
    rng = random.Random(seed)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store: dict[str, bytes] = {}
    total = 0
    for i in range(n_skus):
        sku = sample.sku_name(i)
        s = SkuState(sku)
        for w in sample.WAREHOUSES:
            s.warehouses[w] = Warehouse(
                rng.randint(0, 60),
                sample.T0 + i,
                f"e{i}{w}",
                [(f"e{i}{w}a", sample.T0 + i + 5, rng.choice([-1, 2]))],
            )
        for o in range(rng.randint(0, 3)):
            s.orders[f"O-7-{i}-{o}"] = OrderEntry(
                i * 10 + o, sample.T0, (LineView("WH-1", 2, 2, ()),)
            )
        s.sales = {sample.T0 // 300_000: rng.randint(1, 9)}
        for a in sample.ACCOUNTS:
            s.emitted[f'{a}/{{"item_id":{100000 + i},"model_id":0}}'] = rng.randint(0, 60)
        s.stock_offset = i * 3
        s.last_at = sample.T0 + i
        raw = s.to_bytes()
        total += len(raw) + len(sku)
        store[sku] = raw
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return total / n_skus, held / n_skus


def run(
    *,
    events: int = 200_000,
    skus: int = 10_000,
    generated_skus: int = 1_000_000,
    seed: int = 42,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark (starting a broker unless ``bootstrap`` is given); its figures."""
    broker = None if bootstrap else kafka.start(heap="1g")
    try:
        work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
        prefix = f"bench{int(time.time())}"
        cfg_path = write_config(work, bootstrap or broker.bootstrap, prefix)  # type: ignore[union-attr]
        cfg = config.load(cfg_path)
        t0 = time.perf_counter()
        recs = sample.catalog(skus) + list(
            sample.events(events, skus, seed=seed, duplicate_rate=0.0)
        )
        asyncio.run(create_inputs(cfg, PARTITIONS))
        asyncio.run(produce(cfg, recs))
        produce_s = time.perf_counter() - t0
        bare = asyncio.run(bare_consumer(cfg, events))
        rate, peak, secs = run_syncd(cfg_path)
        states = asyncio.run(latest(cfg, cfg.topics.sku_state))
        per_sku = sum(len(k) + len(v) for k, v in states.items()) / max(len(states), 1)
        gen_bytes, gen_held = generated_state_bytes(generated_skus)
    finally:
        if broker is not None:
            broker.stop()
    return {
        "events": events,
        "skus": skus,
        "seed": seed,
        "partitions": PARTITIONS,
        "cores": os.cpu_count(),
        "broker": kafka.kafka_version(),
        "produce_seconds": produce_s,
        "bare_events_per_s": bare,
        "syncd_events_per_s": rate,
        "syncd_busy_seconds": secs,
        "syncd_peak_rss_bytes": peak,
        "state_skus": len(states),
        "state_bytes_per_sku": per_sku,
        "generated_skus": generated_skus,
        "generated_bytes_per_sku": gen_bytes,
        "generated_held_bytes_per_sku": gen_held,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--generated-skus", type=int, default=1_000_000)
    ap.add_argument("--bootstrap")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    f = run(
        events=args.events,
        skus=args.skus,
        generated_skus=args.generated_skus,
        seed=args.seed,
        bootstrap=args.bootstrap,
    )
    bare, rate, peak, n = (
        f["bare_events_per_s"],
        f["syncd_events_per_s"],
        f["syncd_peak_rss_bytes"],
        max(f["state_skus"], 1),
    )
    print(
        f"produced {f['events']} events + {f['skus'] * 3} listings in {f['produce_seconds']:.1f}s"
    )
    print()
    print(
        f"machine: {f['cores']} cores; broker {f['broker']};"
        f" {f['partitions']} partitions; seed {f['seed']}"
    )
    print(f"{'':34}{'events/s':>12}")
    print(f"{'bare aiokafka consumer':34}{bare:>12,.0f}")
    print(
        f"{'syncd compute stage':34}{rate:>12,.0f}   ({rate / bare:.0%} of bare;"
        f" goal >= 50%; {f['syncd_busy_seconds']:.1f}s busy)"
    )
    print(
        f"syncd peak RSS: {peak / 2**20:.0f} MiB for {f['state_skus']} SKUs"
        f" ({peak / n / 1024:.2f} KiB/SKU incl. interpreter and catalog)"
    )
    print(
        f"state per SKU (changelog record = in-memory form): {f['state_bytes_per_sku']:.0f} bytes"
        f" over {f['state_skus']} SKUs of this run (goal <= 1024)"
    )
    print(
        f"generated {f['generated_skus']:,} SKU states: {f['generated_bytes_per_sku']:.0f} bytes"
        f" serialised, {f['generated_held_bytes_per_sku']:.0f} bytes per SKU held in memory"
        " (tracemalloc)"
    )


if __name__ == "__main__":
    main()

"""The compute stage against the real broker: plumbing, dead letters, SIGKILL restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dev import sample
from syncd.compute.processor import Processor
from syncd.compute.stage import ComputeStage
from syncd.config import Config
from syncd.contract import decode_listing
from syncd.core.catalog import Catalog
from syncd.core.ledger import SkuState
from syncd.kafka.partitioning import partition_for
from tests.fixtures.kafka import (
    ROOT,
    create_inputs,
    latest,
    produce,
    read_topic,
    run_syncd,
    syncd_cmd,
    with_group,
    write_config,
)

pytestmark = pytest.mark.kafka


@dataclass
class _Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def in_memory_run(cfg: Config, recs: list[sample.Rec], partitions: int) -> dict[str, int]:
    """The same processor without Kafka: the oracle for the plumbing."""
    t = cfg.topics
    catalog = Catalog()
    for r in recs:
        if r.topic == "catalog":
            assert r.key is not None
            catalog.apply(r.key.decode(), decode_listing(r.key, r.value, max_bytes=65536))
    proc = Processor(cfg, catalog, partitions)
    for p in range(partitions):
        proc.adopt("sku", p, {})
        proc.adopt("order", p, {})
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    desired: dict[str, int] = {}

    def feed(batch: list[_Rec]) -> list[_Rec]:
        res = proc.process(batch)
        lines = []
        for o in res.outputs:
            if o.topic == t.desired and o.key is not None:
                if o.value is None:
                    desired.pop(o.key.decode(), None)
                else:
                    desired[o.key.decode()] = orjson.loads(o.value)["quantity"]
            elif o.topic == t.order_lines:
                off = offsets[o.topic, o.partition]
                offsets[o.topic, o.partition] += 1
                lines.append(_Rec(o.topic, o.partition, off, o.key, o.value, 0, o.headers or []))
        return lines

    topic = {"stock": t.stock, "orders": t.orders}
    batch = []
    for r in recs:
        if r.topic == "catalog" or r.key is None:
            continue
        name = topic[r.topic]
        p = partition_for(r.key.decode(), partitions)
        off = offsets[name, p]
        offsets[name, p] += 1
        batch.append(_Rec(name, p, off, r.key, r.value))
    pending = feed(batch)
    while pending:
        pending = feed(pending)
    return desired


def desired_quantities(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): orjson.loads(v)["quantity"] for k, v in raw.items()}


async def test_pipeline_equals_in_memory_run_and_dead_letters(kafka_bootstrap: str, tmp_path: Path):
    _, cfg = write_config(tmp_path, kafka_bootstrap)
    await create_inputs(cfg)
    recs = sample.catalog(40) + list(sample.events(3000, 40, seed=3)) + sample.bad_records()
    await produce(cfg, recs)

    svc = ComputeStage(cfg, until_caught_up=True)
    counts = await asyncio.wait_for(svc.run(), 120)

    got = desired_quantities(await latest(cfg, cfg.topics.desired))
    assert got == in_memory_run(cfg, recs, 3)
    assert len(got) == 40 * 3
    assert counts["stock", "applied"] > 0 and counts["order", "applied"] > 0

    dead = await read_topic(cfg, cfg.topics.dead_letter)
    bad = sample.bad_records()
    assert len(dead) == len(bad)
    by_value = {r.value: r for r in dead}  # type: ignore[attr-defined]
    for b in bad:
        rec = by_value[b.value]  # unchanged value
        headers = dict(rec.headers)
        assert rec.key == b.key
        assert headers["syncd.source.topic"].decode() in (cfg.topics.stock, cfg.topics.orders)
        assert int(headers["syncd.source.offset"]) >= 0
        assert headers["syncd.error.reason"]
    codes = sorted(dict(r.headers)["syncd.error.code"].decode() for r in dead)
    assert {
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "unknown_type",
        "bad_sku",
        "too_large",
    } <= set(codes)


async def test_restart_restores_state_and_counts_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
):
    """Second run over the same group: nothing is re-applied, state comes from the changelog."""
    path, cfg = write_config(tmp_path, kafka_bootstrap)
    await create_inputs(cfg)
    await produce(cfg, sample.catalog(10) + list(sample.events(800, 10, seed=5)))
    first = await ComputeStage(cfg, until_caught_up=True).run()
    before = desired_quantities(await latest(cfg, cfg.topics.desired))

    # A new group over the same state: every event is read again, and must be skipped.
    _, again = with_group(path, tmp_path, "rewound-group")
    second = await ComputeStage(again, until_caught_up=True).run()
    assert second["stock", "replayed"] == sum(
        n for (k, o), n in first.items() if k == "stock" and o != "dead_lettered"
    )
    assert second["stock", "applied"] == 0
    assert second["order", "applied"] == 0
    assert desired_quantities(await latest(cfg, cfg.topics.desired)) == before


def _state_summary(raw: dict[bytes, bytes]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in raw.items():
        s = SkuState.from_bytes(k.decode(), v)
        out[s.sku] = (
            {w: h.on_hand for w, h in s.warehouses.items()},
            s.reserved(),
            sorted((o, e.lines) for o, e in s.orders.items()),
            sorted(s.sales.items()),
            s.emitted,
        )
    return out


async def _committed(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=[bootstrap])
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(m.offset, 0) for m in offsets.values())


@pytest.mark.slow
async def test_sigkill_three_times_equals_uninterrupted_run(kafka_bootstrap: str, tmp_path: Path):
    path, cfg = write_config(tmp_path, kafka_bootstrap, partitions=3)
    await create_inputs(cfg)
    total = await produce(cfg, sample.catalog(200) + list(sample.events(40_000, 200, seed=11)))

    # Reference: one uninterrupted run.
    ref_path, ref_cfg = with_group(path, tmp_path, "ref-group", "ref.syncd")
    done = run_syncd(ref_path, "run", "--stage", "compute", "--until-caught-up")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # Interrupted: SIGKILL whenever the committed offsets pass 20%, 45% and 70%.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    for share in (0.2, 0.45, 0.7):
        proc = subprocess.Popen(  # noqa: ASYNC220 - the test owns and kills this child
            syncd_cmd(path, "run", "--stage", "compute"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                committed = await _committed(kafka_bootstrap, cfg.kafka.group_id)
                if committed >= share * total:
                    break
                await asyncio.sleep(0.05)
            assert proc.poll() is None, "syncd exited before it was killed"
            proc.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            proc.wait(timeout=30)
        assert committed < total, "the kill came after the end of the stream"
    finished = run_syncd(path, "run", "--stage", "compute", "--until-caught-up")
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert kills == 3

    got = desired_quantities(await latest(cfg, cfg.topics.desired))
    want = desired_quantities(await latest(ref_cfg, ref_cfg.topics.desired))
    assert got == want
    assert len(got) == 600
    # No event counted twice: the per-SKU states (on-hand, reservations, sales) are equal too.
    assert _state_summary(await latest(cfg, cfg.topics.sku_state)) == _state_summary(
        await latest(ref_cfg, ref_cfg.topics.sku_state)
    )

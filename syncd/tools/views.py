"""Read-only views over Kafka for people: one SKU explained, every listing's quantity.

``syncd inspect SKU`` restores that SKU's state from the changelog and the
catalog, and prints each listing's quantity term by term. ``syncd listings``
prints the newest desired quantity of every listing.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from syncd import records
from syncd.config import Config
from syncd.contract import decode_listing
from syncd.core import desired
from syncd.core.catalog import Catalog
from syncd.core.ledger import SkuState
from syncd.errors import InvalidRecord, KafkaError
from syncd.kafka import clients
from syncd.kafka.clients import client_settings
from syncd.kafka.partitioning import partition_for
from syncd.kafka.reading import read_to_end


async def partition_count(cfg: Config, topic: str) -> int:
    admin = AIOKafkaAdminClient(**client_settings(cfg.kafka))
    await admin.start()
    try:
        n = await clients.partition_count(admin, topic)
    finally:
        await admin.close()
    if n is None:
        raise KafkaError(f"topic {topic} does not exist; has syncd run yet?")
    return n


async def read_latest(cfg: Config, topic: str, partitions: list[int]) -> dict[bytes, bytes | None]:
    """Newest value per key over the given partitions (compacted-topic view)."""
    consumer = AIOKafkaConsumer(**client_settings(cfg.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        latest: dict[bytes, bytes | None] = {}
        tps = [TopicPartition(topic, p) for p in partitions]
        async for rec in read_to_end(consumer, tps):
            latest[rec.key or b""] = rec.value
        return latest
    finally:
        await consumer.stop()


async def load_catalog(cfg: Config) -> Catalog:
    catalog = Catalog()
    n = await partition_count(cfg, cfg.topics.catalog)
    for key, value in (await read_latest(cfg, cfg.topics.catalog, list(range(n)))).items():
        try:
            ev = decode_listing(key, value, max_bytes=cfg.compute.max_record_bytes)
        except InvalidRecord:
            continue
        catalog.apply(key.decode(), ev)
    return catalog


async def inspect(cfg: Config, sku: str) -> dict[str, Any]:
    """The SKU's state and each listing's quantity, term by term."""
    n = await partition_count(cfg, cfg.topics.stock)
    p = partition_for(sku, n)
    raw = (await read_latest(cfg, cfg.topics.sku_state, [p])).get(sku.encode())
    state = SkuState.from_bytes(sku, raw) if raw else SkuState(sku)
    catalog = await load_catalog(cfg)
    c = cfg.compute
    return {
        "sku": sku,
        "partition": p,
        "known": raw is not None,
        "on_hand": {w: h.on_hand for w, h in state.warehouses.items()},
        "snapshots": {w: h.snap_at for w, h in state.warehouses.items()},
        "open_orders": sorted(o for o, e in state.orders.items() if e.lines),
        "reserved": state.reserved(),
        "velocity_per_hour": state.velocity_per_hour(bucket_ms=c.bucket_ms, window_ms=c.window_ms),
        "listings": [
            {
                "key": lq.listing.key,
                "warehouses": lq.listing.warehouses,
                "quantity": lq.quantity.sent,
                "terms": lq.quantity.explain(),
            }
            for lq in desired.for_sku(
                state,
                catalog.listings_for(sku),
                cfg.rule_layers(),
                bucket_ms=c.bucket_ms,
                window_ms=c.window_ms,
            )
        ],
    }


def format_inspect(view: dict[str, Any]) -> str:
    lines = [f"SKU {view['sku']} (partition {view['partition']})"]
    if not view["known"]:
        lines.append("  no state yet: no stock or order event has been applied for this SKU")
    on_hand = ", ".join(f"{w}={q}" for w, q in view["on_hand"].items()) or "none"
    lines.append(f"  on hand by warehouse: {on_hand}")
    lines.append(
        f"  reserved (all warehouses): {view['reserved']} in {len(view['open_orders'])} open orders"
    )
    lines.append(f"  sales velocity: {view['velocity_per_hour']:.2f} units/hour")
    if not view["listings"]:
        lines.append("  no listing sells this SKU (catalog)")
    for lst in view["listings"]:
        whs = ", ".join(lst["warehouses"]) if lst["warehouses"] else "all warehouses"
        lines.append(f"  listing {lst['key']} (from {whs}): {lst['quantity']}")
        for term, text in lst["terms"]:
            lines.append(f"    {term:<15} {text}")
    return "\n".join(lines)


async def listings(cfg: Config) -> list[dict[str, Any]]:
    """Every listing's newest desired quantity next to the one its channel acknowledged."""
    n = await partition_count(cfg, cfg.topics.desired)
    acked_raw = await read_latest(cfg, cfg.topics.acked, list(range(n)))
    rows = []
    for key, value in (await read_latest(cfg, cfg.topics.desired, list(range(n)))).items():
        if value is None:
            continue
        d = records.decode_desired(None, value)
        ack = acked_raw.get(key)
        rows.append(
            {
                "account": d.account,
                "listing": d.listing_ref,
                "sku": d.sku,
                "desired": d.quantity,
                "acked": records.decode_acked(ack).quantity if ack else None,
                "key": key.decode(),
            }
        )
    return sorted(rows, key=lambda r: (r["account"], r["listing"]))

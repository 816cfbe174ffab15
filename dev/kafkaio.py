"""Small Kafka helpers for the demo, the tests and the benchmarks: create input topics,
produce sample records, read a topic back (all of it, or its compacted view)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dev.sample import Rec
from syncd import config


async def create_inputs(cfg: config.Config, partitions: int = 3) -> None:
    t = cfg.topics
    admin = AIOKafkaAdminClient(bootstrap_servers=list(cfg.kafka.bootstrap_servers))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(t.stock, partitions, 1),
                NewTopic(t.orders, partitions, 1),
                NewTopic(t.catalog, 1, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()


async def produce(cfg: config.Config, recs: Iterable[Rec]) -> int:
    """Write sample records to the configured input topics, keyed as the contract says."""
    t = cfg.topics
    topic = {"stock": t.stock, "orders": t.orders, "catalog": t.catalog}
    producer = AIOKafkaProducer(
        bootstrap_servers=list(cfg.kafka.bootstrap_servers),
        acks="all",
        linger_ms=5,
        max_batch_size=262144,
        max_request_size=4194304,
    )
    await producer.start()
    n = 0
    try:
        futures = []
        for rec in recs:
            futures.append(await producer.send(topic[rec.topic], rec.value, key=rec.key))
            n += 1
        for f in futures:
            await f
    finally:
        await producer.stop()
    return n


async def read_topic(cfg: config.Config, topic: str) -> list[object]:
    """Every record of a topic, from the beginning to its current end."""
    from syncd.kafka.reading import read_to_end

    consumer = AIOKafkaConsumer(
        bootstrap_servers=list(cfg.kafka.bootstrap_servers), enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return [rec async for rec in read_to_end(consumer, tps)]
    finally:
        await consumer.stop()


async def latest(cfg: config.Config, topic: str) -> dict[bytes, bytes]:
    """Compacted view: newest non-null value per key."""
    out: dict[bytes, bytes] = {}
    for rec in await read_topic(cfg, topic):
        if rec.value is None:  # type: ignore[attr-defined]
            out.pop(rec.key, None)  # type: ignore[attr-defined]
        else:
            out[rec.key] = rec.value  # type: ignore[attr-defined]
    return out


def config_head(
    bootstrap: str,
    prefix: str,
    *,
    group: str | None = None,
    input_partitions: int = 3,
    desired_partitions: int = 3,
) -> str:
    """The ``[kafka]`` and ``[topics]`` tables of a config whose topics are unique to ``prefix``."""
    return f"""
[kafka]
bootstrap_servers = ["{bootstrap}"]
group_id = "{group or prefix + "-group"}"
[topics]
stock = "{prefix}.stock.events"
orders = "{prefix}.order.events"
catalog = "{prefix}.catalog.listings"
dead_letter = "{prefix}.dead-letter"
push_results = "{prefix}.push-results"
actions = "{prefix}.actions"
internal_prefix = "{prefix}.syncd"
input_partitions = {input_partitions}
desired_partitions = {desired_partitions}
"""


def channel_settings(creds: dict[str, Any], env: dict[str, str], *, tag: str = "T") -> str:
    """A channel table's settings lines from sandbox credentials.

    Secrets go through environment variables (added to ``env``), as the config demands.
    """
    lines = []
    for key, value in creds.items():
        if value is None or value == "":
            continue
        if key in config.CHANNEL_SECRETS:
            var = f"SYNCD_{tag}_{uuid.uuid4().hex[:10].upper()}"
            env[var] = str(value)
            lines.append(f"{key}_env = {json.dumps(var)}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)

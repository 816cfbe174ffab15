"""Kafka clients and topics: the connection settings every aiokafka client shares, and the
creation of syncd's topics.

Topic layout (``<p>`` is ``topics.internal_prefix``):

| topic | key | partitions | cleanup |
|---|---|---|---|
| ``<p>.order-lines`` | SKU | as the stock topic | delete |
| ``<p>.order-state`` | order id | as the order topic | compact |
| ``<p>.sku-state`` | SKU | as the stock topic | compact |
| ``<p>.holds`` | ``<account>/<SKU>`` | as the stock topic | compact |
| ``<p>.desired`` | ``<account>/<listing ref>`` | ``desired_partitions``, by account | compact |
| ``<p>.acked`` | ``<account>/<listing ref>`` | as ``<p>.desired`` | compact |

(:func:`ensure_topics` is the full list, with the dead-letter, push-results and actions
topics.)
"""

from __future__ import annotations

import ssl
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from syncd.config import Config, KafkaConfig
from syncd.errors import KafkaError

log = structlog.get_logger("syncd.kafka.clients")


def client_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection keyword arguments shared by every aiokafka client."""
    out: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=cfg.ssl_cafile)
        if cfg.ssl_certfile:
            ctx.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile)
        out["ssl_context"] = ctx
    if cfg.security_protocol.startswith("SASL"):
        out["sasl_mechanism"] = cfg.sasl_mechanism
        out["sasl_plain_username"] = cfg.sasl_username
        out["sasl_plain_password"] = cfg.sasl_password
    return out


async def partition_count(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The partition count of ``topic``, or None when it does not exist."""
    meta = await admin.describe_topics([topic])
    for t in meta:
        if t.get("topic") == topic and not t.get("error_code"):
            return len(t.get("partitions", []))
    return None


async def ensure_topics(cfg: Config) -> dict[str, int]:
    """Create the internal (and, when allowed, missing input/output) topics.

    Returns the partition count of each topic. Internal topics that must be
    co-partitioned with an input topic get its partition count; an existing
    internal topic with another count is an error that names both topics.
    """
    t = cfg.topics
    admin = AIOKafkaAdminClient(**client_settings(cfg.kafka))
    try:
        await admin.start()
    except Exception as e:
        raise KafkaError(
            f"cannot reach Kafka at {','.join(cfg.kafka.bootstrap_servers)}: {e}"
        ) from e
    try:
        counts: dict[str, int] = {}
        for topic, n in (
            (t.stock, t.input_partitions),
            (t.orders, t.input_partitions),
            (t.catalog, 1),
        ):
            have = await partition_count(admin, topic)
            if have is None:
                if not t.create:
                    raise KafkaError(f"input topic {topic} does not exist (topics.create is off)")
                await create(admin, topic, n, t.replication_factor, {})
                have = n
            counts[topic] = have
        compact = {"cleanup.policy": "compact"}
        wanted = [
            (t.order_lines, counts[t.stock], {}),
            (t.holds, counts[t.stock], compact),
            (t.sku_state, counts[t.stock], compact),
            (t.order_state, counts[t.orders], compact),
            (t.desired, t.desired_partitions, compact),
            (t.acked, t.desired_partitions, compact),
            (t.dead_letter, 1, {}),
            (t.push_results, 3, {}),
            (t.actions, 1, compact),
        ]
        for topic, n, conf in wanted:
            have = await partition_count(admin, topic)
            if have is None:
                await create(admin, topic, n, t.replication_factor, conf)
                have = n
            elif topic in (t.order_lines, t.holds, t.sku_state, t.order_state) and have != n:
                raise KafkaError(
                    f"topic {topic} has {have} partitions but must match its input topic ({n})"
                )
            counts[topic] = have
        return counts
    finally:
        await admin.close()


async def create(
    admin: AIOKafkaAdminClient, topic: str, n: int, rf: int, conf: dict[str, str]
) -> None:
    """Create ``topic`` with ``n`` partitions (``conf``: topic configs); one that exists is
    left as it is."""
    try:
        await admin.create_topics([NewTopic(topic, n, rf, topic_configs=conf)])
        log.info("topic_created", topic=topic, partitions=n, **conf)
    except TopicAlreadyExistsError:
        pass

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

(:func:`topic_plan` is the full list, with the input topics and the dead-letter,
push-results and actions topics; :func:`ensure_topics` creates from it and
``syncd check-config --connect`` checks against it.)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from syncd.config import Config, KafkaConfig, TopicsConfig
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


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One of syncd's topics as syncd creates it."""

    name: str
    role: Literal["input", "internal", "output"]
    partitions: int
    """The count it is created with (internal topics: the count they must have)."""
    copartitioned: bool
    """Keyed like an input topic: any other partition count is refused at start."""
    cleanup: Literal["delete", "compact"]


def topic_plan(t: TopicsConfig, stock: int, orders: int) -> list[TopicSpec]:
    """Every topic syncd reads or writes; ``stock`` and ``orders`` are the partition
    counts of the stock and order topics (the internal topics keyed like them follow)."""
    ins, desired = t.input_partitions, t.desired_partitions
    return [
        TopicSpec(t.stock, "input", ins, False, "delete"),
        TopicSpec(t.orders, "input", ins, False, "delete"),
        TopicSpec(t.catalog, "input", 1, False, "delete"),
        TopicSpec(t.order_lines, "internal", stock, True, "delete"),
        TopicSpec(t.holds, "internal", stock, True, "compact"),
        TopicSpec(t.sku_state, "internal", stock, True, "compact"),
        TopicSpec(t.order_state, "internal", orders, True, "compact"),
        TopicSpec(t.desired, "internal", desired, False, "compact"),
        TopicSpec(t.acked, "internal", desired, False, "compact"),
        TopicSpec(t.dead_letter, "output", 1, False, "delete"),
        TopicSpec(t.push_results, "output", 3, False, "delete"),
        TopicSpec(t.actions, "output", 1, False, "compact"),
    ]


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
        inputs = [s for s in topic_plan(t, 0, 0) if s.role == "input"]
        for spec in inputs:
            have = await partition_count(admin, spec.name)
            if have is None:
                if not t.create:
                    raise KafkaError(
                        f"input topic {spec.name} does not exist (topics.create is off)"
                    )
                await create(admin, spec.name, spec.partitions, t.replication_factor, {})
                have = spec.partitions
            counts[spec.name] = have
        for spec in topic_plan(t, counts[t.stock], counts[t.orders]):
            if spec.role == "input":
                continue
            have = await partition_count(admin, spec.name)
            if have is None:
                conf = {"cleanup.policy": "compact"} if spec.cleanup == "compact" else {}
                await create(admin, spec.name, spec.partitions, t.replication_factor, conf)
                have = spec.partitions
            elif spec.copartitioned and have != spec.partitions:
                raise KafkaError(
                    f"topic {spec.name} has {have} partitions but must match its input topic "
                    f"({spec.partitions})"
                )
            counts[spec.name] = have
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

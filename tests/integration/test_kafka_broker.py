"""Proves, against the real local broker, the aiokafka features syncd relies on.

Owns the broker-compatibility checks: topic creation (plain and compacted) through the admin
client, acks=all producing incl. batches, consumer groups with RangePartitionAssignor and
explicit commits (a second consumer resumes at the committed offset), end_offsets,
assign + seek_to_beginning, tombstones, headers, broker restart with data kept, and whether
idempotent and transactional producing work with the broker version in dev/kafka/pom.xml.
Each test uses its own topics and consumer group.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from dev.kafka import Broker, fetch_metadata, kafka_version

if TYPE_CHECKING:
    from conftest import TopicFactory

pytestmark = pytest.mark.kafka

TIMEOUT = 20.0  # seconds, upper bound for any single wait in these tests


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


async def _drain(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Fetch until ``count`` records arrived (fails after TIMEOUT)."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    return records


async def _read_all(
    bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted"
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in ``topic`` (manual assign + seek_to_beginning, no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation_level)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(TIMEOUT):
            pending = set(tps)
            while pending:
                batch = await consumer.getmany(timeout_ms=200)
                for recs in batch.values():
                    records.extend(recs)
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def test_raw_metadata_check_sees_the_broker(kafka_broker: Broker) -> None:
    """dev/kafka.py's readiness check: one registered broker, of the cluster it formatted."""
    meta = fetch_metadata(kafka_broker.port)
    assert meta.brokers == ((1, "127.0.0.1", kafka_broker.port),)
    assert meta.cluster_id == kafka_broker.cluster_id
    assert kafka_version().startswith(("3.9.", "4."))


async def test_create_topics_plain_and_compacted(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    plain = await topic_factory(3)
    compacted = await topic_factory(2, {"cleanup.policy": "compact", "segment.ms": "100"})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([plain, compacted])}
        assert len(described[plain]["partitions"]) == 3
        assert len(described[compacted]["partitions"]) == 2
        assert {plain, compacted} <= set(await admin.list_topics())
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, compacted)]
        )
        entries = {
            name: value
            for response in responses
            for resource in response.resources
            for name, value, *_ in resource[4]
        }
        assert entries["cleanup.policy"] == "compact"
    finally:
        await admin.close()


async def test_auto_create_is_off(kafka_broker: Broker) -> None:
    """The project must create its topics: producing to a missing topic must not create it."""
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    p = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, request_timeout_ms=1000)
    await p.start()
    try:
        with pytest.raises(KafkaError):
            await p.send_and_wait(missing, b"x")
    finally:
        await p.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()


async def test_produce_acks_all_and_batches(
    kafka_bootstrap: str, topic_factory: TopicFactory, producer: AIOKafkaProducer
) -> None:
    topic = await topic_factory(2)
    meta = await producer.send_and_wait(topic, b"v0", key=b"k0", partition=0)
    assert (meta.topic, meta.partition, meta.offset) == (topic, 0, 0)

    batch = producer.create_batch()
    for i in range(1, 6):
        assert batch.append(key=f"k{i}".encode(), value=f"v{i}".encode(), timestamp=None)
    fut = await producer.send_batch(batch, topic, partition=1)
    batch_meta = await asyncio.wait_for(fut, TIMEOUT)
    assert (batch_meta.partition, batch_meta.offset) == (1, 0)  # base offset of the batch

    records = await _read_all(kafka_bootstrap, topic)
    by_part = {p: [(r.key, r.value) for r in records if r.partition == p] for p in (0, 1)}
    assert by_part[0] == [(b"k0", b"v0")]
    assert by_part[1] == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(1, 6)]


async def test_end_offsets_assign_and_seek(
    kafka_bootstrap: str, topic_factory: TopicFactory, producer: AIOKafkaProducer
) -> None:
    topic = await topic_factory(1)
    for i in range(7):
        await producer.send_and_wait(topic, str(i).encode())
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        assert await consumer.end_offsets([tp]) == {tp: 7}
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        await consumer.seek_to_end(tp)
        assert await consumer.position(tp) == 7
        await consumer.seek_to_beginning(tp)
        assert await consumer.position(tp) == 0
        values = [r.value for r in await _drain(consumer, 7)]
        assert values == [str(i).encode() for i in range(7)]
        consumer.seek(tp, 5)
        assert [r.value for r in await _drain(consumer, 2)] == [b"5", b"6"]
    finally:
        await consumer.stop()


async def test_group_explicit_commit_then_resume(
    kafka_bootstrap: str, topic_factory: TopicFactory, producer: AIOKafkaProducer
) -> None:
    topic = await topic_factory(2)
    for i in range(10):
        await producer.send_and_wait(topic, f"m{i}".encode(), partition=i % 2)
    group = _group()

    def make_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    first = make_consumer()
    await first.start()
    try:
        records = await _drain(first, 10)
        assert len(records) == 10
        assert first.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        # Commit only up to offset 3 on each partition: records 0-2 are "done".
        offsets = {TopicPartition(topic, p): 3 for p in (0, 1)}
        await first.commit(offsets)
        for tp, offset in offsets.items():
            assert await first.committed(tp) == offset
    finally:
        await first.stop()

    second = make_consumer()
    await second.start()
    try:
        resumed = await _drain(second, 4)
        assert sorted((r.partition, r.offset) for r in resumed) == [
            (0, 3),
            (0, 4),
            (1, 3),
            (1, 4),
        ]
        await second.commit()  # commit the consumed position (offset 5 on each)
        for p in (0, 1):
            assert await second.committed(TopicPartition(topic, p)) == 5
    finally:
        await second.stop()


async def test_tombstones_and_headers(
    kafka_bootstrap: str, topic_factory: TopicFactory, producer: AIOKafkaProducer
) -> None:
    topic = await topic_factory(1, {"cleanup.policy": "compact"})
    headers = [("source-offset", b"42"), ("schema", b"v1"), ("empty", b"")]
    await producer.send_and_wait(topic, b'{"qty":3}', key=b"SKU-1", headers=headers)
    await producer.send_and_wait(topic, None, key=b"SKU-1", headers=[("deleted", b"1")])
    batch = producer.create_batch()
    assert batch.append(key=b"SKU-2", value=None, timestamp=None, headers=[("b", b"2")])
    await asyncio.wait_for(await producer.send_batch(batch, topic, partition=0), TIMEOUT)

    records = await _read_all(kafka_bootstrap, topic)
    assert [(r.key, r.value) for r in records] == [
        (b"SKU-1", b'{"qty":3}'),
        (b"SKU-1", None),
        (b"SKU-2", None),
    ]
    assert list(records[0].headers) == headers
    assert list(records[1].headers) == [("deleted", b"1")]
    assert list(records[2].headers) == [("b", b"2")]


async def test_idempotent_producer(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = await topic_factory(2)
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await p.start()
    try:
        futures = [await p.send(topic, f"i{i}".encode(), partition=i % 2) for i in range(20)]
        await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
        batch = p.create_batch()
        assert batch.append(key=b"b", value=b"batched", timestamp=None)
        await asyncio.wait_for(await p.send_batch(batch, topic, partition=0), TIMEOUT)
    finally:
        await p.stop()
    values = sorted(r.value for r in await _read_all(kafka_bootstrap, topic) if r.value)
    assert values == sorted([f"i{i}".encode() for i in range(20)] + [b"batched"])


async def test_transactional_producer(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    source = await topic_factory(1)
    sink = await topic_factory(1)
    group = _group()
    p = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:10]}"
    )
    await p.start()
    try:
        # Committed transaction with offsets: visible to read_committed, offsets committed.
        await p.begin_transaction()
        await p.send(sink, b"committed-1")
        await p.send(sink, b"committed-2")
        offsets = {TopicPartition(source, 0): OffsetAndMetadata(5, "")}
        await p.send_offsets_to_transaction(offsets, group)
        await p.commit_transaction()
        # Aborted transaction: invisible to read_committed.
        async with p.transaction():
            await p.send(sink, b"committed-3")
        await p.begin_transaction()
        await p.send(sink, b"aborted")
        await p.abort_transaction()
    finally:
        await p.stop()

    committed = await _read_all(kafka_bootstrap, sink, isolation_level="read_committed")
    assert [r.value for r in committed] == [b"committed-1", b"committed-2", b"committed-3"]
    uncommitted = await _read_all(kafka_bootstrap, sink)
    assert b"aborted" in [r.value for r in uncommitted]

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(source, 0)) == 5
    finally:
        await consumer.stop()


async def test_restart_keeps_data_and_port(
    kafka_broker: Broker, topic_factory: TopicFactory
) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = await topic_factory(1, bootstrap=bootstrap)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        await p.send_and_wait(topic, b"before")
    finally:
        await p.stop()

    await asyncio.to_thread(kafka_broker.restart)  # clean stop + start
    assert kafka_broker.bootstrap == bootstrap
    await asyncio.to_thread(kafka_broker.kill)
    assert not kafka_broker.is_running()
    await asyncio.to_thread(kafka_broker.restart)  # crash recovery
    assert kafka_broker.is_running()

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        await p.send_and_wait(topic, b"after")
    finally:
        await p.stop()
    assert [r.value for r in await _read_all(bootstrap, topic)] == [b"before", b"after"]

"""syncd.kafka's glue: partitioning as the Java client does it, reading partitions to their
end, and the bounded modes' end check (the last two against the real broker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from syncd.kafka import clients, partitioning, reading
from syncd.kafka.partitioning import murmur2, partition_for

if TYPE_CHECKING:
    from tests.conftest import TopicFactory

# Kafka's own UtilsTest.testMurmur2 vectors (signed 32-bit, as Java prints them).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "java"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_is_the_java_clients(data: bytes, java: int) -> None:
    assert murmur2(data) & 0xFFFFFFFF == java & 0xFFFFFFFF


def test_partition_for_is_the_java_default_partitioner() -> None:
    # Utils.toPositive(murmur2(key)) % partitions
    for data, java in JAVA_MURMUR2.items():
        for n in (1, 3, 12, 64):
            assert partition_for(data.decode(), n) == (java & 0x7FFFFFFF) % n
    spread = {partition_for(f"sku-{i}", 8) for i in range(200)}
    assert spread == set(range(8))


def test_the_glue_lives_in_its_modules() -> None:
    import importlib.util

    assert importlib.util.find_spec("syncd.kafka.bus") is None  # the transition shim is gone
    assert partitioning.partition_for is partition_for
    for module, names in (
        (clients, ("client_settings", "ensure_topics", "partition_count", "create")),
        (reading, ("read_to_end", "at_end")),
    ):
        assert all(callable(getattr(module, n)) for n in names)


@pytest.mark.kafka
async def test_read_to_end_and_at_end(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = await topic_factory(3)
    empty = await topic_factory(1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(topic, b"v%d" % i, key=b"k%d" % i, partition=i % 2)
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        got = [rec async for rec in reading.read_to_end(consumer, tps, batch=7)]
        assert sorted(rec.value for rec in got if rec.value is not None) == sorted(
            b"v%d" % i for i in range(30)
        )
        assert {rec.partition for rec in got} == {0, 1}  # partition 2 is empty: no wait
        assert await reading.at_end(consumer, tps)
        assert not await reading.at_end(consumer, [])  # nothing assigned: not done
        await consumer.seek_to_beginning(*tps)
        assert not await reading.at_end(consumer, tps)
        empty_tp = [TopicPartition(empty, 0)]
        assert [rec async for rec in reading.read_to_end(consumer, empty_tp)] == []
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_partition_count(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = await topic_factory(4)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert await clients.partition_count(admin, topic) == 4
        assert await clients.partition_count(admin, topic + "-missing") is None
    finally:
        await admin.close()

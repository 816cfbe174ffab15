"""Reading a topic's partitions from the beginning to their current end (restores, views,
reports) and asking whether a consumer has reached the end (the stages' bounded modes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError as AioKafkaError


async def read_to_end(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], batch: int = 5000
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Yield every record of ``partitions`` from the beginning to their current end.

    ``consumer`` must have no group (manual assignment); it is re-assigned here.
    """
    tps = list(partitions)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    todo = {tp for tp in tps if ends[tp] > 0}
    for tp in tps:
        if tp in todo and await consumer.position(tp) >= ends[tp]:
            todo.discard(tp)
    while todo:
        got = await consumer.getmany(*todo, timeout_ms=500, max_records=batch)
        for tp, records in got.items():
            for rec in records:
                if rec.offset < ends[tp]:
                    yield rec
            if await consumer.position(tp) >= ends[tp]:
                todo.discard(tp)


async def at_end(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> bool:
    """Whether the consumer's position is at the end of every given partition (bounded modes)."""
    tps = list(partitions)
    if not tps:
        return False
    try:
        ends = await consumer.end_offsets(tps)
    except AioKafkaError:
        return False
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True

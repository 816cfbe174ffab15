"""Which partition a key lands in: the Java client's default partitioner (murmur2), so
that syncd, Kafka Streams and Java producers agree on the partition of a SKU or account."""

from __future__ import annotations

import functools

from aiokafka.partitioner import murmur2

__all__ = ["murmur2", "partition_for"]


@functools.lru_cache(maxsize=1 << 17)
def partition_for(key: str, partitions: int) -> int:
    """The partition the Java client's default partitioner (murmur2) picks for ``key``."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions

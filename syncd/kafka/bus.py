"""Transition shim: the Kafka glue now lives in :mod:`syncd.kafka.clients`,
:mod:`syncd.kafka.partitioning` and :mod:`syncd.kafka.reading`; this module re-exports
those names for the callers not yet moved and keeps :func:`dead_letter_headers` until it
moves to ``syncd.contract.deadletter``. Import from the new modules."""

from __future__ import annotations

from syncd.kafka.clients import client_settings, create, ensure_topics, partition_count
from syncd.kafka.partitioning import partition_for
from syncd.kafka.reading import at_end, read_to_end

__all__ = [
    "at_end",
    "client_settings",
    "create",
    "dead_letter_headers",
    "ensure_topics",
    "partition_count",
    "partition_for",
    "read_to_end",
]


def dead_letter_headers(
    topic: str, partition: int, offset: int, code: str, reason: str
) -> list[tuple[str, bytes]]:
    return [
        ("syncd.source.topic", topic.encode()),
        ("syncd.source.partition", str(partition).encode()),
        ("syncd.source.offset", str(offset).encode()),
        ("syncd.error.code", code.encode()),
        ("syncd.error.reason", reason.encode()),
    ]

"""The dead-letter record: where a rejected input record came from, and why.

Owns the headers the compute stage puts on a record it copies to the dead-letter topic
(``topics.dead_letter``, docs/contract.md): the source topic, partition and offset, and
the rejection's reason code (one of :data:`syncd.contract.REASON_CODES`) and reason.

Pure: no I/O.
"""

from __future__ import annotations


def dead_letter_headers(
    topic: str, partition: int, offset: int, code: str, reason: str
) -> list[tuple[str, bytes]]:
    """The Kafka headers of a dead-lettered record (values UTF-8)."""
    return [
        ("syncd.source.topic", topic.encode()),
        ("syncd.source.partition", str(partition).encode()),
        ("syncd.source.offset", str(offset).encode()),
        ("syncd.error.code", code.encode()),
        ("syncd.error.reason", reason.encode()),
    ]

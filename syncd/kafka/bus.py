"""Transition shim: the Kafka glue now lives in :mod:`syncd.kafka.clients`,
:mod:`syncd.kafka.partitioning` and :mod:`syncd.kafka.reading`; this module re-exports
those names for the callers not yet moved (:func:`dead_letter_headers` moved to
:mod:`syncd.contract.deadletter`). Import from the new modules."""

from __future__ import annotations

from syncd.kafka.clients import client_settings, create, ensure_topics, partition_count
from syncd.kafka.partitioning import partition_for
from syncd.kafka.reading import at_end, read_to_end

__all__ = [
    "at_end",
    "client_settings",
    "create",
    "ensure_topics",
    "partition_count",
    "partition_for",
    "read_to_end",
]

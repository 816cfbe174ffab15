"""Where one ``<p>.desired`` record goes (docs/publisher.md).

Owns :class:`Router`: a record is decoded (:func:`syncd.records.decode_desired`) and
handed to its account's pusher (a newer quantity, or a tombstone: the listing left the
catalog); an undecodable record, one of an account this stage has no channel for, or
one in another partition than its account's is skipped (its offset resolved at once)
and logged (an unknown account once).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import structlog

from syncd.core.keys import account_of
from syncd.kafka.partitioning import partition_for
from syncd.publish.pusher import AccountPusher
from syncd.publish.results import Resolve
from syncd.records import decode_desired

log = structlog.get_logger("syncd.publish.stage")

Unlinked = list[tuple[int, str, list[int]]]
"""(partition, listing key, offsets) of listings that left the catalog."""


class Router:
    """Routes desired records to the pushers; see the module docstring."""

    def __init__(
        self,
        channels: Collection[str],
        unconfigured: Collection[str],
        partitions: int,
        pusher: Callable[[str, int], AccountPusher],
        resolve: Resolve,
    ) -> None:
        self.channels = channels
        """Accounts with a channel (the others are skipped)."""
        self.unconfigured = unconfigured
        self.partitions = partitions
        self.pusher = pusher
        self.resolve = resolve
        self.warned: set[str] = set()

    def route(self, p: int, rec: Any, unlinked: Unlinked) -> str:
        """Route one desired record of partition ``p``; returns the outcome counted in the
        stage's ``counts``; a tombstone's listing is added to ``unlinked``."""
        key = rec.key.decode(errors="replace") if rec.key is not None else ""
        try:
            d = decode_desired(rec.key, rec.value) if rec.value is not None else None
        except ValueError as e:
            log.warning(
                "desired_record_invalid",
                topic=rec.topic,
                partition=p,
                offset=rec.offset,
                reason=str(e),
            )
            self.resolve(p, [rec.offset])
            return "invalid"
        account = account_of(d.key if d is not None else key)
        if account not in self.channels:
            self.resolve(p, [rec.offset])
            unconfigured = account in self.unconfigured
            outcome = "unconfigured_account" if unconfigured else "unknown_account"
            if account not in self.warned:
                self.warned.add(account)
                log.warning(
                    "desired_record_skipped",
                    account=account,
                    reason=outcome,
                    topic=rec.topic,
                    partition=p,
                    offset=rec.offset,
                )
            return outcome
        if partition_for(account, self.partitions) != p:
            log.warning(
                "desired_record_wrong_partition",
                account=account,
                topic=rec.topic,
                partition=p,
                offset=rec.offset,
            )
            self.resolve(p, [rec.offset])
            return "wrong_partition"
        pusher = self.pusher(account, p)
        if d is None:
            unlinked.append((p, key, [*pusher.unlink(key), rec.offset]))
            return "unlinked"
        d.offsets.append(rec.offset)
        pusher.offer(d)
        return "desired"

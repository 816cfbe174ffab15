"""The values a pusher works with and hands out.

Owns :class:`Attempt` (one update's share of one call) and :func:`push_result` (its
push-results record), the :class:`Sink` protocol through which a pusher hands results
back (:class:`syncd.publish.stage.PublishService` writes them to Kafka; tests keep them
in memory), the :data:`ActionWriter` of manual-action records, the :class:`RetryCap`
protocol, and :class:`Park` (why and until when an account or a listing is parked).
:class:`~syncd.core.sending.Desired` is re-exported from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from syncd.channels.base import PushOutcome
from syncd.core.errortable import Decision, RetrySpec
from syncd.core.sending import Desired
from syncd.records import PushResult

__all__ = [
    "INTERNAL_ERROR",
    "ActionWriter",
    "Attempt",
    "Desired",
    "Park",
    "RetryCap",
    "Sink",
    "push_result",
]

INTERNAL_ERROR = "syncd.internal_error"
"""The channel client raised an unexpected exception (a bug); the update is handed over."""

ActionWriter = Callable[[Sequence[tuple[str, dict[str, Any]]]], Awaitable[None]]
"""Writes manual-action records (key, value) to ``topics.actions``."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One update's share of one call, as written to push-results."""

    desired: Desired
    outcome: PushOutcome
    attempt: int
    latency_ms: float
    at_ms: int
    final: bool
    """No further attempt follows for this quantity (ok, permanent, or retries ran out)."""
    write_acked: bool
    """Record the quantity in the acked topic (ok, and the listing is still linked)."""
    sent: int | None = None
    """The quantity sent when an ``adjust`` row changed it (else the desired one)."""
    decision: Decision | None = None
    """The error table's decision for a failed outcome."""
    held: int | None = None
    """Units the platform holds for a campaign (``adjust`` / ``hold``); 0: the hold ended.
    The sink hands changes to the compute stage (``topics.holds``), where they leave
    every other channel's available stock."""
    min_quantity: int | None = None
    """The minimum the platform demands (``adjust`` / ``min_quantity``)."""

    @property
    def quantity(self) -> int:
        return self.desired.quantity if self.sent is None else self.sent

    @property
    def source_ts(self) -> int | None:
        return self.desired.source_ts

    @property
    def result_class(self) -> str:
        """``ok``, else the error table's class of the failure (``unclassified``: none)."""
        if self.outcome.ok:
            return "ok"
        return self.decision.error_class if self.decision is not None else "unclassified"


def push_result(account: str, a: Attempt) -> PushResult:
    """The push-results record of one attempt."""
    d, o, dec = a.desired, a.outcome, a.decision
    return PushResult(
        account,
        d.listing_ref,
        d.sku,
        a.quantity,
        o.ok,
        a.attempt,
        o.http_status,
        o.code,
        o.message,
        round(a.latency_ms, 1),
        d.source_ts,
        a.at_ms if o.ok else None,
        a.final,
        dec is not None and dec.error_class == "retry",
        d.quantity if a.quantity != d.quantity else None,
        a.held,
        a.min_quantity,
        dec.error_class if dec is not None else None,
        dec.row.id if dec is not None else None,
        dec.action if dec is not None else None,
    )


class Sink(Protocol):
    """Where a pusher hands its results (the service: Kafka; tests may keep them in memory)."""

    async def record(
        self, account: str, partition: int, attempts: Sequence[Attempt]
    ) -> Awaitable[None]:
        """Hand the attempts over for writing (push-results, and acked for successes).

        Returns once they are queued, in call order; the returned awaitable completes
        once they are durable (and raises if writing failed).
        """
        ...

    def resolve(self, partition: int, offsets: Iterable[int]) -> None:
        """These desired-topic offsets need nothing more from this process."""
        ...


class RetryCap(Protocol):
    """Caps every error-table row's retry bounds (a pusher given none uses the rows
    alone, as the publish stage does; tests keep retries short with
    :class:`syncd.testing.fakes.RetryPolicy`)."""

    def bound(self, spec: RetrySpec) -> RetrySpec: ...


@dataclass(slots=True)
class Park:
    """Why and until when an account (or a listing) is parked."""

    decision: Decision
    next_probe: float
    """When the next probe may go (monotonic seconds)."""
    desired: Desired | None = None
    """For a held listing: its newest quantity."""

"""The channel-client contract: the types every platform client and the publisher share.

Owns the value types passed between the publisher and a client
(:class:`StockUpdate`, :class:`PushOutcome`, :class:`ThrottleStatus`), the
codes syncd itself produces, :func:`listing_ref` (re-exported from
:mod:`syncd.core.keys`, its one home), the outcome and batch
helpers (:func:`failure`, :func:`success`, :func:`fail_all`,
:func:`dedupe_last`, :func:`chunk`) and the :class:`Channel` and
:class:`TokenStore` protocols. Nothing here does I/O and nothing here imports
a platform module: the registry of platforms is :mod:`syncd.channels`, the
channel errors live in :mod:`syncd.errors`, the HTTP plumbing in
:mod:`syncd.channels.http` and the token stores in :mod:`syncd.channels.tokens`.

Rules every client follows:

- ``push`` never raises for a platform-level answer: every update gets a
  :class:`PushOutcome` carrying the platform's own ``code`` and ``message``
  verbatim. It raises only :class:`~syncd.errors.ChannelTransportError`
  (timeout, connection refused, reset), which is retriable.
- No retries inside clients (the publisher retries), except that an auth
  error is followed by one token refresh and one re-send.
- Secrets (keys, tokens, signatures) never appear in logs or exception
  messages.
- Codes that syncd itself produces (never a platform) start with ``syncd.``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from syncd.core.keys import listing_ref as listing_ref

T = TypeVar("T")

# -- value types --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockUpdate:
    """Set ``listing`` (the platform's identifier object) to ``quantity`` units."""

    listing: dict[str, Any]
    listing_ref: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What the platform answered for one update.

    ``code`` and ``message`` are the platform's own, verbatim (Shopee's module
    prefix such as ``product.`` is kept as received); ``http_status`` is the
    status of the call that carried the update (or of the failed token
    refresh, see ``raw["stage"]``). ``retry_after_s`` is set only when the
    platform said how long to wait. ``raw`` is the part of the platform's
    answer about this update (plus request ids), for push-results and
    operators.
    """

    listing_ref: str
    ok: bool
    http_status: int | None
    code: str | None
    message: str | None
    retry_after_s: float | None
    raw: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    """A platform's own view of the caller's rate-limit bucket (Shopify cost extension)."""

    maximum_available: float
    currently_available: float
    restore_rate: float
    requested_cost: float | None
    actual_cost: float | None
    observed_at: float
    """``time.monotonic()`` when the answer arrived."""


# Codes produced by syncd itself, never by a platform.
INVALID_LISTING = "syncd.invalid_listing"
"""The listing object lacks the identifiers the platform needs; nothing was sent."""
BATCH_REJECTED = "syncd.batch_rejected"
"""The platform refused the call because of *other* updates in it; this one was not applied."""
NO_RESULT = "syncd.no_result"
"""The platform accepted the call but said nothing about this update."""
BAD_RESPONSE = "syncd.bad_response"
"""The platform's answer could not be understood (not JSON, wrong shape)."""
NO_TOKEN = "syncd.no_token"
"""No usable access token and no way to get one: the store must be (re)connected."""


# -- outcomes and batches -----------------------------------------------------


def failure(
    update: StockUpdate,
    http_status: int | None,
    code: str | None,
    message: str | None,
    retry_after_s: float | None = None,
    raw: dict[str, Any] | None = None,
) -> PushOutcome:
    """A failed outcome for one update."""
    return PushOutcome(update.listing_ref, False, http_status, code, message, retry_after_s, raw)


def success(
    update: StockUpdate, http_status: int | None, raw: dict[str, Any] | None = None
) -> PushOutcome:
    """An outcome for one update the platform applied (or accepted)."""
    return PushOutcome(update.listing_ref, True, http_status, None, None, None, raw)


def fail_all(
    batch: Sequence[StockUpdate],
    http_status: int | None,
    code: str | None,
    message: str | None,
    retry_after_s: float | None = None,
    raw: dict[str, Any] | None = None,
) -> list[PushOutcome]:
    """The same failure for every update of a batch."""
    return [failure(u, http_status, code, message, retry_after_s, raw) for u in batch]


def dedupe_last(updates: Sequence[StockUpdate]) -> list[StockUpdate]:
    """Keep the last update per listing, in first-seen order."""
    last: dict[str, StockUpdate] = {}
    for u in updates:
        last.pop(u.listing_ref, None)
        last[u.listing_ref] = u
    return list(last.values())


def chunk(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# -- protocols ----------------------------------------------------------------


@runtime_checkable
class Channel(Protocol):
    """One marketplace account, as the publisher sees it."""

    platform: str
    account: str
    max_batch: int

    def batches(self, updates: Sequence[StockUpdate]) -> list[list[StockUpdate]]:
        """Group updates into calls the platform accepts (order kept; last update per listing)."""
        ...

    async def push(self, batch: Sequence[StockUpdate]) -> list[PushOutcome]:
        """Send one batch; one outcome per update, in order."""
        ...

    async def read_stock(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Quantities the platform shows now, keyed by :func:`listing_ref`; missing = unknown."""
        ...

    async def read_held(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Units the platform holds for campaigns, keyed by :func:`listing_ref`; asked when
        a campaign refusal carries no number; missing = unknown."""
        ...

    async def close(self) -> None:
        """Close the account's HTTP session."""
        ...

    @property
    def throttle_status(self) -> ThrottleStatus | None:
        """The newest cost-bucket report of the platform (Shopify), else None; the cost
        limiter reads it after every call."""
        ...

    async def reauthorize(self) -> bool:
        """Force a token refresh now (the platform refused the token): True once a new
        token is in hand, False when the account has no token to refresh; raises
        :class:`ChannelAuthError` (refused) or :class:`ChannelTransportError`."""
        ...


class TokenStore(Protocol):
    """Where an account's tokens live between calls and across restarts."""

    def get(self, account: str) -> dict[str, Any] | None: ...

    def put(self, account: str, token: Mapping[str, Any]) -> None: ...

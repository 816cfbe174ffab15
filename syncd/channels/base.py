"""The channel-client contract and the small pieces every platform client shares.

Owns: the value types passed between the publisher and a client
(:class:`StockUpdate`, :class:`PushOutcome`, :class:`ThrottleStatus`), the
codes syncd itself produces, the outcome helpers (:func:`fail_all` and
friends), the :class:`Channel` and :class:`TokenStore` protocols, the channel
errors (subclasses of :class:`~syncd.errors.ChannelError`), the readers of a
platform answer and of a setting (:class:`HttpResult`, :func:`seconds_in`,
:func:`setting`) and the factory :func:`make_channel`.

Re-exported from the modules that build on this contract, so that everything
keeps its place in this namespace: :class:`HttpChannel` (the base the platform
modules build on: one aiohttp session per account, transport-error mapping,
batching) from :mod:`syncd.channels.http`, and the token stores
(:class:`MemoryTokenStore`, :class:`JsonFileTokenStore`) from
:mod:`syncd.channels.tokens`, which also owns token caching with refresh ahead
of expiry and one refresh-and-resend on an auth error.

Rules every client follows:

- ``push`` never raises for a platform-level answer: every update gets a
  :class:`PushOutcome` carrying the platform's own ``code`` and ``message``
  verbatim. It raises only :class:`ChannelTransportError` (timeout, connection
  refused, reset), which is retriable.
- No retries inside clients (the publisher retries), except that an auth
  error is followed by one token refresh and one re-send.
- Secrets (keys, tokens, signatures) never appear in logs or exception
  messages.
- Codes that syncd itself produces (never a platform) start with ``syncd.``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import aiohttp
import orjson
import structlog

from syncd.errors import ChannelError, ConfigError

log = structlog.get_logger("syncd.channels")

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


def listing_ref(listing: Mapping[str, Any]) -> str:
    """Canonical text of a listing object: JSON, sorted keys, no spaces."""
    return orjson.dumps(dict(listing), option=orjson.OPT_SORT_KEYS).decode()


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


# -- errors -------------------------------------------------------------------


class ChannelTransportError(ChannelError):
    """The request did not get a platform answer (connection refused, reset, DNS)."""

    code = "channel_transport"
    retriable = True

    def __init__(self, platform: str, account: str, operation: str, reason: str) -> None:
        super().__init__(
            f"{platform} {account}: {operation} failed: {reason}",
            platform=platform,
            account=account,
            operation=operation,
        )
        self.platform = platform
        self.account = account
        self.operation = operation


class ChannelTimeout(ChannelTransportError):
    """The request timed out (total timeout of the account's session)."""

    code = "channel_timeout"


class ChannelAuthError(ChannelError):
    """Getting or refreshing the account's token failed with a platform answer.

    ``push`` turns this into outcomes (``raw["stage"] == "token"``);
    ``read_stock`` raises it. Carries the token endpoint's status, code and
    message verbatim; never the token or secret.
    """

    code = "channel_auth_failed"
    retriable = False

    def __init__(
        self,
        platform: str,
        account: str,
        http_status: int | None,
        platform_code: str | None,
        platform_message: str | None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"{platform} {account}: token request refused"
            f" (http {http_status}, {platform_code}: {platform_message})",
            platform=platform,
            account=account,
            http_status=http_status,
            platform_code=platform_code,
        )
        self.platform = platform
        self.account = account
        self.http_status = http_status
        self.platform_code = platform_code
        self.platform_message = platform_message
        self.raw = raw


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


# -- reading answers and settings ---------------------------------------------

SessionFactory = Callable[[], aiohttp.ClientSession]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HttpResult:
    """A platform answer: status, headers, parsed JSON body (None if not JSON), raw text."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str

    def header(self, name: str) -> str | None:
        """A response header, by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds, when given as a number (an HTTP date is ignored)."""
        value = self.header("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def snippet(self, limit: int = 300) -> str:
        return self.text[:limit]

    def message(self, key: str = "message") -> str:
        """The body's ``key`` as text when it is set (not empty), else :meth:`snippet`."""
        if isinstance(self.body, dict) and self.body.get(key):
            return str(self.body[key])
        return self.snippet()


def fail_unreadable(
    batch: Sequence[StockUpdate], result: HttpResult, retry_after_s: float | None
) -> list[PushOutcome]:
    """Every update failed with an answer of the wrong shape: no code from HTTP 400 on
    (the status says it), else :data:`BAD_RESPONSE`; the message is the start of the body."""
    code = None if result.status >= 400 else BAD_RESPONSE
    return fail_all(batch, result.status, code, result.snippet(), retry_after_s)


_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


def seconds_in(message: str | None) -> float | None:
    """The first 'N seconds' in a platform message ('...ban will last 1 seconds')."""
    if not message:
        return None
    m = _SECONDS.search(message)
    return float(m.group(1)) if m else None


def setting(
    settings: Mapping[str, Any], account: str, key: str, kind: type, default: Any = ...
) -> Any:
    """Read one setting with a type check; ConfigError names ``channels.<account>.<key>``."""
    if key not in settings or settings[key] is None:
        if default is ...:
            raise ConfigError(f"channels.{account}.{key}", "is required")
        return default
    value = settings[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"channels.{account}.{key}", f"must be {kind.__name__}")
    return value


# -- factory ------------------------------------------------------------------


def make_channel(
    platform: str,
    account: str,
    settings: Mapping[str, Any],
    token_store: TokenStore,
    session_factory: SessionFactory | None = None,
) -> Channel:
    """Build the client for one account from its config table (credentials already resolved)."""
    if platform == "shopee":
        from syncd.channels.shopee import ShopeeChannel

        return ShopeeChannel(account, settings, token_store, session_factory)
    if platform == "lazada":
        from syncd.channels.lazada import LazadaChannel

        return LazadaChannel(account, settings, token_store, session_factory)
    if platform == "wayfair":
        from syncd.channels.wayfair import WayfairChannel

        return WayfairChannel(account, settings, token_store, session_factory)
    if platform == "shopify":
        from syncd.channels.shopify import ShopifyChannel

        return ShopifyChannel(account, settings, token_store, session_factory)
    raise ConfigError(f"channels.{account}", f"unknown platform {platform!r}")


# -- re-exports ---------------------------------------------------------------
# Defined by the modules that build on the contract above (they import this module, so
# these imports come last; ``syncd/channels/__init__.py`` loads this module first).

from syncd.channels.http import HttpChannel as HttpChannel  # noqa: E402
from syncd.channels.tokens import (  # noqa: E402
    JsonFileTokenStore as JsonFileTokenStore,
)
from syncd.channels.tokens import (  # noqa: E402
    MemoryTokenStore as MemoryTokenStore,
)

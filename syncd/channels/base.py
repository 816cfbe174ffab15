"""The channel-client contract and what every platform client shares.

Owns: the value types passed between the publisher and a client
(:class:`StockUpdate`, :class:`PushOutcome`, :class:`ThrottleStatus`), the
:class:`Channel` and :class:`TokenStore` protocols, the two token stores, the
channel errors (subclasses of :class:`~syncd.errors.ChannelError`), the
factory :func:`make_channel`, and :class:`HttpChannel`, the base the platform
modules build on (one aiohttp session per account, transport-error mapping,
token caching with refresh ahead of expiry and one refresh-and-resend on an
auth error).

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

import asyncio
import os
import re
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aiohttp
import orjson
import structlog

from syncd.errors import ChannelError, ConfigError

log = structlog.get_logger("syncd.channels")

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

    async def close(self) -> None:
        """Close the account's HTTP session."""
        ...


class TokenStore(Protocol):
    """Where an account's tokens live between calls and across restarts."""

    def get(self, account: str) -> dict[str, Any] | None: ...

    def put(self, account: str, token: Mapping[str, Any]) -> None: ...


class MemoryTokenStore:
    """Tokens in a dict; lost on restart (tests, non-rotating credentials)."""

    def __init__(self, initial: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._tokens: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (initial or {}).items()}

    def get(self, account: str) -> dict[str, Any] | None:
        token = self._tokens.get(account)
        return dict(token) if token is not None else None

    def put(self, account: str, token: Mapping[str, Any]) -> None:
        self._tokens[account] = dict(token)


class JsonFileTokenStore:
    """Tokens of all accounts in one JSON object file, ``{account: token}``.

    Every ``put`` rewrites the file atomically (temporary file in the same
    directory, fsync, rename, fsync of the directory) with mode 0600, so a
    rotated refresh token (Shopee hands out a new one on every refresh)
    survives a crash or restart. Reads go to the file each time, so
    several channel objects of one process share it. Small and rare writes:
    done synchronously.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError:
            raise ConfigError("token_store", f"{self.path} is not a JSON object") from None
        if not isinstance(data, dict):
            raise ConfigError("token_store", f"{self.path} is not a JSON object")
        return data

    def get(self, account: str) -> dict[str, Any] | None:
        with self._lock:
            token = self._load().get(account)
        return dict(token) if isinstance(token, dict) else None

    def put(self, account: str, token: Mapping[str, Any]) -> None:
        with self._lock:
            data = self._load()
            data[account] = dict(token)
            raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
            directory = self.path.parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(raw)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


# -- HTTP base ----------------------------------------------------------------

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


def fail_all(
    batch: Sequence[StockUpdate],
    http_status: int | None,
    code: str | None,
    message: str | None,
    retry_after_s: float | None = None,
    raw: dict[str, Any] | None = None,
) -> list[PushOutcome]:
    """The same failure for every update of a batch."""
    return [
        PushOutcome(u.listing_ref, False, http_status, code, message, retry_after_s, raw)
        for u in batch
    ]


def dedupe_last(updates: Sequence[StockUpdate]) -> list[StockUpdate]:
    """Keep the last update per listing, in first-seen order."""
    last: dict[str, StockUpdate] = {}
    for u in updates:
        last.pop(u.listing_ref, None)
        last[u.listing_ref] = u
    return list(last.values())


def chunk(items: Sequence[StockUpdate], size: int) -> list[list[StockUpdate]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class HttpChannel:
    """Shared plumbing of the platform clients (not part of the protocol).

    Token dicts kept in the :class:`TokenStore` have ``access_token`` and
    optionally ``refresh_token``, ``expires_at`` and ``refresh_at`` (epoch
    seconds). A token is refreshed ahead of ``refresh_at``, and once after an
    auth error; the refresh runs under a per-account lock and re-reads the
    store first, so concurrent pushes refresh once (which matters where a
    refresh token can be used only once).
    """

    platform: str = ""
    hard_max_batch: int = 1
    default_batch: int = 1
    default_refresh_ahead_s: float = 300.0

    def __init__(
        self,
        account: str,
        settings: Mapping[str, Any],
        token_store: TokenStore,
        session_factory: SessionFactory | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.account = account
        self._settings = settings
        self._tokens = token_store
        self._clock: Clock = clock or time.time
        self._timeout_s = setting(settings, account, "timeout_s", float, 10.0)
        self._max_connections = setting(settings, account, "max_connections", int, 8)
        size = setting(settings, account, "batch_size", int, self.default_batch)
        if size < 1:
            raise ConfigError(f"channels.{account}.batch_size", "must be at least 1")
        self.max_batch = min(size, self.hard_max_batch)
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._auth_lock = asyncio.Lock()
        self._log = log.bind(platform=self.platform, account=account)

    # -- session --------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._session_factory is not None:
                self._session = self._session_factory()
            else:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                    connector=aiohttp.TCPConnector(limit=self._max_connections),
                )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """One HTTP call; transport failures become :class:`ChannelTransportError`.

        Error messages name the operation and the exception class only, never
        the URL (its query may hold a token or a signature).
        """
        hdrs = {"Accept": "application/json", **(headers or {})}
        data: Any = None
        if json_body is not None:
            data = orjson.dumps(json_body)
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data = aiohttp.FormData(dict(form))
        started = time.monotonic()
        try:
            async with self._http().request(
                method, url, params=params, data=data, headers=hdrs
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = {k: v for k, v in resp.headers.items()}
        except TimeoutError:
            self._log.warning("channel_request_timeout", operation=operation)
            raise ChannelTimeout(
                self.platform, self.account, operation, f"no answer within {self._timeout_s}s"
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            self._log.warning("channel_request_failed", operation=operation, error=type(e).__name__)
            raise ChannelTransportError(
                self.platform, self.account, operation, type(e).__name__
            ) from None
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        self._log.debug(
            "channel_request_done",
            operation=operation,
            http_status=status,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return HttpResult(status, resp_headers, body, text)

    # -- tokens ---------------------------------------------------------------

    def _initial_token(self) -> dict[str, Any] | None:
        """The token from settings, when the store has none yet."""
        access = self._settings.get("access_token")
        refresh = self._settings.get("refresh_token")
        if not access and not refresh:
            return None
        token: dict[str, Any] = {}
        if access:
            token["access_token"] = str(access)
        if refresh:
            token["refresh_token"] = str(refresh)
        expires_at = self._settings.get("access_token_expires_at")
        if isinstance(expires_at, int | float):
            token["expires_at"] = float(expires_at)
            token["refresh_at"] = float(expires_at) - self._refresh_ahead()
        return token

    def _refresh_ahead(self) -> float:
        return float(
            setting(
                self._settings,
                self.account,
                "refresh_ahead_s",
                float,
                self.default_refresh_ahead_s,
            )
        )

    def _current_token(self) -> dict[str, Any] | None:
        token = self._tokens.get(self.account)
        if token is None:
            token = self._initial_token()
        return token

    def _needs_refresh(self, token: Mapping[str, Any] | None) -> bool:
        if token is None or not token.get("access_token"):
            return True
        refresh_at = token.get("refresh_at")
        return isinstance(refresh_at, int | float) and self._clock() >= refresh_at

    def _can_refresh(self, token: Mapping[str, Any] | None) -> bool:
        """Whether :meth:`_fetch_token` can get a new token (platform-specific)."""
        return bool(token and token.get("refresh_token"))

    async def _fetch_token(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        """Get a new token from the platform; raise ChannelAuthError when refused."""
        raise NotImplementedError

    async def access_token(self) -> str:
        """A usable access token, refreshed first when it is due.

        When a refresh ahead of expiry fails but the current token has not
        expired yet, the current token is used (and the refresh tried again on
        the next call): a refused or unreachable token endpoint must not stop
        pushes that still work.
        """
        token = self._current_token()
        if self._needs_refresh(token) and (token is None or self._can_refresh(token)):
            stale = token.get("access_token") if token else None
            try:
                return await self.refresh_token(stale=stale)
            except (ChannelAuthError, ChannelTransportError) as e:
                current = self._current_token()
                expires_at = current.get("expires_at") if current else None
                if (
                    current is not None
                    and current.get("access_token")
                    and isinstance(expires_at, int | float)
                    and self._clock() < expires_at
                ):
                    self._log.warning(
                        "channel_token_refresh_deferred",
                        error=e.code,
                        expires_in_s=round(expires_at - self._clock()),
                    )
                    return str(current["access_token"])
                raise
        if token is None or not token.get("access_token"):
            raise ChannelAuthError(
                self.platform, self.account, None, NO_TOKEN, "no access token and no refresh token"
            )
        return str(token["access_token"])

    async def refresh_token(self, stale: str | None) -> str:
        """Replace the token ``stale`` (once, across concurrent callers) and store the result."""
        async with self._auth_lock:
            token = self._current_token()
            if (
                token is not None
                and token.get("access_token")
                and token.get("access_token") != stale
                and not self._needs_refresh(token)
            ):
                return str(token["access_token"])
            if not self._can_refresh(token):
                raise ChannelAuthError(
                    self.platform, self.account, None, NO_TOKEN, "token cannot be refreshed"
                )
            new = await self._fetch_token(token)
            self._tokens.put(self.account, new)
            self._log.info(
                "channel_token_refreshed",
                expires_at=new.get("expires_at"),
                refresh_at=new.get("refresh_at"),
                rotated_refresh_token=bool(
                    token and new.get("refresh_token") != token.get("refresh_token")
                ),
            )
            return str(new["access_token"])

    async def with_token(
        self,
        send: Callable[[str], Awaitable[HttpResult]],
        is_auth_error: Callable[[HttpResult], bool],
    ) -> HttpResult:
        """Send with the current token; on an auth error refresh once and re-send once."""
        token = await self.access_token()
        result = await send(token)
        if is_auth_error(result) and self._can_refresh(self._current_token()):
            self._log.info("channel_auth_error_refreshing", http_status=result.status)
            token = await self.refresh_token(stale=token)
            result = await send(token)
        return result

    # -- batching -------------------------------------------------------------

    def batches(self, updates: Sequence[StockUpdate]) -> list[list[StockUpdate]]:
        return chunk(dedupe_last(updates), self.max_batch)

    async def push(self, batch: Sequence[StockUpdate]) -> list[PushOutcome]:
        """Send ``batch`` (split first if the platform needs it); one outcome per update."""
        outcomes: list[PushOutcome] = []
        for part in self.batches(batch):
            try:
                outcomes.extend(await self._push_one(part))
            except ChannelAuthError as e:
                raw = {"stage": "token", "response": e.raw}
                outcomes.extend(
                    fail_all(part, e.http_status, e.platform_code, e.platform_message, None, raw)
                )
        by_ref = {o.listing_ref: o for o in outcomes}
        return [by_ref[u.listing_ref] for u in batch if u.listing_ref in by_ref]

    async def _push_one(self, batch: list[StockUpdate]) -> list[PushOutcome]:
        raise NotImplementedError


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

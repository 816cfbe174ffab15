"""The HTTP plumbing the platform clients build on (not part of the protocol).

Owns :class:`HttpChannel`: the account's settings common to every platform
(``timeout_s``, ``max_connections``, ``batch_size``, ``base_url``), one
aiohttp session per account, one HTTP call with transport failures mapped to
:class:`~syncd.errors.ChannelTransportError`, batching (last update per
listing, platform grouping, a listing the platform cannot take alone) and
``push`` (a listing the platform cannot take is not sent; a refused token
becomes outcomes). Token caching comes from
:class:`~syncd.channels.tokens.TokenCache`. Also owns :class:`GraphQLChannel`,
for the platforms whose calls are GraphQL POSTs with the token in a header,
and :func:`graphql_error`, the reader of a GraphQL answer's top-level errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
import orjson
import structlog

from syncd.channels.answers import HttpResult
from syncd.channels.base import (
    INVALID_LISTING,
    PushOutcome,
    StockUpdate,
    ThrottleStatus,
    TokenStore,
    chunk,
    dedupe_last,
    fail_all,
)
from syncd.channels.settings import ChannelSettings
from syncd.channels.tokens import Clock, TokenCache
from syncd.errors import ChannelAuthError, ChannelTimeout, ChannelTransportError, ConfigError

log = structlog.get_logger("syncd.channels")

SessionFactory = Callable[[], aiohttp.ClientSession]
"""Builds an account's aiohttp session (tests hand in their own)."""


class HttpChannel(TokenCache):
    """Shared plumbing of the platform clients (not part of the protocol).

    A platform module sets the class attributes (:attr:`settings_model` is its
    settings' model, read into :attr:`settings`), sets up from its own settings in
    :meth:`_configure`, says which listings it can take (:meth:`_valid_listing`)
    and which may share a call (:meth:`_batch_group`), and sends one batch in
    :meth:`_push_one`; tokens: see :class:`~syncd.channels.tokens.TokenCache`.
    """

    platform: str = ""
    settings_model: ClassVar[type[ChannelSettings]] = ChannelSettings
    """The account settings' model (each platform declares its own)."""
    hard_max_batch: int = 1
    default_batch: int = 1
    default_refresh_ahead_s: float = 300.0
    default_base_url: str | None = None
    """``base_url`` when the settings have none; None: the setting is required."""
    invalid_listing_message = "listing lacks the identifiers the platform needs"
    """The message of the :data:`~syncd.channels.base.INVALID_LISTING` outcome."""
    throttle_status: ThrottleStatus | None = None
    """The platform's newest cost-bucket report (set by the clients that get one)."""

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
        self.settings = self.settings_model.of(account, settings)
        self._tokens = token_store
        self._clock = clock or time.time
        self._timeout_s = self.settings.timeout_s
        self._max_connections = self.settings.max_connections
        size = self.settings.batch_size
        self.max_batch = min(self.default_batch if size is None else size, self.hard_max_batch)
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._auth_lock = asyncio.Lock()
        self._log = log.bind(platform=self.platform, account=account)
        base = self.default_base_url if self.settings.base_url is None else self.settings.base_url
        if base is None:
            raise ConfigError(f"channels.{account}.base_url", "is required")
        self.base_url = base.rstrip("/")
        self._configure()

    def _configure(self) -> None:
        """Set up from the platform's own settings (after the common ones and ``base_url``)."""

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

    # -- batching -------------------------------------------------------------

    def _valid_listing(self, listing: Mapping[str, Any]) -> bool:
        """Whether ``listing`` has the identifiers the platform needs."""
        return True

    def _batch_group(self, listing: Mapping[str, Any]) -> Any:
        """Listings of one group may share a call (default: all of them)."""
        return None

    def batches(self, updates: Sequence[StockUpdate]) -> list[list[StockUpdate]]:
        """Up to ``max_batch`` updates per call, one :meth:`_batch_group` per call; a
        listing the platform cannot take goes alone, after the others."""
        groups: dict[Any, list[StockUpdate]] = {}
        invalid: list[list[StockUpdate]] = []
        for u in dedupe_last(updates):
            if self._valid_listing(u.listing):
                groups.setdefault(self._batch_group(u.listing), []).append(u)
            else:
                invalid.append([u])
        out = [part for group in groups.values() for part in chunk(group, self.max_batch)]
        return out + invalid

    async def push(self, batch: Sequence[StockUpdate]) -> list[PushOutcome]:
        """Send ``batch`` (split first if the platform needs it); one outcome per update."""
        outcomes: list[PushOutcome] = []
        for part in self.batches(batch):
            if len(part) == 1 and not self._valid_listing(part[0].listing):
                outcomes.extend(fail_all(part, None, INVALID_LISTING, self.invalid_listing_message))
                continue
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
        """Send one batch of listings the platform can take; one outcome per update."""
        raise NotImplementedError

    async def read_held(self, listings: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Units held for campaigns, per listing: none readable unless the platform
        overrides this (Shopee's reserved stock)."""
        return {}

    def _log_read_failed(self, operation: str, result: HttpResult, code: Any) -> None:
        """Log a read-back call the platform refused (its listings stay unknown)."""
        self._log.warning(
            "channel_read_failed", operation=operation, http_status=result.status, code=code
        )


def graphql_error(errors: Any) -> tuple[str | None, str | None]:
    """Code (``extensions.code``) and message of a GraphQL answer's top-level ``errors``:
    of the first entry of a list, or the text itself when it is a string or an object."""
    if isinstance(errors, str):
        return None, errors
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        ext = first.get("extensions")
        code = ext.get("code") if isinstance(ext, dict) else None
        msg = first.get("message")
        return (str(code) if code is not None else None), (str(msg) if msg is not None else None)
    if isinstance(errors, dict):
        return None, str(errors)
    return None, None


class GraphQLChannel(HttpChannel):
    """An :class:`HttpChannel` whose calls are GraphQL POSTs to :attr:`graphql_url` with
    the token in :meth:`_auth_headers`; HTTP 401 is the auth error (one refresh, one re-send)."""

    @property
    def graphql_url(self) -> str:
        raise NotImplementedError

    def _auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    async def _graphql(self, request: Mapping[str, Any], operation: str) -> HttpResult:
        async def send(token: str) -> HttpResult:
            return await self.request(
                "POST",
                self.graphql_url,
                operation=operation,
                json_body=request,
                headers=self._auth_headers(token),
            )

        return await self.with_token(send, lambda r: r.status == 401)

"""Where an account's tokens live, and how a client keeps its token fresh.

Owns the two :class:`~syncd.channels.base.TokenStore` implementations
(:class:`MemoryTokenStore`, :class:`JsonFileTokenStore`) and
:class:`TokenCache`, the token half of :class:`~syncd.channels.http.HttpChannel`:
the token is cached in the store, refreshed ahead of ``refresh_at`` and once
after an auth error (one refresh and one re-send), and the helpers the
platform modules use to turn a token endpoint's answer into a stored token or
a :class:`~syncd.errors.ChannelAuthError`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from syncd.channels.answers import HttpResult
from syncd.channels.base import NO_TOKEN, TokenStore
from syncd.channels.settings import ChannelSettings, reveal
from syncd.errors import ChannelAuthError, ChannelTransportError, ConfigError

Clock = Callable[[], float]
"""Epoch seconds now (``time.time`` unless a test hands in its own)."""

# -- stores -------------------------------------------------------------------


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


# -- caching ------------------------------------------------------------------


class TokenCache:
    """Token caching of one channel account (a base of :class:`~syncd.channels.http.HttpChannel`,
    which sets the attributes below).

    Token dicts kept in the :class:`TokenStore` have ``access_token`` and
    optionally ``refresh_token``, ``expires_at`` and ``refresh_at`` (epoch
    seconds). A token is refreshed ahead of ``refresh_at``, and once after an
    auth error; the refresh runs under a per-account lock and re-reads the
    store first, so concurrent pushes refresh once (which matters where a
    refresh token can be used only once).
    """

    platform: str
    account: str
    default_refresh_ahead_s: float
    settings: ChannelSettings
    _tokens: TokenStore
    _clock: Clock
    _auth_lock: asyncio.Lock
    _log: Any

    def _initial_token(self) -> dict[str, Any] | None:
        """The token from settings, when the store has none yet."""
        access = reveal(self.settings.access_token)
        refresh = reveal(self.settings.refresh_token)
        if not access and not refresh:
            return None
        token: dict[str, Any] = {}
        if access:
            token["access_token"] = access
        if refresh:
            token["refresh_token"] = refresh
        expires_at = self.settings.access_token_expires_at
        if expires_at is not None:
            token["expires_at"] = expires_at
            token["refresh_at"] = expires_at - self._refresh_ahead()
        return token

    def _refresh_ahead(self) -> float:
        ahead = self.settings.refresh_ahead_s
        return self.default_refresh_ahead_s if ahead is None else ahead

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

    async def reauthorize(self) -> bool:
        """Force a token refresh now (the platform refused the current token)."""
        stale = await self.access_token()
        await self.refresh_token(stale=stale)
        return True

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

    # -- reading a token endpoint's answer --------------------------------------

    def _token_from(
        self,
        data: Mapping[str, Any],
        current: Mapping[str, Any],
        expires_in: float | None,
        refresh_expires_in: Any = None,
    ) -> dict[str, Any]:
        """The token to store from a token endpoint's answer ``data``.

        The refresh token is the answer's when it has one, else ``current``'s.
        With ``expires_in`` (seconds) the access token expires then and is
        refreshed :meth:`_refresh_ahead` earlier, but not before half its life;
        a positive ``refresh_expires_in`` (seconds) is the refresh token's own
        lifetime.
        """
        now = self._clock()
        token: dict[str, Any] = {
            "access_token": str(data["access_token"]),
            "refresh_token": str(data.get("refresh_token") or current["refresh_token"]),
            "obtained_at": now,
        }
        if expires_in is not None:
            ahead = min(self._refresh_ahead(), expires_in / 2)
            token["expires_at"] = now + expires_in
            token["refresh_at"] = now + expires_in - ahead
        if isinstance(refresh_expires_in, int | float) and refresh_expires_in > 0:
            token["refresh_expires_at"] = now + float(refresh_expires_in)
        return token

    def _token_refused(
        self,
        result: HttpResult,
        code: str | None,
        message: str | None,
        raw_keys: tuple[str, ...],
        *,
        event: str = "channel_token_refresh_refused",
    ) -> ChannelAuthError:
        """The error for a refused token request, logged as ``event``; ``raw`` is the
        answer's ``raw_keys`` (never a token)."""
        data = result.body
        raw = {k: data.get(k) for k in raw_keys} if isinstance(data, dict) else None
        self._log.warning(event, http_status=result.status, code=code)
        return ChannelAuthError(self.platform, self.account, result.status, code, message, raw)

    def _oauth_refused(
        self, result: HttpResult, other: str, *, event: str = "channel_token_refresh_refused"
    ) -> ChannelAuthError:
        """:meth:`_token_refused` for an OAuth error answer: ``error`` is the code; the
        message is ``error_description``, else the answer's ``other`` key, else ``error``."""
        data = result.body
        if isinstance(data, dict):
            code = str(data.get("error")) if data.get("error") else None
            message = str(data.get("error_description") or data.get(other) or data.get("error"))
        else:
            code, message = None, result.snippet()
        keys = ("error", "error_description", other)
        return self._token_refused(result, code, message, keys, event=event)

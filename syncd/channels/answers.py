"""A platform's answer as the clients read it.

Owns :class:`HttpResult` (status, headers, parsed JSON body, raw text of one
HTTP answer), :func:`fail_unreadable` (every update of a call failed with an
answer of the wrong shape) and :func:`seconds_in` (the wait a platform names
in a message). Used by the token cache, the HTTP plumbing and the platform
modules; imports nothing of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.channels.base import BAD_RESPONSE, PushOutcome, StockUpdate, fail_all


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
    (the status says it), else :data:`~syncd.channels.base.BAD_RESPONSE`; the message is
    the start of the body."""
    code = None if result.status >= 400 else BAD_RESPONSE
    return fail_all(batch, result.status, code, result.snippet(), retry_after_s)


_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


def seconds_in(message: str | None) -> float | None:
    """The first 'N seconds' in a platform message ('...ban will last 1 seconds')."""
    if not message:
        return None
    m = _SECONDS.search(message)
    return float(m.group(1)) if m else None

"""The error table's vocabulary: rows, their classes and bounds, and the decision they give.

Owns :class:`Row` (one validated row of ``syncd/config/error-table.toml``), the
:data:`ErrorClass` values, :class:`RetrySpec` (a retry row's bounds and its backoff),
:class:`Decision` (what to do about one failed outcome) and the codes syncd itself
raises from reconciliation (:data:`READ_BACK_ZERO`, :data:`READ_BACK_STALE`).
Parsing lives in :mod:`.parse`, classification in :mod:`.classify`.

Pure: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

ErrorClass = Literal["retry", "refresh-auth", "park-account", "park-listing", "adjust", "manual"]
CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)
AdjustKind = Literal["hold", "min_quantity"]

READ_BACK_ZERO = "syncd.read_back_zero"
"""Reconciliation: the platform keeps showing 0 after syncd's quantity was acknowledged."""
READ_BACK_STALE = "syncd.read_back_stale"
"""Reconciliation: the platform keeps showing an older quantity past its propagation delay."""
_CALL_FIELDS = "sku sku_problem sku_fix listing account platform platform_name"
CONTEXT_FIELDS = frozenset(f"{_CALL_FIELDS} code message http_status".split())
"""Hint placeholders filled from the call, besides the row's captures."""

HintPart = tuple[str, str | None, str | None]
"""One piece of a parsed hint: literal text, field name, conversion."""


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """A retry row's bounds: jittered exponential backoff, then the row's manual action."""

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    give_up_after_s: float

    def delay(self, attempt: int, rand: float, retry_after_s: float | None = None) -> float:
        """Wait before the attempt after ``attempt`` (1-based): full jitter (``rand`` in
        [0, 1) from the caller's RNG) of ``min(max, base x 2^(attempt-1))``, never less
        than what the platform asked for."""
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(max(attempt - 1, 0), 60))
        return max(rand * cap, retry_after_s or 0.0)

    def gives_up(self, attempt: int, elapsed_s: float, next_delay_s: float) -> bool:
        """After ``attempt`` failed: True when no further attempt may start."""
        return attempt >= self.max_attempts or elapsed_s + next_delay_s > self.give_up_after_s


@dataclass(frozen=True, slots=True)
class Row:
    """One validated row of the table (``index`` is its 0-based position in the file)."""

    id: str
    index: int
    platform: str
    error_class: ErrorClass
    hint: str
    action: str
    http_status: frozenset[int] | None = None
    code: frozenset[str] | None = None
    message: re.Pattern[str] | None = None
    retry: RetrySpec | None = None
    slow_down: bool = False
    probe_every_s: float | None = None
    adjust: AdjustKind | None = None
    adjust_capture: str | None = None
    default: bool = False
    note: str | None = None
    hint_parts: tuple[HintPart, ...] = field(default=(), repr=False, compare=False)

    def match(self, status: int | None, code: str | None, text: str) -> dict[str, str] | None:
        """The captures when every matcher of the row holds, else None."""
        if self.http_status is not None and status not in self.http_status:
            return None
        if self.code is not None and code not in self.code:
            return None
        if self.message is None:
            return {}
        m = self.message.search(text)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one failed outcome (see docs/error-table.md for each class)."""

    row: Row
    platform: str
    code: str | None
    """The answer's code with Shopee's module prefix stripped."""
    captures: Mapping[str, int | str]
    """The row's named captures that matched; digit strings as ints."""
    hint: str
    matched_default: bool
    retry_after_s: float | None
    """The platform's Retry-After, else a captured ``seconds`` (a ban), else None."""
    quantity: int | None
    """For ``adjust``: the units to hold or the minimum to send; None when the message
    carried no number (then read it back from the platform)."""
    error_class: ErrorClass
    action: str
    retry: RetrySpec | None
    slow_down: bool
    probe_every_s: float | None
    adjust: AdjustKind | None

    @classmethod
    def of_row(
        cls,
        row: Row,
        platform: str,
        code: str | None,
        hint: str,
        captures: Mapping[str, int | str] | None = None,
        retry_after_s: float | None = None,
        quantity: int | None = None,
    ) -> Decision:
        """The decision ``row`` makes; the class and its policy come from the row."""
        return cls(
            row,
            platform,
            code,
            captures or {},
            hint,
            row.default,
            retry_after_s,
            quantity,
            row.error_class,
            row.action,
            row.retry,
            row.slow_down,
            row.probe_every_s,
            row.adjust,
        )

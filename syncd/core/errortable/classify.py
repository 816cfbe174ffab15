"""Classifying one failed push with the error table.

Owns :class:`ErrorTable`: the validated rows in matching order and
:meth:`ErrorTable.classify`, which turns a platform, a
:class:`~syncd.channels.base.PushOutcome` (or a transport error code) and the listing's
SKU into a :class:`~.rules.Decision`, with the seller-facing hint rendered; also the count
of answers only a default row matched (:attr:`ErrorTable.unmatched`).

Matching order for a platform: its own rows in file order, then the ``"*"`` rows in file
order, then its default row. Shopee's module prefix (``product.``) is stripped from the
answer's code before comparing (:func:`bare_code`). Message text is matched only through
the table's own regexes: the code flow never looks at it.

Pure: no I/O, no clock, no asyncio; the publisher does what a decision says.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

from syncd import platforms
from syncd.core.errortable.rules import Decision, HintPart, Row
from syncd.core.skus import sku_problem, suggest_fix

MAX_MESSAGE = 2000
"""Characters of a platform message that the regexes see (bounds the matching time)."""
MAX_HINT_MESSAGE = 300
MAX_UNMATCHED_KEYS = 1000
"""Distinct (platform, code) pairs counted; more go to (platform, "other")."""
_DIGITS = re.compile(r"[0-9]{1,18}")


class Outcome(Protocol):
    """What classification reads of a :class:`~syncd.channels.base.PushOutcome`."""

    @property
    def http_status(self) -> int | None: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def retry_after_s(self) -> float | None: ...


def bare_code(platform: str, code: str | None) -> str | None:
    """The code rows compare with: Shopee's module prefix (``product.``) stripped."""
    if code is None or platform != "shopee" or code.startswith("syncd."):
        return code
    return code.rsplit(".", 1)[-1]


class ErrorTable:
    """The validated rows and the classification; build with :func:`load` or :func:`parse`."""

    def __init__(self, rows: tuple[Row, ...], source: str = "<dict>") -> None:
        self.rows = rows
        self.source = source
        self.unmatched: Counter[tuple[str, str]] = Counter()
        """Decisions made by a default row, per (platform, code): rows worth writing."""
        self._order: dict[str, tuple[Row, ...]] = {}
        for p in platforms.known():
            own = [r for r in rows if r.platform == p and not r.default]
            anywhere = [r for r in rows if r.platform == "*"]
            defaults = [r for r in rows if r.platform == p and r.default]
            self._order[p] = (*own, *anywhere, *defaults)

    def row(self, row_id: str) -> Row:
        """The row with this id (StopIteration when there is none)."""
        return next(r for r in self.rows if r.id == row_id)

    def classify(
        self,
        platform: str,
        outcome: Outcome | str,
        *,
        sku: str | None = None,
        listing: str | None = None,
        account: str | None = None,
    ) -> Decision:
        """Classify a failed outcome (or a transport error code such as
        ``channel_timeout``); never raises for any answer. ValueError for a platform
        syncd does not know."""
        if platform not in self._order:
            raise ValueError(f"unknown platform {platform!r}")
        status: int | None
        raw_code: str | None
        message: str | None
        retry_after: float | None
        if isinstance(outcome, str):
            status, raw_code, message, retry_after = None, outcome, None, None
        else:
            status, raw_code = outcome.http_status, outcome.code
            message, retry_after = outcome.message, outcome.retry_after_s
        code = bare_code(platform, raw_code)
        text = (message or "")[:MAX_MESSAGE]
        for row in self._order[platform]:
            found = row.match(status, code, text)
            if found is not None:
                break
        else:  # unreachable: every platform has a default row, which matches anything
            raise AssertionError(f"no default row for {platform}")
        captures: dict[str, int | str] = {
            k: int(v) if _DIGITS.fullmatch(v) else v for k, v in found.items()
        }
        if row.default:
            self._count(platform, code or (f"http_{status}" if status else "none"))
        seconds = captures.get("seconds")
        if retry_after is None and isinstance(seconds, int):
            retry_after = float(seconds)
        values: dict[str, object] = {
            "sku": sku if sku is not None else "?",
            "sku_problem": _problem(sku),
            "sku_fix": suggest_fix(sku) if sku is not None else "?",
            "listing": listing or "?",
            "account": account or "?",
            "platform": platform,
            "platform_name": platform.capitalize() if platforms.is_known(platform) else platform,
            "code": raw_code or "no code",
            "message": " ".join(text[:MAX_HINT_MESSAGE].split()) or "no message",
            "http_status": status if status is not None else "none",
            **captures,
        }
        hint = _render(row.hint_parts, values)
        quantity = captures.get(row.adjust_capture or "")
        return Decision.of_row(
            row,
            platform,
            code,
            hint,
            captures,
            retry_after,
            quantity if isinstance(quantity, int) else None,
        )

    def _count(self, platform: str, code: str) -> None:
        key = (platform, code)
        if key not in self.unmatched and len(self.unmatched) >= MAX_UNMATCHED_KEYS:
            key = (platform, "other")
        self.unmatched[key] += 1


def _problem(sku: str | None) -> str:
    problem = sku_problem(sku) if sku is not None else None
    return f"{problem}." if problem else ""


def _render(parts: tuple[HintPart, ...], values: Mapping[str, object]) -> str:
    """Fill a parsed hint; an empty value does not leave a double space behind."""
    out: list[str] = []
    drop_space = False
    for literal, name, conversion in parts:
        if drop_space and literal.startswith(" "):
            literal = literal[1:]
        if literal:
            out.append(literal)
        drop_space = False
        if name is None:
            continue
        value = values.get(name, "?")
        text = repr(value) if conversion == "r" else str(value)
        if text:
            out.append(text)
        else:
            drop_space = not out or out[-1].endswith(" ")
    return "".join(out).strip()

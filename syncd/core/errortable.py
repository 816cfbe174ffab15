"""The error table: what a marketplace's failure answer means and what syncd does about it.

Owns validating the table (shipped as ``syncd/config/error-table.toml``, format in
docs/error-table.md; :mod:`syncd.config.error_table` reads the file) and the pure
classification of one failed push:
:meth:`ErrorTable.classify` turns a platform, a :class:`~syncd.channels.base.PushOutcome`
(or a transport error code) and the listing's SKU into a :class:`Decision`: the matching
row, its class (``retry``, ``refresh-auth``, ``park-account``, ``park-listing``,
``adjust``, ``manual``), the numbers captured from the message, the seller-facing hint
and the row's policy. Also owns the count of answers only a default row matched
(:attr:`ErrorTable.unmatched`).

Matching order for a platform: its own rows in file order, then the ``"*"`` rows in file
order, then its default row. Shopee's module prefix (``product.``) is stripped from the
answer's code before comparing. Message text is matched only through the table's own
regexes: the code flow never looks at it.

Pure: no I/O, no clock, no asyncio; the publisher does what a
decision says.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from syncd.core.events import PLATFORMS
from syncd.core.skus import sku_problem, suggest_fix
from syncd.errors import ConfigError

ErrorClass = Literal["retry", "refresh-auth", "park-account", "park-listing", "adjust", "manual"]
CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)
AdjustKind = Literal["hold", "min_quantity"]

READ_BACK_ZERO = "syncd.read_back_zero"
"""Reconciliation: the platform keeps showing 0 after syncd's quantity was acknowledged."""
READ_BACK_STALE = "syncd.read_back_stale"
"""Reconciliation: the platform keeps showing an older quantity past its propagation delay."""

KEY = "error-table"
MAX_MESSAGE = 2000
"""Characters of a platform message that the regexes see (bounds the matching time)."""
MAX_HINT_MESSAGE = 300
MAX_UNMATCHED_KEYS = 1000
"""Distinct (platform, code) pairs counted; more go to (platform, "other")."""
PLATFORM_NAMES = {p: p.capitalize() for p in PLATFORMS}
_CALL_FIELDS = "sku sku_problem sku_fix listing account platform platform_name"
CONTEXT_FIELDS = frozenset(f"{_CALL_FIELDS} code message http_status".split())
"""Hint placeholders filled from the call, besides the row's captures."""

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")
_DIGITS = re.compile(r"[0-9]{1,18}")
_ADJUST_KEYS: tuple[AdjustKind, ...] = ("hold", "min_quantity")
_RETRY_KEYS = ("max_attempts", "base_delay_s", "max_delay_s", "give_up_after_s")
_KEYS = frozenset(
    {"id", "platform", "http_status", "code", "message", "class", "default", "note"}
    | {"hint", "action", "slow_down", "probe_every_s", "hold", "min_quantity", *_RETRY_KEYS}
)


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


_Part = tuple[str, str | None, str | None]  # literal, field name, conversion
_Bad = Callable[[str, str], ConfigError]  # (key in the row, reason) -> the error to raise


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
    hint_parts: tuple[_Part, ...] = field(default=(), repr=False, compare=False)

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
        for p in PLATFORMS:
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
            "platform_name": PLATFORM_NAMES.get(platform, platform),
            "code": raw_code or "no code",
            "message": " ".join(text[:MAX_HINT_MESSAGE].split()) or "no message",
            "http_status": status if status is not None else "none",
            **captures,
        }
        hint = _render(row.hint_parts, values)
        quantity = captures.get(row.adjust_capture or "")
        return Decision(
            row,
            platform,
            code,
            captures,
            hint,
            row.default,
            retry_after,
            quantity if isinstance(quantity, int) else None,
            row.error_class,
            row.action,
            row.retry,
            row.slow_down,
            row.probe_every_s,
            row.adjust,
        )

    def _count(self, platform: str, code: str) -> None:
        key = (platform, code)
        if key not in self.unmatched and len(self.unmatched) >= MAX_UNMATCHED_KEYS:
            key = (platform, "other")
        self.unmatched[key] += 1


def _problem(sku: str | None) -> str:
    problem = sku_problem(sku) if sku is not None else None
    return f"{problem}." if problem else ""


def _render(parts: tuple[_Part, ...], values: Mapping[str, object]) -> str:
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


# -- parsing --------------------------------------------------------------------


def parse(raw: Mapping[str, Any], *, source: str = "<dict>") -> ErrorTable:
    """Validate a table already read from TOML."""
    for key in raw:
        if key != "rows":
            raise ConfigError(f"{KEY}.{key}", "unknown key (known: rows)")
    tables = raw.get("rows")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{KEY}.rows", "must be a non-empty array of tables ([[rows]])")
    rows: list[Row] = []
    seen: dict[str, int] = {}
    defaults: dict[str, Row] = {}
    for i, table in enumerate(tables):
        row = _row(i, table)
        if row.id in seen:
            raise ConfigError(
                f"{KEY}.rows[{i}].id", f"duplicate id {row.id!r} (also rows[{seen[row.id]}])"
            )
        seen[row.id] = i
        if row.default:
            first = defaults.get(row.platform)
            if first is not None:
                raise ConfigError(
                    f"{KEY}.rows[{i}].default",
                    f"row {row.id!r}: a second default row for {row.platform}"
                    f" (the first is {first.id!r}, rows[{first.index}])",
                )
            defaults[row.platform] = row
        rows.append(row)
    missing = [p for p in PLATFORMS if p not in defaults]
    if missing:
        raise ConfigError(
            f"{KEY}.rows", f"no default row (default = true) for {', '.join(missing)}"
        )
    return ErrorTable(tuple(rows), source)


def _row(i: int, table: Any) -> Row:
    where = f"{KEY}.rows[{i}]"
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table")
    row_id = table.get("id")
    if not isinstance(row_id, str) or not _NAME.fullmatch(row_id):
        raise ConfigError(f"{where}.id", "is required: lowercase letters, digits and '-'")

    def bad(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{where}.{key}", f"row {row_id!r}: {reason}")

    for key in table:
        if key not in _KEYS:
            raise bad(key, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    platform = table.get("platform")
    if platform not in (*PLATFORMS, "*"):
        raise bad("platform", f"must be one of {', '.join(PLATFORMS)} or '*', got {platform!r}")
    cls = table.get("class")
    if cls not in CLASSES:
        raise bad("class", f"must be one of {', '.join(CLASSES)}, got {cls!r}")
    default = table.get("default", False)
    if not isinstance(default, bool):
        raise bad("default", "must be true or false")
    statuses = _statuses(table.get("http_status"), bad)
    codes = _codes(table.get("code"), str(platform), bad)
    pattern = _pattern(table.get("message"), bad)
    if default and (platform == "*" or statuses or codes or pattern):
        raise bad("default", "a default row belongs to one platform and has no matchers")
    if not default and not (statuses or codes or pattern):
        raise bad("platform", "give at least one matcher: http_status, code or message")
    groups = set(pattern.groupindex) if pattern else set()
    clash = groups & CONTEXT_FIELDS
    if clash:
        raise bad("message", f"capture names clash with hint fields: {', '.join(sorted(clash))}")
    retry = _retry(table, cls == "retry", bad)
    slow_down = table.get("slow_down", False)
    if not isinstance(slow_down, bool) or (slow_down and cls != "retry"):
        raise bad("slow_down", "must be true or false, and only on retry rows")
    probe = table.get("probe_every_s")
    if cls in ("park-account", "park-listing"):
        if not _positive(probe):
            raise bad("probe_every_s", f"a {cls} row needs probe_every_s > 0")
    elif probe is not None:
        raise bad("probe_every_s", "only park-account and park-listing rows probe")
    adjust, capture = _adjust(table, cls == "adjust", groups, bad)
    hint = table.get("hint")
    if not isinstance(hint, str) or not hint.strip():
        raise bad("hint", "is required: what happened, what to do, where")
    parts = _hint(hint, groups, bad)
    action = table.get("action")
    if not isinstance(action, str) or not _NAME.fullmatch(action):
        raise bad("action", "is required: lowercase letters, digits and '-'")
    note = table.get("note")
    if note is not None and not isinstance(note, str):
        raise bad("note", "must be a string")
    return Row(
        id=row_id,
        index=i,
        platform=str(platform),
        error_class=cls,
        hint=hint,
        action=action,
        http_status=statuses,
        code=codes,
        message=pattern,
        retry=retry,
        slow_down=slow_down,
        probe_every_s=float(probe) if probe is not None else None,
        adjust=adjust,
        adjust_capture=capture,
        default=default,
        note=note,
        hint_parts=parts,
    )


def _statuses(value: Any, bad: _Bad) -> frozenset[int] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(
        isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in items
    ):
        raise bad("http_status", f"must be an HTTP status or a list of them, got {value!r}")
    return frozenset(items)


def _codes(value: Any, platform: str, bad: _Bad) -> frozenset[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(c, str) and c for c in items):
        raise bad("code", f"must be a code or a list of codes, got {value!r}")
    for c in items:
        if platform == "shopee" and "." in c and not c.startswith("syncd."):
            raise bad("code", f"Shopee module prefixes are stripped before matching: {c!r}")
    return frozenset(items)


def _pattern(value: Any, bad: _Bad) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad("message", "must be a regular expression (a string)")
    try:
        return re.compile(value)
    except re.error as e:
        raise bad("message", f"is not a valid regular expression: {e}") from None


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _retry(table: Mapping[str, Any], needed: bool, bad: _Bad) -> RetrySpec | None:
    given = [k for k in _RETRY_KEYS if k in table]
    if not needed:
        if given:
            raise bad(given[0], "retry bounds belong to retry rows only")
        return None
    for key in _RETRY_KEYS:
        if key not in table:
            raise bad(key, f"a retry row needs {', '.join(_RETRY_KEYS)}")
    attempts = table["max_attempts"]
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise bad("max_attempts", f"must be a whole number >= 1, got {attempts!r}")
    for key in _RETRY_KEYS[1:]:
        if not _positive(table[key]):
            raise bad(key, f"must be a finite number > 0, got {table[key]!r}")
    if table["max_delay_s"] < table["base_delay_s"]:
        raise bad("max_delay_s", "must be at least base_delay_s")
    return RetrySpec(
        attempts,
        float(table["base_delay_s"]),
        float(table["max_delay_s"]),
        float(table["give_up_after_s"]),
    )


def _adjust(
    table: Mapping[str, Any], needed: bool, groups: set[str], bad: _Bad
) -> tuple[AdjustKind | None, str | None]:
    given = [k for k in _ADJUST_KEYS if k in table]
    if not needed:
        if given:
            raise bad(given[0], "only adjust rows say which capture gives the quantity")
        return None, None
    if len(given) != 1:
        raise bad("class", "an adjust row needs exactly one of hold or min_quantity")
    kind = given[0]
    capture = table[kind]
    if not isinstance(capture, str) or capture not in groups:
        raise bad(kind, f"must name a (?P<name>...) capture of the message, got {capture!r}")
    return kind, capture


def _hint(hint: str, groups: set[str], bad: _Bad) -> tuple[_Part, ...]:
    try:
        parsed = list(string.Formatter().parse(hint))
    except ValueError as e:
        raise bad("hint", f"bad placeholder ({e}); write {{{{ and }}}} for braces") from None
    parts: list[_Part] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if not _FIELD.fullmatch(name) or spec or conversion not in (None, "r", "s"):
                raise bad("hint", f"placeholders are {{name}} or {{name!r}}, got {{{name}}}")
            if name not in CONTEXT_FIELDS and name not in groups:
                known = ", ".join(sorted(CONTEXT_FIELDS | groups))
                raise bad("hint", f"unknown placeholder {{{name}}} (known: {known})")
        parts.append((literal, name, conversion))
    return tuple(parts)

"""Parsing the error table: a TOML document's rows validated into :class:`~.rules.Row`.

Owns :func:`parse` (the table already read from TOML, by :mod:`syncd.config.error_table`,
to an :class:`~.classify.ErrorTable`) and every row check: known keys, one default row
per platform, matchers, retry bounds, park probes, adjust captures and hint placeholders.
Every error is a :class:`~syncd.errors.ConfigError` naming ``error-table.rows[i].key``.

Pure: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from syncd import platforms
from syncd.core.errortable.classify import ErrorTable
from syncd.core.errortable.rules import (
    CLASSES,
    CONTEXT_FIELDS,
    AdjustKind,
    HintPart,
    RetrySpec,
    Row,
)
from syncd.errors import ConfigError

KEY = "error-table"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")
_ADJUST_KEYS: tuple[AdjustKind, ...] = ("hold", "min_quantity")
_RETRY_KEYS = ("max_attempts", "base_delay_s", "max_delay_s", "give_up_after_s")
_KEYS = frozenset(
    {"id", "platform", "http_status", "code", "message", "class", "default", "note"}
    | {"hint", "action", "slow_down", "probe_every_s", "hold", "min_quantity", *_RETRY_KEYS}
)

_Bad = Callable[[str, str], ConfigError]  # (key in the row, reason) -> the error to raise


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
    missing = [p for p in platforms.known() if p not in defaults]
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
    if platform != "*" and not (isinstance(platform, str) and platforms.is_known(platform)):
        known = ", ".join(platforms.known())
        raise bad("platform", f"must be one of {known} or '*', got {platform!r}")
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


def _hint(hint: str, groups: set[str], bad: _Bad) -> tuple[HintPart, ...]:
    try:
        parsed = list(string.Formatter().parse(hint))
    except ValueError as e:
        raise bad("hint", f"bad placeholder ({e}); write {{{{ and }}}} for braces") from None
    parts: list[HintPart] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if not _FIELD.fullmatch(name) or spec or conversion not in (None, "r", "s"):
                raise bad("hint", f"placeholders are {{name}} or {{name!r}}, got {{{name}}}")
            if name not in CONTEXT_FIELDS and name not in groups:
                known = ", ".join(sorted(CONTEXT_FIELDS | groups))
                raise bad("hint", f"unknown placeholder {{{name}}} (known: {known})")
        parts.append((literal, name, conversion))
    return tuple(parts)

"""RFC 3339 times of the input contract, as epoch milliseconds.

Owns :func:`parse_time` and :func:`to_ms`: an RFC 3339 date-time with an offset (what the
schemas' ``format: date-time`` fields must hold; JSON Schema format checks are optional
and lax, so this is the check) to Unix epoch milliseconds (UTC), and the
``bad_timestamp`` reason saying exactly what is wrong with a time that is not one.

Pure: no I/O, no clock (a time is read, never taken).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final

from syncd.contract.quoting import kind, show
from syncd.errors import InvalidRecord

TIME_EXAMPLE: Final = "2026-11-23T10:00:00.123Z"
"""The example time the reasons quote."""

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _time_error(s: str, field: str | None, why: str) -> InvalidRecord:
    where = f"{field} is " if field else ""
    return InvalidRecord(
        "bad_timestamp",
        f"{where}{show(s)}: {why}; expected an RFC 3339 time with an offset, e.g. {TIME_EXAMPLE}",
        field=field,
    )


def to_ms(s: str, field: str | None) -> int:
    """``s`` as epoch ms, or InvalidRecord ``bad_timestamp`` naming ``field``."""
    if _RFC3339.fullmatch(s) is not None:
        try:  # the common case, in C; lower-case 'z', leap seconds, errors: below
            return (datetime.fromisoformat(s) - _EPOCH) // _ONE_MS
        except ValueError:
            pass
    return to_ms_exact(s, field)


def to_ms_exact(s: str, field: str | None) -> int:
    """:func:`to_ms` by hand, without ``datetime.fromisoformat``: the path for lower-case
    ``z``, leap seconds and every error reason (tests check both paths agree)."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        if _RFC3339.fullmatch(s[:10] + "T" + s[11:]) and s[10:11] == " ":
            why = "the date and the time are separated by a space; use 'T'"
        elif _NAIVE.fullmatch(s):
            why = "it has no offset (add 'Z' for UTC or the local offset such as '+07:00')"
        elif _DATE_ONLY.fullmatch(s):
            why = "it is a date without a time of day"
        else:
            why = "it is not an RFC 3339 date-time"
        raise _time_error(s, field, why)
    y, mo, d, h, mi, sec, frac, sign, oh, om = m.groups()
    try:
        day = date(int(y), int(mo), int(d)).toordinal()
    except ValueError as e:
        raise _time_error(s, field, f"not a real date ({e})") from None
    hh, mm, ss = int(h), int(mi), int(sec)
    if hh > 23 or mm > 59 or ss > 60:
        raise _time_error(s, field, "the time of day is out of range")
    if ss == 60:  # a leap second: the last millisecond of its minute
        ss, frac = 59, "999"
    ms = ((day - _EPOCH_DAY) * 86400 + hh * 3600 + mm * 60 + ss) * 1000
    if frac:
        ms += int(frac[:3]) * (1, 100, 10, 1)[min(len(frac), 3)]
    if sign:
        ohh, omm = int(oh), int(om)
        if ohh > 23 or omm > 59:
            raise _time_error(s, field, "the offset is out of range")
        offset = (ohh * 60 + omm) * 60_000
        ms = ms - offset if sign == "+" else ms + offset
    return ms


def parse_time(s: str) -> int:
    """An RFC 3339 date-time with an offset, as Unix epoch milliseconds (UTC).

    Fractions beyond milliseconds are truncated; ``T``/``Z`` may be lower case; a leap
    second (``:60``) is read as the last millisecond of its minute. A time without an
    offset, a malformed or an impossible time raises InvalidRecord ``bad_timestamp``.
    """
    if not isinstance(s, str):
        raise _time_error(str(s), None, f"it is {kind(s)}, not a string")
    return to_ms(s, None)

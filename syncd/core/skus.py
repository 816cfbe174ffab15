"""SKU hygiene: which SKU strings the input contract rejects, why, and the likely fix.

The contract (shared/contract/events.md) rejects a SKU with leading or trailing
white space, two or more consecutive white-space characters, or control
characters, wherever it appears: marketplaces refuse such codes or silently
mismatch them. This module owns that rule, in two equal forms:

- :func:`sku_problem` / :func:`suggest_fix`, for people (the dead-letter reason,
  ``syncd lint-skus``);
- :data:`SKU_PATTERN`, the same rule as a JSON Schema ``pattern`` (portable between
  Python ``re`` and ECMA 262), used by every SKU field of ``syncd/contract/schemas`` so that
  producers who validate against the schemas catch bad SKUs too. A test keeps the two
  forms equal.

"White space" is what :meth:`str.isspace` says (the ASCII space, tab and line breaks,
no-break spaces, the Unicode space separators); "control characters" are Unicode
category ``Cc`` (U+0000..U+001F, U+007F..U+009F). Positions are 0-based.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["SKU_PATTERN", "sku_problem", "suggest_fix"]

_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
# White space that is not also a control character (tab, line feed, ... are both).
_SPACE = "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"

SKU_PATTERN = f"^[^{_CONTROL}{_SPACE}]+(?:[{_SPACE}][^{_CONTROL}{_SPACE}]+)*$"
"""A clean SKU as a regular expression: visible runs separated by single spaces."""

_RUN = re.compile(r"\s{2,}")
"""Two or more consecutive white-space characters (``\\s`` is ``str.isspace`` for str)."""

_SHOW_MAX = 3
"""At most this many runs / control characters are listed one by one."""

_CONTROL_NAMES = {
    "\t": "tab",
    "\n": "line feed",
    "\r": "carriage return",
    "\x00": "NUL",
    "\x0b": "vertical tab",
    "\x0c": "form feed",
    "\x1b": "escape",
    "\x7f": "delete",
    "\x85": "next line",
}


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def _fast_clean(sku: str) -> bool:
    """True for the common case: printable ASCII with single inner spaces."""
    return (
        sku.isascii()
        and sku.isprintable()
        and sku != ""
        and sku[0] != " "
        and sku[-1] != " "
        and "  " not in sku
    )


def suggest_fix(sku: str) -> str:
    """The likely intended code: control characters that are white space become a
    space, other control characters are removed, runs of white space become one space,
    and leading/trailing white space is removed. A clean SKU is returned unchanged.
    """
    if _fast_clean(sku):
        return sku
    chars = []
    for c in sku:
        if _is_control(c):
            if c.isspace():
                chars.append(" ")
        else:
            chars.append(c)
    return _RUN.sub(" ", "".join(chars)).strip()


def _describe_control(c: str) -> str:
    name = _CONTROL_NAMES.get(c)
    code = f"U+{ord(c):04X}"
    return f"{code} ({name})" if name else code


def sku_problem(sku: str) -> str | None:
    """None for a clean SKU, else a reason naming the SKU, what is wrong and the fix.

    >>> sku_problem("TS  RED")
    "SKU 'TS  RED' has 2 consecutive spaces at position 2; the likely intended code is 'TS RED'"
    """
    if _fast_clean(sku):
        return None
    if sku == "":
        return "SKU '' is empty; give the product's real code"
    problems: list[str] = []
    lead = len(sku) - len(sku.lstrip())
    trail = len(sku) - len(sku.rstrip())
    if lead == len(sku):
        problems.append(f"is only white space ({len(sku)} characters)")
    else:
        if lead:
            problems.append(f"has leading white space ({_chars(lead)})")
        if trail:
            problems.append(f"has trailing white space ({_chars(trail)})")
        inner = [m for m in _RUN.finditer(sku) if m.start() > 0 and m.end() < len(sku)]
        for m in inner[:_SHOW_MAX]:
            kind = "spaces" if set(m.group()) == {" "} else "white-space characters"
            problems.append(f"has {len(m.group())} consecutive {kind} at position {m.start()}")
        if len(inner) > _SHOW_MAX:
            problems.append(f"has {len(inner) - _SHOW_MAX} more runs of consecutive spaces")
    controls = [(i, c) for i, c in enumerate(sku) if _is_control(c)]
    for i, c in controls[:_SHOW_MAX]:
        problems.append(f"has control character {_describe_control(c)} at position {i}")
    if len(controls) > _SHOW_MAX:
        problems.append(f"has {len(controls) - _SHOW_MAX} more control characters")
    if not problems:
        # Non-ASCII but clean (e.g. a single inner no-break space, accented letters).
        return None
    fix = suggest_fix(sku)
    if fix:
        advice = f"the likely intended code is {fix!r}"
    else:
        advice = "it has no visible characters; give the product's real code"
    return f"SKU {sku!r} {' and '.join(problems)}; {advice}"


def _chars(n: int) -> str:
    return "1 character" if n == 1 else f"{n} characters"

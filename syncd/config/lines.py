"""Where a key sits in the TOML text: the line number a problem is reported with.

:mod:`tomllib` gives a position only for syntax errors (in its message); for a bad
value the key's line is found by scanning the text: table headers (``[a."b:c".d]``)
and key lines (``k = ...``, dotted keys too) are read, their key paths joined with
dots and compared with the problem's dotted key.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_SYNTAX = re.compile(r"at line (\d+)")


def syntax_line(message: str) -> int | None:
    """The line number in a :class:`tomllib.TOMLDecodeError` message."""
    m = _SYNTAX.search(message)
    return int(m.group(1)) if m else None


def key_line(text: str, key: str) -> int | None:
    """The 1-based line where ``key`` (a dotted path) is written; for a table key, its
    first header or key line below it. None when the text does not show it."""
    table: list[str] = []
    below: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            table = _parts(m.group(1)) or table
            path = table
        else:
            m = _ASSIGN.match(line)
            if not m:
                continue
            path = table + _parts(m.group(1))
        dotted = ".".join(path)
        if dotted == key:
            return number
        if below is None and dotted.startswith(key + "."):
            below = number
    return below


def _parts(dotted: str) -> list[str]:
    """The key parts of a TOML dotted key (quoted parts unquoted)."""
    try:
        tree: Any = tomllib.loads(f"{dotted} = 0")
    except tomllib.TOMLDecodeError:
        return []
    parts: list[str] = []
    while isinstance(tree, dict) and len(tree) == 1:
        name, tree = next(iter(tree.items()))
        parts.append(name)
    return parts

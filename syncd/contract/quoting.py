"""How the contract's rejection reasons quote a value, its JSON kind and a record key.

Owns :func:`show` (a value as JSON text, cut to about :data:`SHOW_MAX` characters),
:func:`kind` (``a string``, ``an object``, ...) and :func:`show_key`, shared by the time
checks (:mod:`.times`), the schema-error mapping (:mod:`.schema_errors`) and the decoders.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

import orjson

SHOW_MAX: Final = 80
"""Values quoted in reasons are cut to about this many characters."""


def show(value: object) -> str:
    """A value as JSON text for a reason, cut to about :data:`SHOW_MAX` characters."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: nested deeper than orjson writes
        return "a deeply nested value"
    if len(text) > SHOW_MAX:
        return text[: SHOW_MAX - 3] + "..."
    return text


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def show_key(key: bytes) -> str:
    try:
        return repr(key.decode())
    except UnicodeDecodeError:
        return f"{key[:SHOW_MAX]!r} (not UTF-8)"

"""fastjsonschema's errors mapped to the contract's reason codes.

Owns :func:`schema_error`: the rule, path, value and definition of one
``JsonSchemaValueException`` turned into an :class:`~syncd.errors.InvalidRecord` with a
stable code (``missing_field``, ``wrong_type``, ``invalid_value``, ``bad_sku``) and a
reason a person can act on (the field path, the value, what was expected).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from syncd import platforms
from syncd.contract.quoting import kind, show
from syncd.contract.times import TIME_EXAMPLE
from syncd.core.skus import SKU_PATTERN, sku_problem
from syncd.errors import InvalidRecord

_TYPE_WORDS: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "an array",
    "boolean": "a boolean",
    "null": "null",
}


def _expected_type(definition: Mapping[str, Any]) -> str:
    types = definition.get("type", ())
    words = " or ".join(
        _TYPE_WORDS.get(t, t) for t in ([types] if isinstance(types, str) else types)
    )
    if definition.get("format") == "date-time":
        words += f" (an RFC 3339 time with an offset, e.g. {TIME_EXAMPLE})"
    return words


def _path(name: str) -> str:
    """fastjsonschema's ``data.lines[1].qty`` -> ``lines[1].qty`` (the root is ``""``)."""
    return name[5:] if name.startswith("data.") else ("" if name == "data" else name)


def schema_error(event_type: str, e: Any, *, channel_pattern: str) -> InvalidRecord:
    """Map a fastjsonschema error (its rule, path, value and definition) to a reason code."""
    rule: str = e.rule
    path = _path(e.name)
    value = e.value
    d: Mapping[str, Any] = e.definition if isinstance(e.definition, Mapping) else {}
    if rule == "required":
        required = list(d.get("required", ()))
        present = value if isinstance(value, dict) else {}
        missing = [f"{path}.{f}" if path else f for f in required if f not in present]
        needs = f"{path} needs" if path else f"a {event_type} event needs"
        plural = "s" if len(missing) > 1 else ""
        return InvalidRecord(
            "missing_field",
            f"missing required field{plural} {', '.join(missing)}; {needs} {', '.join(required)}",
            field=missing[0] if missing else path,
        )
    where = path or "the value"
    if rule == "type":
        return InvalidRecord(
            "wrong_type",
            f"{where} is {show(value)} ({kind(value)}); expected {_expected_type(d)}",
            field=path,
        )
    if rule == "pattern":
        pattern = d.get("pattern")
        if pattern == SKU_PATTERN and isinstance(value, str):
            problem = sku_problem(value) or f"SKU {value!r} is not a valid SKU"
            return InvalidRecord("bad_sku", f"{where}: {problem}", field=path)
        if pattern == channel_pattern:
            return bad_channel(value, where, path)
        expected = f"a string matching {pattern}"
        return InvalidRecord(
            "invalid_value", f"{where} is {show(value)}; expected {expected}", field=path
        )
    number = "an integer" if d.get("type") == "integer" else "a number"
    optional = " (or leave the optional field out)" if "null" in d.get("type", ()) else ""
    if rule == "minimum":
        expected = f"{number} >= {d['minimum']}"
    elif rule == "exclusiveMinimum":
        expected = f"{number} > {d['exclusiveMinimum']}"
    elif rule == "not" and d.get("not") == {"const": 0}:
        expected = f"{number} other than 0"
    elif rule == "minLength" and d["minLength"] == 1:
        expected = f"a non-empty string{optional}"
    elif rule == "minLength":
        expected = f"at least {d['minLength']} characters"
    elif rule == "maxLength":
        length = len(value) if isinstance(value, str) else "?"
        expected = f"at most {d['maxLength']} characters (it has {length})"
    elif rule == "minItems":
        expected = f"a non-empty list{optional}"
    elif rule == "minProperties":
        expected = "a non-empty object"
    else:
        msg: str = e.message
        expected = msg[5:] if msg.startswith("data") else msg
    return InvalidRecord(
        "invalid_value", f"{where} is {show(value)}; expected {expected}", field=path
    )


def bad_channel(value: object, where: str = "channel", path: str = "channel") -> InvalidRecord:
    """A listing's ``channel`` that is not ``<known platform>:<account name>`` (the schemas
    check the form, the decoder the platform: one reason for both)."""
    expected = f"'<platform>:<account name>' with platform one of {', '.join(platforms.known())}"
    return InvalidRecord(
        "invalid_value", f"{where} is {show(value)}; expected {expected}", field=path
    )

"""The decoding edge of the input contract: record bytes in, typed events or InvalidRecord out.

Owns the mapping from Kafka records of the three input topics to the dataclasses of
:mod:`syncd.core.events`, implementing shared/contract/events.md exactly:

- the JSON Schemas shipped in ``syncd/contract/schemas`` (one per event type) are the validator:
  they are loaded from the package once, at import, and compiled with fastjsonschema;
- what the schemas cannot say is checked here: times are RFC 3339 with an offset (JSON
  Schema ``format`` checks are optional and lax) and become epoch milliseconds, and record
  keys match the event (per-SKU and per-order state needs every event of one SKU / order
  in one partition);
- every rejection is an :class:`~syncd.errors.InvalidRecord` with one of the stable
  :data:`REASON_CODES` and a reason a person can act on (field path, value, expectation).

Pure: no asyncio, no Kafka, no network; the only I/O is reading the package's schema
files at import. The hot path per record is one ``orjson.loads``, one compiled-schema
call and a few checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any, Final, TypeVar

import fastjsonschema
import orjson

from syncd.core.events import (
    PLATFORMS,
    ListingLinked,
    ListingTombstone,
    ListingUnlinked,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    StockAdjusted,
    StockSnapshot,
)
from syncd.core.skus import SKU_PATTERN, sku_problem
from syncd.errors import InvalidRecord

__all__ = [
    "CHANNEL_PATTERN",
    "EVENT_TYPES",
    "REASON_CODES",
    "decode_catalog",
    "decode_order",
    "decode_stock",
    "listing_ref",
    "parse_time",
]

REASON_CODES: Final[tuple[tuple[str, str], ...]] = (
    ("too_large", "the record value is longer than the configured limit (checked before parsing)"),
    ("not_json", "the value is not UTF-8 JSON, or the record has no value"),
    ("not_object", "the value is JSON but not a JSON object"),
    ("unknown_type", "`type` is missing, not a string, or not an event type of this topic"),
    ("missing_field", "a required field is missing"),
    ("wrong_type", "a field has the wrong JSON type (e.g. a string or `true` for an integer)"),
    ("invalid_value", "a field has the right type but a value the contract does not allow"),
    ("bad_sku", "a SKU has leading/trailing white space, consecutive spaces or control characters"),
    ("bad_timestamp", "a time is not an RFC 3339 date-time with an offset, or not a real time"),
    ("key_mismatch", "the record key is missing or does not match the event"),
    ("internal_error", "syncd failed on this record (a bug); its log has the traceback"),
    (
        "wrong_partition",
        "the record is not in the partition murmur2 gives its key (the compute stage checks this)",
    ),
)
"""Every reason code an InvalidRecord from this module can carry, with its meaning.

docs/contract.md has the same table (a test keeps them equal).
"""

EVENT_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "stock": ("stock.snapshot", "stock.adjusted"),
    "order": ("order.placed", "order.cancelled", "order.shipped"),
    "catalog": ("listing.linked", "listing.unlinked"),
}
"""The event types of each input topic (``type`` values), by topic role."""

CHANNEL_PATTERN: Final = "^(" + "|".join(PLATFORMS) + "):.+$"
"""A listing's ``channel``: ``<platform>:<account name>``; the schemas use this pattern."""

_TIME_EXAMPLE = "2026-11-23T10:00:00.123Z"
_SHOW_MAX = 80
"""Values quoted in reasons are cut to about this many characters."""

# --------------------------------------------------------------------------- times

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
        f"{where}{_show(s)}: {why}; expected an RFC 3339 time with an offset, e.g. {_TIME_EXAMPLE}",
        field=field,
    )


def _to_ms(s: str, field: str | None) -> int:
    """``s`` as epoch ms, or InvalidRecord ``bad_timestamp`` naming ``field``."""
    if _RFC3339.fullmatch(s) is not None:
        try:  # the common case, in C; lower-case 'z', leap seconds, errors: below
            return (datetime.fromisoformat(s) - _EPOCH) // _ONE_MS
        except ValueError:
            pass
    return _to_ms_exact(s, field)


def _to_ms_exact(s: str, field: str | None) -> int:
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
        raise _time_error(str(s), None, f"it is {_kind(s)}, not a string")
    return _to_ms(s, None)


# ------------------------------------------------------------------------- helpers


def listing_ref(listing: dict[str, Any]) -> str:
    """The canonical text of a listing identifier: JSON with sorted keys, no spaces."""
    return orjson.dumps(listing, option=orjson.OPT_SORT_KEYS).decode()


def _show(value: object) -> str:
    """A value as JSON text for a reason, cut to about ``_SHOW_MAX`` characters."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: nested deeper than orjson writes
        return "a deeply nested value"
    if len(text) > _SHOW_MAX:
        return text[: _SHOW_MAX - 3] + "..."
    return text


def _kind(value: object) -> str:
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


def _show_key(key: bytes) -> str:
    try:
        return repr(key.decode())
    except UnicodeDecodeError:
        return f"{key[:_SHOW_MAX]!r} (not UTF-8)"


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
        words += f" (an RFC 3339 time with an offset, e.g. {_TIME_EXAMPLE})"
    return words


def _path(name: str) -> str:
    """fastjsonschema's ``data.lines[1].qty`` -> ``lines[1].qty`` (the root is ``""``)."""
    return name[5:] if name.startswith("data.") else ("" if name == "data" else name)


def _schema_error(event_type: str, e: Any) -> InvalidRecord:
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
            f"{where} is {_show(value)} ({_kind(value)}); expected {_expected_type(d)}",
            field=path,
        )
    if rule == "pattern":
        pattern = d.get("pattern")
        if pattern == SKU_PATTERN and isinstance(value, str):
            problem = sku_problem(value) or f"SKU {value!r} is not a valid SKU"
            return InvalidRecord("bad_sku", f"{where}: {problem}", field=path)
        if pattern == CHANNEL_PATTERN:
            expected = f"'<platform>:<account name>' with platform one of {', '.join(PLATFORMS)}"
        else:
            expected = f"a string matching {pattern}"
        return InvalidRecord(
            "invalid_value", f"{where} is {_show(value)}; expected {expected}", field=path
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
        "invalid_value", f"{where} is {_show(value)}; expected {expected}", field=path
    )


def _key_mismatch(key: bytes | None, topic: str, field: str, value: str) -> InvalidRecord:
    noun = "SKU" if field == "sku" else "order"
    got = "the record has no key" if key is None else f"the record key is {_show_key(key)}"
    return InvalidRecord(
        "key_mismatch",
        f"{got} but {field} is {value!r}; {topic} records must be keyed by the {field} "
        f"(its UTF-8 bytes) so that every event of one {noun} lands in one partition",
        field=field,
    )


# --------------------------------------------------------------------- the schemas


def _load_schema(event_type: str) -> dict[str, Any]:
    raw = (resources.files("syncd.contract") / "schemas" / f"{event_type}.schema.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(raw)
    return schema


_Validator = Callable[[Any], Any]
T = TypeVar("T")
_Table = dict[str, tuple[_Validator, Callable[[dict[str, Any], bytes | None], T]]]
"""Event type -> (compiled schema, builder of the dataclass from the validated value)."""


def _compile(event_type: str) -> _Validator:
    # Formats are not asserted: times are checked (strictly) by _to_ms.
    validate: _Validator = fastjsonschema.compile(
        _load_schema(event_type), use_default=False, use_formats=False
    )
    return validate


# -------------------------------------------------------------------- the builders


def _lines(raw: list[dict[str, Any]]) -> tuple[OrderLine, ...]:
    out = []
    for ln in raw:
        qty = ln["qty"]
        out.append(
            OrderLine(ln["sku"], qty if qty.__class__ is int else int(qty), ln.get("warehouse"))
        )
    return tuple(out)


def _check_stock_key(key: bytes | None, sku: str) -> None:
    if key is None or key != sku.encode():
        raise _key_mismatch(key, "stock", "sku", sku)


def _stock_snapshot(d: dict[str, Any], key: bytes | None) -> StockSnapshot:
    sku: str = d["sku"]
    on_hand = d["on_hand"]
    ev = StockSnapshot(
        d["event_id"],
        sku,
        d["warehouse"],
        on_hand if on_hand.__class__ is int else int(on_hand),
        _to_ms(d["as_of"], "as_of"),
    )
    _check_stock_key(key, sku)
    return ev


def _stock_adjusted(d: dict[str, Any], key: bytes | None) -> StockAdjusted:
    sku: str = d["sku"]
    delta = d["delta"]
    ev = StockAdjusted(
        d["event_id"],
        sku,
        d["warehouse"],
        delta if delta.__class__ is int else int(delta),
        _to_ms(d["as_of"], "as_of"),
        d.get("reason"),
    )
    _check_stock_key(key, sku)
    return ev


def _check_order_key(key: bytes | None, order_id: str) -> None:
    if key is None or key != order_id.encode():
        raise _key_mismatch(key, "order", "order_id", order_id)


def _order_placed(d: dict[str, Any], key: bytes | None) -> OrderPlaced:
    order_id: str = d["order_id"]
    ev = OrderPlaced(
        d["event_id"],
        order_id,
        d["channel"],
        _to_ms(d["placed_at"], "placed_at"),
        _lines(d["lines"]),
    )
    _check_order_key(key, order_id)
    return ev


_Closing = TypeVar("_Closing", OrderCancelled, OrderShipped)


def _order_closing(
    cls: type[_Closing], at_field: str
) -> Callable[[dict[str, Any], bytes | None], _Closing]:
    """Decoder for order.cancelled / order.shipped: same shape, a different time field."""

    def decode(d: dict[str, Any], key: bytes | None) -> _Closing:
        order_id: str = d["order_id"]
        lines = d.get("lines")
        ev = cls(
            d["event_id"],
            order_id,
            _to_ms(d[at_field], at_field),
            None if lines is None else _lines(lines),
        )
        _check_order_key(key, order_id)
        return ev

    return decode


_order_cancelled = _order_closing(OrderCancelled, "cancelled_at")
_order_shipped = _order_closing(OrderShipped, "shipped_at")


def _listing_ref_of(d: dict[str, Any]) -> str:
    try:
        return listing_ref(d["listing"])
    except TypeError:  # orjson.JSONEncodeError: nested deeper than orjson writes
        raise InvalidRecord(
            "invalid_value", "listing is nested too deeply; expected a flat object", field="listing"
        ) from None


def _check_catalog_key(key: bytes | None, channel: str) -> None:
    prefix = channel.encode() + b"/"
    if key is None or not key.startswith(prefix):
        got = "the record has no key" if key is None else f"the record key is {_show_key(key)}"
        raise InvalidRecord(
            "key_mismatch",
            f"{got} but channel is {channel!r}; catalog records must be keyed "
            f"'<channel>/<listing ref>', here starting with {prefix.decode()!r}",
            field="channel",
        )


def _listing_linked(d: dict[str, Any], key: bytes | None) -> ListingLinked:
    channel: str = d["channel"]
    warehouses = d.get("warehouses")
    ev = ListingLinked(
        d["event_id"],
        channel,
        d["listing"],
        _listing_ref_of(d),
        d["sku"],
        None if warehouses is None else tuple(warehouses),
        d.get("rules"),
    )
    _check_catalog_key(key, channel)
    return ev


def _listing_unlinked(d: dict[str, Any], key: bytes | None) -> ListingUnlinked:
    channel: str = d["channel"]
    ev = ListingUnlinked(d["event_id"], channel, d["listing"], _listing_ref_of(d))
    _check_catalog_key(key, channel)
    return ev


_STOCK: Final[_Table[StockSnapshot | StockAdjusted]] = {
    "stock.snapshot": (_compile("stock.snapshot"), _stock_snapshot),
    "stock.adjusted": (_compile("stock.adjusted"), _stock_adjusted),
}
_ORDER: Final[_Table[OrderPlaced | OrderCancelled | OrderShipped]] = {
    "order.placed": (_compile("order.placed"), _order_placed),
    "order.cancelled": (_compile("order.cancelled"), _order_cancelled),
    "order.shipped": (_compile("order.shipped"), _order_shipped),
}
_CATALOG: Final[_Table[ListingLinked | ListingUnlinked]] = {
    "listing.linked": (_compile("listing.linked"), _listing_linked),
    "listing.unlinked": (_compile("listing.unlinked"), _listing_unlinked),
}
_TOPIC_OF: Final = {t: topic for topic, types in EVENT_TYPES.items() for t in types}


# ---------------------------------------------------------------------- decoding


def _parse(value: bytes | None, max_bytes: int, topic: str) -> dict[str, Any]:
    if value is None:
        raise InvalidRecord(
            "not_json", f"record has no value; every {topic} record needs a JSON object"
        )
    if len(value) > max_bytes:
        raise InvalidRecord(
            "too_large",
            f"value is {len(value)} bytes; the limit is {max_bytes} bytes"
            " (compute.max_record_bytes)",
        )
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise InvalidRecord("not_json", f"value is not UTF-8 JSON: {e}") from None
    if not isinstance(d, dict):
        raise InvalidRecord(
            "not_object", f"value is {_kind(d)} ({_show(d)}); expected a JSON object"
        )
    return d


def _decode(table: _Table[T], topic: str, key: bytes | None, d: dict[str, Any]) -> T:
    event_type = d.get("type")
    entry = table.get(event_type) if isinstance(event_type, str) else None
    if entry is None:
        raise _unknown_type(topic, event_type, "type" in d)
    validate, build = entry
    try:
        validate(d)
    except fastjsonschema.JsonSchemaValueException as e:
        raise _schema_error(str(event_type), e) from None
    return build(d, key)


def _unknown_type(topic: str, event_type: object, present: bool) -> InvalidRecord:
    expected = f"expected one of {', '.join(EVENT_TYPES[topic])}"
    if not present:
        reason = f"the value has no 'type' field; {expected}"
    elif not isinstance(event_type, str):
        reason = f"type is {_show(event_type)} ({_kind(event_type)}); {expected}"
    elif event_type in _TOPIC_OF:
        reason = (
            f"type {_show(event_type)} belongs on the {_TOPIC_OF[event_type]} topic, "
            f"not the {topic} topic; {expected}"
        )
    else:
        reason = f"type {_show(event_type)} is not a {topic} event type; {expected}"
    return InvalidRecord("unknown_type", reason, field="type")


def decode_stock(
    key: bytes | None, value: bytes | None, *, max_bytes: int
) -> StockSnapshot | StockAdjusted:
    """Decode a record of the stock topic (key: the SKU); raises InvalidRecord."""
    return _decode(_STOCK, "stock", key, _parse(value, max_bytes, "stock"))


def decode_order(
    key: bytes | None, value: bytes | None, *, max_bytes: int
) -> OrderPlaced | OrderCancelled | OrderShipped:
    """Decode a record of the order topic (key: the order id); raises InvalidRecord."""
    return _decode(_ORDER, "order", key, _parse(value, max_bytes, "order"))


def decode_catalog(
    key: bytes | None, value: bytes | None, *, max_bytes: int
) -> ListingLinked | ListingUnlinked | ListingTombstone:
    """Decode a record of the catalog topic (key: ``<channel>/<listing ref>``).

    A null value is a tombstone: :class:`ListingTombstone` for the (UTF-8) key, the same
    as ``listing.unlinked`` for that key. Raises InvalidRecord.
    """
    if value is None:
        if key is None:
            raise InvalidRecord(
                "key_mismatch",
                "a tombstone (null value) has no key; it must name '<channel>/<listing ref>'",
            )
        try:
            return ListingTombstone(key.decode())
        except UnicodeDecodeError:
            raise InvalidRecord(
                "key_mismatch", f"the tombstone's key {_show_key(key)} is not UTF-8"
            ) from None
    return _decode(_CATALOG, "catalog", key, _parse(value, max_bytes, "catalog"))

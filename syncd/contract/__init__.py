"""The decoding edge of the input contract: record bytes in, typed events or InvalidRecord out.

Owns the mapping from Kafka records of the three input topics to the dataclasses of
:mod:`syncd.core.events`, implementing shared/contract/events.md exactly:

- the JSON Schemas shipped in ``syncd/contract/schemas`` (one per event type) are the validator:
  they are loaded from the package once, at import, and compiled with fastjsonschema;
- what the schemas cannot say is checked here: times are RFC 3339 with an offset (JSON
  Schema ``format`` checks are optional and lax) and become epoch milliseconds
  (:mod:`.times`), and record keys match the event (per-SKU and per-order state needs
  every event of one SKU / order in one partition);
- every rejection is an :class:`~syncd.errors.InvalidRecord` with one of the stable
  :data:`REASON_CODES` and a reason a person can act on (field path, value, expectation);
  schema failures are mapped to those by :mod:`.schema_errors`;
- a catalog record's ``rules`` are checked against the policy's rule keys
  (:func:`decode_listing`).

The dead-letter record headers (where a rejected record came from, and why) are in
:mod:`.deadletter`.

Pure: no asyncio, no Kafka, no network; the only I/O is reading the package's schema
files at import. The hot path per record is one ``orjson.loads``, one compiled-schema
call and a few checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final, TypeVar

import fastjsonschema
import orjson

from syncd import platforms
from syncd.contract.quoting import kind, show, show_key
from syncd.contract.schema_errors import bad_channel, schema_error
from syncd.contract.times import parse_time, to_ms
from syncd.core.events import (
    CatalogEvent,
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
from syncd.core.keys import listing_key, listing_ref
from syncd.core.policy import RuleError, parse_layer
from syncd.errors import InvalidRecord

__all__ = [
    "CHANNEL_PATTERN",
    "EVENT_TYPES",
    "REASON_CODES",
    "decode_catalog",
    "decode_listing",
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

CHANNEL_PATTERN: Final = "^[a-z][a-z0-9_-]*:.+$"
"""A listing's ``channel``: ``<platform>:<account name>``; the schemas use this pattern, and
the decoder then checks the platform against the known ones (:mod:`syncd.platforms`)."""

# ------------------------------------------------------------------------- helpers


def _key_mismatch(key: bytes | None, topic: str, field: str, value: str) -> InvalidRecord:
    noun = "SKU" if field == "sku" else "order"
    got = "the record has no key" if key is None else f"the record key is {show_key(key)}"
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
        to_ms(d["as_of"], "as_of"),
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
        to_ms(d["as_of"], "as_of"),
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
        to_ms(d["placed_at"], "placed_at"),
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
            to_ms(d[at_field], at_field),
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
    prefix = listing_key(channel, "").encode()
    if key is None or not key.startswith(prefix):
        got = "the record has no key" if key is None else f"the record key is {show_key(key)}"
        raise InvalidRecord(
            "key_mismatch",
            f"{got} but channel is {channel!r}; catalog records must be keyed "
            f"'<channel>/<listing ref>', here starting with {prefix.decode()!r}",
            field="channel",
        )


def _check_platform(channel: str) -> None:
    """The schema checked the form ``<platform>:<account name>``; the platform must be known."""
    if not platforms.is_known(channel.partition(":")[0]):
        raise bad_channel(channel)


def _listing_linked(d: dict[str, Any], key: bytes | None) -> ListingLinked:
    channel: str = d["channel"]
    _check_platform(channel)
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
    _check_platform(channel)
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
        raise InvalidRecord("not_object", f"value is {kind(d)} ({show(d)}); expected a JSON object")
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
        raise schema_error(str(event_type), e, channel_pattern=CHANNEL_PATTERN) from None
    return build(d, key)


def _unknown_type(topic: str, event_type: object, present: bool) -> InvalidRecord:
    expected = f"expected one of {', '.join(EVENT_TYPES[topic])}"
    if not present:
        reason = f"the value has no 'type' field; {expected}"
    elif not isinstance(event_type, str):
        reason = f"type is {show(event_type)} ({kind(event_type)}); {expected}"
    elif event_type in _TOPIC_OF:
        reason = (
            f"type {show(event_type)} belongs on the {_TOPIC_OF[event_type]} topic, "
            f"not the {topic} topic; {expected}"
        )
    else:
        reason = f"type {show(event_type)} is not a {topic} event type; {expected}"
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
                "key_mismatch", f"the tombstone's key {show_key(key)} is not UTF-8"
            ) from None
    return _decode(_CATALOG, "catalog", key, _parse(value, max_bytes, "catalog"))


def decode_listing(key: bytes | None, value: bytes | None, *, max_bytes: int) -> CatalogEvent:
    """Decode a catalog record and check its ``rules``; raises InvalidRecord."""
    ev = decode_catalog(key, value, max_bytes=max_bytes)
    if isinstance(ev, ListingLinked) and ev.rules:
        try:
            parse_layer(ev.rules)
        except RuleError as e:
            raise InvalidRecord(
                "invalid_value", f"rules.{e.key}: {e.reason}", field=f"rules.{e.key}"
            ) from None
    return ev

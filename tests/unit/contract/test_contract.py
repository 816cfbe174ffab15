"""The input contract's decoding edge (syncd.contract + syncd/schemas).

Every rule of shared/contract/events.md that the decoder enforces has a test here that
fails without it; hypothesis checks that no input escapes as anything but InvalidRecord and
that valid events round-trip to the right dataclass values.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import contract
from syncd.contract import (
    CHANNEL_PATTERN,
    EVENT_TYPES,
    REASON_CODES,
    decode_catalog,
    decode_order,
    decode_stock,
    listing_ref,
    parse_time,
)
from syncd.contract.deadletter import dead_letter_headers
from syncd.contract.times import to_ms_exact
from syncd.core.events import (
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
from syncd.core.skus import SKU_PATTERN
from syncd.errors import InvalidRecord
from syncd.platforms import BUILTIN as PLATFORMS

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "syncd" / "contract" / "schemas"
EXAMPLES = SCHEMAS / "examples"
MAX = 65536
ALL_TYPES = [t for types in EVENT_TYPES.values() for t in types]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)

Decoder = Callable[..., Any]
DECODERS: dict[str, Decoder] = {
    "stock": decode_stock,
    "order": decode_order,
    "catalog": decode_catalog,
}


def topic_of(event_type: str) -> str:
    return next(topic for topic, types in EVENT_TYPES.items() if event_type in types)


def key_for(ev: dict[str, Any]) -> bytes:
    """The correct record key for an event value."""
    topic = topic_of(ev["type"])
    if topic == "stock":
        return str(ev["sku"]).encode()
    if topic == "order":
        return str(ev["order_id"]).encode()
    return f"{ev['channel']}/{listing_ref(ev['listing'])}".encode()


def example(event_type: str) -> dict[str, Any]:
    ev: dict[str, Any] = json.loads((EXAMPLES / f"{event_type}.json").read_text())
    return ev


def decode(ev: dict[str, Any], key: bytes | None = None, max_bytes: int = MAX) -> Any:
    """Decode ``ev`` with the decoder of its topic and its correct key (unless given)."""
    topic = topic_of(ev["type"]) if isinstance(ev.get("type"), str) else "stock"
    k = key_for(ev) if key is None else key
    return DECODERS[topic](k, orjson.dumps(ev), max_bytes=max_bytes)


def rejects(ev: dict[str, Any], code: str, key: bytes | None = None) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        decode(ev, key)
    assert info.value.code == code, info.value.reason
    return info.value


def ms(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // ONE_MS


# ---------------------------------------------------------------- schemas + examples


def test_one_schema_and_one_example_per_event_type() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(f"{t}.json" for t in ALL_TYPES)
    for t in ALL_TYPES:
        schema = json.loads((SCHEMAS / f"{t}.schema.json").read_text())
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["properties"]["type"]["const"] == t
        assert schema["additionalProperties"] is True
        assert {"type", "event_id"} <= set(schema["required"])


EXPECTED_EXAMPLES = {
    "stock.snapshot": StockSnapshot(
        "wms-7f3c2a10-0001", "TS-RED-M", "WH-1", 42, ms("2026-11-23T10:00:00.123Z")
    ),
    "stock.adjusted": StockAdjusted(
        "wms-7f3c2a10-0002",
        "TS-RED-M",
        "WH-1",
        -2,
        ms("2026-11-23T10:05:30Z"),
        "damaged in handling",
    ),
    "order.placed": OrderPlaced(
        "oms-2611230001-placed",
        "2611230001",
        "shopee:my-main",
        ms("2026-11-23T10:01:12.004Z"),
        (OrderLine("TS-RED-M", 2, "WH-1"), OrderLine("TS-BLUE-L", 1)),
    ),
    "order.cancelled": OrderCancelled(
        "oms-2611230001-cancelled-1",
        "2611230001",
        ms("2026-11-23T10:15:00Z"),
        (OrderLine("TS-BLUE-L", 1),),
    ),
    "order.shipped": OrderShipped(
        "oms-2611230001-shipped", "2611230001", ms("2026-11-24T00:30:00Z"), None
    ),
    "listing.linked": ListingLinked(
        "cat-shopee-my-main-123-456-v3",
        "shopee:my-main",
        {"item_id": 123, "model_id": 456},
        '{"item_id":123,"model_id":456}',
        "TS-RED-M",
        ("WH-1", "WH-2"),
        {"safety_units": 2, "max_quantity": 50},
    ),
    "listing.unlinked": ListingUnlinked(
        "cat-lazada-sg-main-TS-RED-M-v4",
        "lazada:sg-main",
        {"seller_sku": "TS-RED-M"},
        '{"seller_sku":"TS-RED-M"}',
    ),
}


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_example_file_decodes(event_type: str) -> None:
    raw = (EXAMPLES / f"{event_type}.json").read_bytes()  # the file as is, pretty-printed
    ev = json.loads(raw)
    decoded = DECODERS[topic_of(event_type)](key_for(ev), raw, max_bytes=MAX)
    assert decoded == EXPECTED_EXAMPLES[event_type]


def _local_refs(uri: str) -> Any:
    return json.loads((SCHEMAS / uri).read_text())


@pytest.mark.parametrize("topic_schema", ["stock.events", "order.events", "catalog.listings"])
def test_topic_schemas_accept_their_examples_only(topic_schema: str) -> None:
    schema = json.loads((SCHEMAS / f"{topic_schema}.schema.json").read_text())
    validate = fastjsonschema.compile(schema, handlers={"": _local_refs})
    mine = set(schema["properties"]["type"]["enum"])
    assert mine == set(
        EVENT_TYPES[{"stock.events": "stock", "order.events": "order"}.get(topic_schema, "catalog")]
    )
    for t in ALL_TYPES:
        if t in mine:
            validate(example(t))
            broken = example(t)
            del broken["event_id"]
            with pytest.raises(fastjsonschema.JsonSchemaValueException):
                validate(broken)
        else:
            with pytest.raises(fastjsonschema.JsonSchemaValueException):
                validate(example(t))


def _subschemas(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, dict):
                out.append((f"{path}/{k}", v))
            out.extend(_subschemas(v, f"{path}/{k}"))
    return out


def test_every_sku_field_uses_the_sku_pattern_and_channels_the_platforms() -> None:
    skus = channels = 0
    for t in ALL_TYPES:
        schema = json.loads((SCHEMAS / f"{t}.schema.json").read_text())
        for path, sub in _subschemas(schema):
            if path.endswith("/properties/sku"):
                assert sub["pattern"] == SKU_PATTERN, (t, path)
                skus += 1
            if path.endswith("/properties/channel") and t.startswith("listing."):
                assert sub["pattern"] == CHANNEL_PATTERN, (t, path)
                channels += 1
            if path.endswith(("/as_of", "_at")):
                assert sub["type"] == "string" and sub["format"] == "date-time", (t, path)
    assert skus == 6  # 2 stock + lines in 3 order types + listing.linked
    assert channels == 2
    # The pattern is generic (the decoder checks the platform against the known ones).
    assert all(re.match(CHANNEL_PATTERN, f"{p}:acct") for p in PLATFORMS)
    assert not re.match(CHANNEL_PATTERN, "Shopee:acct")


def test_shared_definitions_are_identical_across_files() -> None:
    schemas = {t: json.loads((SCHEMAS / f"{t}.schema.json").read_text()) for t in ALL_TYPES}
    event_ids = [s["properties"]["event_id"] for s in schemas.values()]
    assert all(e == event_ids[0] for e in event_ids)
    assert event_ids[0]["maxLength"] == 128 and event_ids[0]["minLength"] == 1
    line_items = [schemas[t]["properties"]["lines"]["items"] for t in EVENT_TYPES["order"]]
    assert all(li == line_items[0] for li in line_items)


def test_contract_module_is_pure() -> None:
    tree = ast.parse((ROOT / "syncd" / "contract" / "__init__.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "aiokafka", "aiohttp"}


# -------------------------------------------------------------- reason codes + docs


def test_reason_codes_are_the_documented_ones() -> None:
    codes = [code for code, _ in REASON_CODES]
    assert len(codes) == len(set(codes))
    assert set(codes) == {
        "too_large",
        "not_json",
        "not_object",
        "unknown_type",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "bad_sku",
        "bad_timestamp",
        "key_mismatch",
        "wrong_partition",
        "internal_error",
    }
    assert all(meaning and "\n" not in meaning for _, meaning in REASON_CODES)


def test_docs_reason_code_table_matches() -> None:
    text = (ROOT / "docs" / "contract.md").read_text()
    lines = text.splitlines()
    start = lines.index("| code | meaning |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1]))
    assert rows == list(REASON_CODES)


def test_docs_link_every_schema_and_example() -> None:
    text = (ROOT / "docs" / "contract.md").read_text()
    for t in ALL_TYPES:
        assert f"../syncd/contract/schemas/{t}.schema.json" in text
        assert f"../syncd/contract/schemas/examples/{t}.json" in text
    for header in (
        "syncd.source.topic",
        "syncd.source.partition",
        "syncd.source.offset",
        "syncd.error.code",
        "syncd.error.reason",
    ):
        assert f"`{header}`" in text


def test_dead_letter_headers_name_the_source_and_the_reason() -> None:
    headers = dead_letter_headers("stock.events", 3, 42, "bad_sku", "sku: ä reason")
    assert headers == [
        ("syncd.source.topic", b"stock.events"),
        ("syncd.source.partition", b"3"),
        ("syncd.source.offset", b"42"),
        ("syncd.error.code", b"bad_sku"),
        ("syncd.error.reason", "sku: ä reason".encode()),
    ]
    text = (ROOT / "docs" / "contract.md").read_text()
    assert all(f"`{name}`" in text for name, _ in headers)


# -------------------------------------------------------------- bytes-level rules


def test_oversized_record_is_too_large_before_parsing() -> None:
    raw = orjson.dumps(example("stock.snapshot"))
    key = b"TS-RED-M"
    exact = decode_stock(key, raw, max_bytes=len(raw))  # exactly the limit is fine
    assert exact == EXPECTED_EXAMPLES["stock.snapshot"]
    with pytest.raises(InvalidRecord) as info:
        decode_stock(key, raw, max_bytes=len(raw) - 1)
    assert info.value.code == "too_large"
    assert str(len(raw)) in info.value.reason and str(len(raw) - 1) in info.value.reason
    with pytest.raises(InvalidRecord) as info:
        decode_order(b"k", b"x" * 100, max_bytes=10)  # not JSON either: size is checked first
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    "raw", [b"not json", b"", b"{", b'{"type": "stock.snapshot",}', b"NaN", b"\xef\xbb\xbf{}"]
)
def test_not_json(raw: bytes) -> None:
    for decoder in DECODERS.values():
        with pytest.raises(InvalidRecord) as info:
            decoder(b"k", raw, max_bytes=MAX)
        assert info.value.code == "not_json"


def test_invalid_utf8_is_not_json() -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_stock(b"k", b'{"type": "stock.snapshot", "sku": "\xff"}', max_bytes=MAX)
    assert info.value.code == "not_json"
    assert "UTF-8" in info.value.reason


@pytest.mark.parametrize("decoder", [decode_stock, decode_order])
def test_null_value_outside_catalog_is_not_json(decoder: Decoder) -> None:
    with pytest.raises(InvalidRecord) as info:
        decoder(b"k", None, max_bytes=MAX)
    assert info.value.code == "not_json"
    assert "record has no value" in info.value.reason


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b"1", b'"stock.snapshot"', b"null", b"true"])
def test_json_but_not_an_object(raw: bytes) -> None:
    for decoder in DECODERS.values():
        with pytest.raises(InvalidRecord) as info:
            decoder(b"k", raw, max_bytes=MAX)
        assert info.value.code == "not_object"
        assert "expected a JSON object" in info.value.reason


# --------------------------------------------------------------------------- type


def test_missing_type_is_unknown_type() -> None:
    ev = example("stock.snapshot")
    del ev["type"]
    with pytest.raises(InvalidRecord) as info:
        decode_stock(b"TS-RED-M", orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "unknown_type"
    assert "no 'type' field" in info.value.reason
    assert "stock.snapshot, stock.adjusted" in info.value.reason


@pytest.mark.parametrize("bad", ["stock.snapshots", "", 5, None, ["stock.snapshot"], {}])
def test_unknown_or_ill_typed_type(bad: object) -> None:
    ev = example("stock.snapshot")
    ev["type"] = bad
    with pytest.raises(InvalidRecord) as info:
        decode_stock(b"TS-RED-M", orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "unknown_type"
    assert info.value.field == "type"


def test_type_of_another_topic_is_unknown_type_and_says_where_it_belongs() -> None:
    ev = example("order.placed")
    with pytest.raises(InvalidRecord) as info:
        decode_stock(b"2611230001", orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "unknown_type"
    assert "belongs on the order topic" in info.value.reason


# ----------------------------------------------------------------- required fields

REQUIRED = {
    "stock.snapshot": ["event_id", "sku", "warehouse", "on_hand", "as_of"],
    "stock.adjusted": ["event_id", "sku", "warehouse", "delta", "as_of"],
    "order.placed": ["event_id", "order_id", "channel", "placed_at", "lines"],
    "order.cancelled": ["event_id", "order_id", "cancelled_at"],
    "order.shipped": ["event_id", "order_id", "shipped_at"],
    "listing.linked": ["event_id", "channel", "listing", "sku"],
    "listing.unlinked": ["event_id", "channel", "listing"],
}


@pytest.mark.parametrize(
    ("event_type", "field"), [(t, f) for t, fields in REQUIRED.items() for f in fields]
)
def test_missing_required_field(event_type: str, field: str) -> None:
    ev = example(event_type)
    key = key_for(ev)
    del ev[field]
    err = rejects(ev, "missing_field", key=key)
    assert err.field == field
    assert f"missing required field {field};" in err.reason
    assert event_type in err.reason


def test_optional_fields_may_be_absent() -> None:
    ev = example("stock.adjusted")
    del ev["reason"]
    assert decode(ev).reason is None
    ev = example("order.cancelled")
    del ev["lines"]
    assert decode(ev).lines is None
    ev = example("listing.linked")
    del ev["warehouses"], ev["rules"]
    got = decode(ev)
    assert got.warehouses is None and got.rules is None
    ev = example("order.placed")
    assert decode(ev).lines[1].warehouse is None


def test_optional_fields_may_be_null() -> None:
    ev = example("stock.adjusted")
    ev["reason"] = None
    assert decode(ev).reason is None
    for t in ("order.cancelled", "order.shipped"):
        ev = example(t)
        ev["lines"] = None
        assert decode(ev).lines is None
    ev = example("listing.linked")
    ev["warehouses"] = None
    ev["rules"] = None
    got = decode(ev)
    assert got.warehouses is None and got.rules is None
    ev = example("order.placed")
    ev["lines"][0]["warehouse"] = None
    assert decode(ev).lines[0].warehouse is None


def test_missing_field_in_a_line_names_the_path() -> None:
    ev = example("order.placed")
    del ev["lines"][1]["qty"]
    err = rejects(ev, "missing_field")
    assert err.field == "lines[1].qty"
    assert "lines[1].qty" in err.reason and "sku, qty" in err.reason


def test_several_missing_fields_are_all_named() -> None:
    ev = example("stock.snapshot")
    del ev["on_hand"], ev["as_of"]
    err = rejects(ev, "missing_field", key=b"TS-RED-M")
    assert "on_hand" in err.reason and "as_of" in err.reason


# ---------------------------------------------------------------------- wrong type

WRONG_TYPES = [
    ("stock.snapshot", "on_hand", "42", "on_hand"),
    ("stock.snapshot", "on_hand", True, "on_hand"),
    ("stock.snapshot", "on_hand", 1.5, "on_hand"),
    ("stock.snapshot", "as_of", 1795428000123, "as_of"),
    ("stock.snapshot", "warehouse", None, "warehouse"),
    ("stock.snapshot", "event_id", 7, "event_id"),
    ("stock.adjusted", "delta", False, "delta"),
    ("stock.adjusted", "reason", 5, "reason"),
    ("order.placed", "lines", {"sku": "A", "qty": 1}, "lines"),
    ("order.placed", "lines", ["TS-RED-M"], "lines[0]"),
    ("order.placed", "channel", ["shopee:my-main"], "channel"),
    ("listing.linked", "listing", ["item_id", 1], "listing"),
    ("listing.linked", "warehouses", "WH-1", "warehouses"),
    ("listing.linked", "warehouses", ["WH-1", 2], "warehouses[1]"),
    ("listing.linked", "rules", [], "rules"),
]


@pytest.mark.parametrize(("event_type", "field", "value", "path"), WRONG_TYPES)
def test_wrong_type(event_type: str, field: str, value: object, path: str) -> None:
    ev = example(event_type)
    key = key_for(ev)
    ev[field] = value
    err = rejects(ev, "wrong_type", key=key)
    assert err.field == path
    assert err.reason.startswith(f"{path} is ")
    assert "expected" in err.reason


def test_bool_is_not_an_integer_qty() -> None:
    ev = example("order.placed")
    ev["lines"][1]["qty"] = True
    err = rejects(ev, "wrong_type")
    assert err.field == "lines[1].qty"
    assert err.reason == "lines[1].qty is true (a boolean); expected an integer"


def test_time_as_number_is_wrong_type_with_an_example() -> None:
    ev = example("order.shipped")
    ev["shipped_at"] = 1795480200000
    err = rejects(ev, "wrong_type")
    assert "RFC 3339" in err.reason and "2026-11-23T10:00:00.123Z" in err.reason


def test_integral_float_quantities_are_integers() -> None:
    # JSON Schema (and the shipped schemas) count 2.0 as an integer; syncd keeps an int.
    ev = example("order.placed")
    ev["lines"][0]["qty"] = 2.0
    got = decode(ev)
    assert got.lines[0].qty == 2 and type(got.lines[0].qty) is int
    ev = example("stock.snapshot")
    ev["on_hand"] = 7.0
    assert type(decode(ev).on_hand) is int
    ev = example("stock.adjusted")
    ev["delta"] = -3.0
    assert decode(ev).delta == -3 and type(decode(ev).delta) is int


# ------------------------------------------------------------------- invalid value

INVALID_VALUES = [
    ("stock.snapshot", ["on_hand"], -1, "on_hand", ">= 0"),
    ("stock.adjusted", ["delta"], 0, "delta", "other than 0"),
    ("order.placed", ["lines", 0, "qty"], 0, "lines[0].qty", "> 0"),
    ("order.placed", ["lines", 1, "qty"], -2, "lines[1].qty", "> 0"),
    ("order.cancelled", ["lines", 0, "qty"], 0, "lines[0].qty", "> 0"),
    ("order.placed", ["lines"], [], "lines", "non-empty list"),
    ("order.cancelled", ["lines"], [], "lines", "non-empty list"),
    ("order.shipped", ["lines"], [], "lines", "non-empty list"),
    ("stock.snapshot", ["event_id"], "", "event_id", "non-empty"),
    ("stock.snapshot", ["event_id"], "e" * 129, "event_id", "at most 128"),
    ("order.placed", ["order_id"], "", "order_id", "non-empty"),
    ("order.placed", ["channel"], "", "channel", "non-empty"),
    ("order.placed", ["lines", 0, "warehouse"], "", "lines[0].warehouse", "non-empty"),
    ("stock.snapshot", ["warehouse"], "", "warehouse", "non-empty"),
    ("listing.linked", ["channel"], "amazon:eu", "channel", "<platform>:<account name>"),
    ("listing.linked", ["channel"], "shopee:", "channel", "<platform>:<account name>"),
    ("listing.linked", ["channel"], "shopee", "channel", "<platform>:<account name>"),
    ("listing.linked", ["channel"], "Shopee:my-main", "channel", "<platform>:<account name>"),
    ("listing.linked", ["channel"], "shopee:x\n", "channel", "<platform>:<account name>"),
    ("listing.unlinked", ["channel"], "counter", "channel", "<platform>:<account name>"),
    ("listing.linked", ["listing"], {}, "listing", "non-empty object"),
    ("listing.unlinked", ["listing"], {}, "listing", "non-empty object"),
    ("listing.linked", ["warehouses"], [], "warehouses", "non-empty list"),
    ("listing.linked", ["warehouses"], ["WH-1", ""], "warehouses[1]", "non-empty"),
]


def _set(ev: dict[str, Any], path: list[Any], value: object) -> None:
    node: Any = ev
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


@pytest.mark.parametrize(("event_type", "path", "value", "field", "expected"), INVALID_VALUES)
def test_invalid_value(
    event_type: str, path: list[Any], value: object, field: str, expected: str
) -> None:
    ev = example(event_type)
    key = key_for(ev)
    _set(ev, path, value)
    err = rejects(ev, "invalid_value", key=key)
    assert err.field == field
    assert err.reason.startswith(f"{field} is ")
    assert expected in err.reason


def test_invalid_qty_reason_names_path_value_and_expectation() -> None:
    ev = example("order.placed")
    ev["lines"][1]["qty"] = 0
    assert rejects(ev, "invalid_value").reason == "lines[1].qty is 0; expected an integer > 0"


def test_event_id_of_exactly_128_characters_is_fine() -> None:
    ev = example("stock.snapshot")
    ev["event_id"] = "e" * 128
    assert decode(ev).event_id == "e" * 128


def test_order_channel_is_any_non_empty_string() -> None:
    ev = example("order.placed")
    ev["channel"] = "shop counter, Main St."
    assert decode(ev).channel == "shop counter, Main St."


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_is_a_valid_listing_channel(platform: str) -> None:
    ev = example("listing.unlinked")
    ev["channel"] = f"{platform}:acct one"
    assert decode(ev).channel == f"{platform}:acct one"


def test_zero_on_hand_and_negative_delta_are_fine() -> None:
    ev = example("stock.snapshot")
    ev["on_hand"] = 0
    assert decode(ev).on_hand == 0
    ev = example("stock.adjusted")
    ev["delta"] = -5
    assert decode(ev).delta == -5


# ------------------------------------------------------------------------- bad SKU

BAD_SKUS = [
    ("TS  RED", "2 consecutive spaces at position 2", "TS RED"),
    (" TS-RED", "leading white space", "TS-RED"),
    ("TS-RED ", "trailing white space", "TS-RED"),
    ("TS\x00RED", "control character U+0000", "TSRED"),
    ("TS\tRED", "control character U+0009", "TS RED"),
    ("TS-RED\n", "control character U+000A", "TS-RED"),
    ("", "empty", ""),
]


@pytest.mark.parametrize(("sku", "problem", "fix"), BAD_SKUS)
@pytest.mark.parametrize(
    ("event_type", "path"),
    [
        ("stock.snapshot", ["sku"]),
        ("stock.adjusted", ["sku"]),
        ("order.placed", ["lines", 1, "sku"]),
        ("order.cancelled", ["lines", 0, "sku"]),
        ("order.shipped", ["lines", 0, "sku"]),
        ("listing.linked", ["sku"]),
    ],
)
def test_bad_sku_wherever_it_appears(
    event_type: str, path: list[Any], sku: str, problem: str, fix: str
) -> None:
    ev = example(event_type)
    if event_type == "order.shipped":
        ev["lines"] = [{"sku": "TS-RED-M", "qty": 1}]
    key = key_for(ev)
    _set(ev, path, sku)
    if event_type.startswith("stock."):
        key = sku.encode()  # a stock record is keyed by its (bad) SKU
    err = rejects(ev, "bad_sku", key=key)
    field = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
    assert err.field == field
    assert err.reason.startswith(f"{field}: SKU {sku!r}")
    assert problem in err.reason
    if fix:
        assert err.reason.endswith(f"the likely intended code is {fix!r}")


def test_non_ascii_and_single_space_skus_are_fine() -> None:
    for sku in ("TS RED M", "Größe-XL", "T\u00a0RED"):
        ev = example("stock.snapshot")
        ev["sku"] = sku
        assert decode(ev, key=sku.encode()).sku == sku


# ----------------------------------------------------------------------- timestamps

BAD_TIMES = [
    ("2026-11-23T10:00:00", "no offset"),
    ("2026-11-23T10:00:00.123", "no offset"),
    ("2026-11-23T10:00", "no offset"),
    ("2026-11-23", "a date without a time"),
    ("2026-11-23 10:00:00Z", "separated by a space"),
    ("2026-13-01T00:00:00Z", "not a real date"),
    ("2026-02-30T00:00:00Z", "not a real date"),
    ("0000-01-01T00:00:00Z", "not a real date"),
    ("2026-11-23T24:00:00Z", "out of range"),
    ("2026-11-23T10:60:00Z", "out of range"),
    ("2026-11-23T10:00:61Z", "out of range"),
    ("2026-11-23T10:00:00+24:00", "offset is out of range"),
    ("2026-11-23T10:00:00+0700", "not an RFC 3339"),
    ("2026-11-23T10:00:00+07", "not an RFC 3339"),
    ("20261123T100000Z", "not an RFC 3339"),
    ("2026-11-23T10:00:00,5Z", "not an RFC 3339"),
    ("2026-W47-1T10:00:00Z", "not an RFC 3339"),
    ("\uff12\uff10\uff12\uff16-11-23T10:00:00Z", "not an RFC 3339"),  # full-width digits
    ("yesterday", "not an RFC 3339"),
    ("", "not an RFC 3339"),
    ("2026-11-23T10:00:00Z ", "not an RFC 3339"),
]


@pytest.mark.parametrize(("text", "why"), BAD_TIMES)
def test_bad_timestamp(text: str, why: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_time(text)
    assert info.value.code == "bad_timestamp"
    assert why in info.value.reason
    for event_type, field in [
        ("stock.snapshot", "as_of"),
        ("stock.adjusted", "as_of"),
        ("order.placed", "placed_at"),
        ("order.cancelled", "cancelled_at"),
        ("order.shipped", "shipped_at"),
    ]:
        ev = example(event_type)
        ev[field] = text
        err = rejects(ev, "bad_timestamp")
        assert err.field == field
        assert err.reason.startswith(f"{field} is {json.dumps(text, ensure_ascii=False)}: ")
        assert "2026-11-23T10:00:00.123Z" in err.reason  # an example of the right form


GOOD_TIMES = [
    ("2026-11-23T10:00:00.123Z", ms("2026-11-23T10:00:00.123+00:00")),
    ("2026-11-23T10:00:00Z", 1795428000000),
    ("2026-11-23t10:00:00z", 1795428000000),
    ("2026-11-23T17:00:00+07:00", 1795428000000),
    ("2026-11-23T05:30:00-04:30", 1795428000000),
    ("2026-11-23T10:00:00-00:00", 1795428000000),
    ("2026-11-23T10:00:00.1Z", 1795428000100),
    ("2026-11-23T10:00:00.12Z", 1795428000120),
    ("2026-11-23T10:00:00.123999999Z", 1795428000123),
    ("2016-12-31T23:59:60Z", ms("2016-12-31T23:59:59.999Z")),
    ("1969-12-31T23:59:59.999Z", -1),
    ("0001-01-01T00:00:00Z", ms("0001-01-01T00:00:00+00:00")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_TIMES)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text) == expected


def test_parse_time_rejects_non_strings() -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_time(1795428000000)  # type: ignore[arg-type]
    assert info.value.code == "bad_timestamp"


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@given(aware_times, st.sampled_from(["seconds", "milliseconds", "microseconds"]), st.booleans())
def test_parse_time_matches_datetime(dt: datetime, spec: str, zulu: bool) -> None:
    text = dt.isoformat(timespec=spec)
    if zulu and dt.utcoffset() == timedelta(0):
        text = text[: -len("+00:00")] + "Z"
    shown = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parse_time(text) == (shown - EPOCH) // ONE_MS


@given(aware_times, st.sampled_from(["seconds", "milliseconds", "microseconds"]))
def test_fast_and_exact_time_paths_agree(dt: datetime, spec: str) -> None:
    # parse_time uses datetime.fromisoformat after a shape check and falls back to an
    # exact hand parser (lower-case 'z', leap seconds, error reasons); both must agree.
    text = dt.isoformat(timespec=spec)
    assert to_ms_exact(text, None) == parse_time(text)
    assert parse_time(text.replace("T", "t")) == parse_time(text)


@given(st.text(max_size=40))
def test_parse_time_never_raises_anything_else(text: str) -> None:
    try:
        parse_time(text)
    except InvalidRecord as e:
        assert e.code == "bad_timestamp"


# ------------------------------------------------------------------------------ keys


@pytest.mark.parametrize("key", [None, b"", b"ts-red-m", b"TS-RED-M ", b"OTHER", b"\xff"])
@pytest.mark.parametrize("event_type", ["stock.snapshot", "stock.adjusted"])
def test_stock_key_must_be_the_sku(event_type: str, key: bytes | None) -> None:
    ev = example(event_type)
    with pytest.raises(InvalidRecord) as info:
        decode_stock(key, orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "key_mismatch"
    assert info.value.field == "sku"
    assert "'TS-RED-M'" in info.value.reason and "partition" in info.value.reason


def test_stock_key_is_the_utf8_of_the_sku() -> None:
    ev = example("stock.snapshot")
    ev["sku"] = "Größe-XL"
    assert decode_stock("Größe-XL".encode(), orjson.dumps(ev), max_bytes=MAX).sku == "Größe-XL"


@pytest.mark.parametrize("key", [None, b"", b"2611230002", b"2611230001\n"])
@pytest.mark.parametrize("event_type", EVENT_TYPES["order"])
def test_order_key_must_be_the_order_id(event_type: str, key: bytes | None) -> None:
    ev = example(event_type)
    with pytest.raises(InvalidRecord) as info:
        decode_order(key, orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "key_mismatch"
    assert info.value.field == "order_id"


@pytest.mark.parametrize(
    "key", [None, b"", b"shopee:my-main", b"shopee:my-mainX/ref", b"lazada:my-main/ref", b"/x"]
)
@pytest.mark.parametrize("event_type", EVENT_TYPES["catalog"])
def test_catalog_key_must_start_with_the_channel(event_type: str, key: bytes | None) -> None:
    ev = example(event_type)
    ev["channel"] = "shopee:my-main"
    with pytest.raises(InvalidRecord) as info:
        decode_catalog(key, orjson.dumps(ev), max_bytes=MAX)
    assert info.value.code == "key_mismatch"
    assert "'shopee:my-main/'" in info.value.reason


def test_catalog_key_may_carry_any_listing_ref() -> None:
    ev = example("listing.linked")
    got = decode_catalog(b"shopee:my-main/whatever-ref", orjson.dumps(ev), max_bytes=MAX)
    assert isinstance(got, ListingLinked)


def test_catalog_tombstone() -> None:
    key = 'shopee:my-main/{"item_id":123,"model_id":456}'
    assert decode_catalog(key.encode(), None, max_bytes=MAX) == ListingTombstone(key)
    for bad in (None, b"\xff/x"):
        with pytest.raises(InvalidRecord) as info:
            decode_catalog(bad, None, max_bytes=MAX)
        assert info.value.code == "key_mismatch"


def test_empty_catalog_value_is_not_a_tombstone() -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_catalog(b"shopee:my-main/x", b"", max_bytes=MAX)
    assert info.value.code == "not_json"


# ------------------------------------------------------------------ forward compatible


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_unknown_extra_fields_are_ignored(event_type: str) -> None:
    ev = example(event_type)
    ev["schema_version"] = 2
    ev["trace"] = {"id": [1, None, "x"]}
    if "lines" in ev:
        ev["lines"][0]["price"] = {"amount": "9.90", "currency": "SGD"}
    assert decode(ev) == EXPECTED_EXAMPLES[event_type]


def test_listing_ref_is_canonical() -> None:
    a = listing_ref({"model_id": 456, "item_id": 123})
    b = listing_ref({"item_id": 123, "model_id": 456})
    assert a == b == '{"item_id":123,"model_id":456}'
    assert listing_ref({"b": {"z": 1, "a": [2]}, "a": "é"}) == '{"a":"é","b":{"a":[2],"z":1}}'
    ev = example("listing.linked")
    ev["listing"] = {"model_id": 456, "item_id": 123}
    assert decode(ev).listing_ref == '{"item_id":123,"model_id":456}'


def test_deeply_nested_listing_is_invalid_not_a_crash() -> None:
    ev = example("listing.unlinked")
    nested: Any = 1
    for _ in range(300):
        nested = [nested]
    ev["listing"] = {"seller_sku": nested}
    raw = orjson.dumps({**ev, "listing": {"seller_sku": []}}).replace(
        b"[]", b"[" * 300 + b"1" + b"]" * 300
    )
    with pytest.raises(InvalidRecord) as info:
        decode_catalog(b"lazada:sg-main/x", raw, max_bytes=MAX)
    assert info.value.code == "invalid_value"


# -------------------------------------------------------------- hypothesis: no escapes

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["TS-RED-M", "TS  RED", "2026-11-23T10:00:00Z", "shopee:my-main", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = sorted(
    {"type", "lines", "listing", "reason", "warehouses", "rules", "qty"}
    | {f for fields in REQUIRED.values() for f in fields}
)


def _decode_any(decoder: Decoder, key: bytes | None, raw: bytes | None) -> None:
    try:
        decoder(key, raw, max_bytes=MAX)
    except InvalidRecord as e:
        assert e.code in dict(REASON_CODES), e.code
        assert e.reason


@given(json_values, st.sampled_from(list(DECODERS)), st.none() | st.binary(max_size=12))
def test_any_json_value_decodes_or_is_invalid(value: Any, topic: str, key: bytes | None) -> None:
    _decode_any(DECODERS[topic], key, orjson.dumps(value))


@given(st.binary(max_size=64), st.sampled_from(list(DECODERS)))
def test_any_bytes_decode_or_are_invalid(raw: bytes, topic: str) -> None:
    _decode_any(DECODERS[topic], b"k", raw)


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, bytes | None, bytes]:
    """A valid example with fields replaced by arbitrary JSON, deleted or added."""
    event_type = draw(st.sampled_from(ALL_TYPES))
    ev = example(event_type)
    key = key_for(ev) if draw(st.booleans()) else draw(st.none() | st.binary(max_size=8))
    for _ in range(draw(st.integers(1, 3))):
        target = ev
        if "lines" in ev and isinstance(ev["lines"], list) and ev["lines"] and draw(st.booleans()):
            item = ev["lines"][0]
            target = item if isinstance(item, dict) else ev
        name = draw(st.sampled_from([*FIELD_NAMES, "sku", "warehouse"]))
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(json_values)
    return topic_of(event_type), key, orjson.dumps(ev)


@settings(max_examples=400)
@given(mutated_events(), st.booleans())
def test_mutated_events_decode_or_are_invalid(
    case: tuple[str, bytes | None, bytes], wrong_topic: bool
) -> None:
    topic, key, raw = case
    if wrong_topic:
        topic = {"stock": "order", "order": "catalog", "catalog": "stock"}[topic]
    _decode_any(DECODERS[topic], key, raw)


# ------------------------------------------------------------ hypothesis: round-trips

int64 = st.integers(-(2**63), 2**63 - 1)
sku_parts = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Nd", "Pd", "Po"), max_codepoint=0x2FFF
    ),
    min_size=1,
    max_size=6,
)
skus = st.lists(sku_parts, min_size=1, max_size=3).map(" ".join)
ids = st.text(min_size=1, max_size=128)
names = st.text(min_size=1, max_size=12)
times = st.tuples(aware_times, st.sampled_from(["seconds", "milliseconds", "microseconds"])).map(
    lambda t: t[0].isoformat(timespec=t[1])
)
lines_st = st.lists(
    st.fixed_dictionaries(
        {"sku": skus, "qty": st.integers(1, 10**6)}, optional={"warehouse": names}
    ),
    min_size=1,
    max_size=4,
)
listings = st.dictionaries(
    st.text(min_size=1, max_size=8), int64 | st.text(max_size=8), min_size=1, max_size=3
)
channels = st.tuples(st.sampled_from(PLATFORMS), names.filter(lambda n: "\n" not in n)).map(
    ":".join
)


def _lines(raw: list[dict[str, Any]]) -> tuple[OrderLine, ...]:
    return tuple(OrderLine(ln["sku"], ln["qty"], ln.get("warehouse")) for ln in raw)


@given(ids, skus, names, st.integers(0, 10**9), times)
def test_stock_snapshot_round_trip(
    event_id: str, sku: str, wh: str, on_hand: int, as_of: str
) -> None:
    ev = {
        "type": "stock.snapshot",
        "event_id": event_id,
        "sku": sku,
        "warehouse": wh,
        "on_hand": on_hand,
        "as_of": as_of,
    }
    assert decode(ev) == StockSnapshot(event_id, sku, wh, on_hand, ms(as_of))


@given(ids, skus, names, st.integers(-(10**9), 10**9).filter(bool), times, st.none() | names)
def test_stock_adjusted_round_trip(
    event_id: str, sku: str, wh: str, delta: int, as_of: str, reason: str | None
) -> None:
    ev: dict[str, Any] = {
        "type": "stock.adjusted",
        "event_id": event_id,
        "sku": sku,
        "warehouse": wh,
        "delta": delta,
        "as_of": as_of,
    }
    if reason is not None:
        ev["reason"] = reason
    assert decode(ev) == StockAdjusted(event_id, sku, wh, delta, ms(as_of), reason)


@given(ids, names, names, times, lines_st)
def test_order_placed_round_trip(
    event_id: str, order_id: str, channel: str, at: str, lines: list[dict[str, Any]]
) -> None:
    ev = {
        "type": "order.placed",
        "event_id": event_id,
        "order_id": order_id,
        "channel": channel,
        "placed_at": at,
        "lines": lines,
    }
    assert decode(ev) == OrderPlaced(event_id, order_id, channel, ms(at), _lines(lines))


@given(
    st.sampled_from(["order.cancelled", "order.shipped"]), ids, names, times, st.none() | lines_st
)
def test_order_cancelled_and_shipped_round_trip(
    event_type: str, event_id: str, order_id: str, at: str, lines: list[dict[str, Any]] | None
) -> None:
    field = "cancelled_at" if event_type == "order.cancelled" else "shipped_at"
    ev: dict[str, Any] = {"type": event_type, "event_id": event_id, "order_id": order_id, field: at}
    if lines is not None:
        ev["lines"] = lines
    cls = OrderCancelled if event_type == "order.cancelled" else OrderShipped
    expected = cls(event_id, order_id, ms(at), None if lines is None else _lines(lines))
    assert decode(ev) == expected


@given(
    ids,
    channels,
    listings,
    skus,
    st.none() | st.lists(names, min_size=1, max_size=3),
    st.none() | st.dictionaries(names, int64, max_size=2),
)
def test_listing_linked_round_trip(
    event_id: str,
    channel: str,
    listing: dict[str, Any],
    sku: str,
    warehouses: list[str] | None,
    rules: dict[str, Any] | None,
) -> None:
    ev: dict[str, Any] = {
        "type": "listing.linked",
        "event_id": event_id,
        "channel": channel,
        "listing": copy.deepcopy(listing),
        "sku": sku,
    }
    if warehouses is not None:
        ev["warehouses"] = warehouses
    if rules is not None:
        ev["rules"] = rules
    ref = orjson.dumps(listing, option=orjson.OPT_SORT_KEYS).decode()
    expected = ListingLinked(
        event_id,
        channel,
        listing,
        ref,
        sku,
        None if warehouses is None else tuple(warehouses),
        rules,
    )
    assert decode(ev) == expected


@given(ids, channels, listings)
def test_listing_unlinked_round_trip(event_id: str, channel: str, listing: dict[str, Any]) -> None:
    ev = {"type": "listing.unlinked", "event_id": event_id, "channel": channel, "listing": listing}
    ref = orjson.dumps(listing, option=orjson.OPT_SORT_KEYS).decode()
    assert decode(ev) == ListingUnlinked(event_id, channel, listing, ref)


def test_reason_codes_cover_what_the_module_raises() -> None:
    source = (ROOT / "syncd" / "contract" / "__init__.py").read_text()
    raised = set(re.findall(r'InvalidRecord\(\s*"([a-z_]+)"', source))
    raised |= {"bad_timestamp", "key_mismatch"}  # raised through helpers
    assert raised <= {code for code, _ in REASON_CODES}
    assert contract.REASON_CODES is REASON_CODES

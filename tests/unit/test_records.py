"""The internal topics' records (syncd/records.py): each type round-trips, and the wire
form is pinned byte for byte (the stages of an older and a newer syncd share topics)."""

from __future__ import annotations

import orjson
import pytest

from syncd import records
from syncd.core.actions import Action
from syncd.core.sending import Desired
from syncd.records import Acked, Hold, PushResult

LISTING = {"item_id": 7, "sku_id": 9}


def test_desired_round_trips_and_keeps_its_wire_form() -> None:
    raw = records.encode_desired(
        account="lazada:sg",
        listing=LISTING,
        listing_ref="7:9",
        sku="SKU-1",
        quantity=4,
        source_ts=1700,
        computed_at=1800,
    )
    assert raw == (
        b'{"account":"lazada:sg","listing":{"item_id":7,"sku_id":9},"listing_ref":"7:9",'
        b'"sku":"SKU-1","quantity":4,"source_ts":1700,"computed_at":1800}'
    )
    d = records.decode_desired(b"lazada:sg/7:9", raw)
    assert d == Desired("lazada:sg/7:9", LISTING, "7:9", "SKU-1", 4, 1700)
    assert d.account == "lazada:sg"
    assert records.decode_desired(None, raw) == d


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (None, b"[1]", "not a JSON object"),
        (None, b"{", "not JSON"),
        (None, b'{"account":"a","listing_ref":"r","quantity":1}', "required"),
        (None, b'{"account":"a","listing":{},"listing_ref":"r","quantity":-1}', "quantity"),
        (None, b'{"account":"a","listing":{},"listing_ref":"r","quantity":true}', "quantity"),
        (
            None,
            b'{"account":"a","listing":{},"listing_ref":"r","quantity":1,"source_ts":"x"}',
            "source_ts",
        ),
        (b"a/other", b'{"account":"a","listing":{},"listing_ref":"r","quantity":1}', "key"),
    ],
)
def test_a_malformed_desired_record_is_refused(key: bytes | None, value: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        records.decode_desired(key, value)


def test_acked_round_trips_and_keeps_its_wire_form() -> None:
    raw = records.encode_acked(5, 1234)
    assert raw == b'{"quantity":5,"at":1234}'
    assert records.decode_acked(raw) == Acked(5, 1234)
    assert records.decode_acked(b'{"quantity":5}') == Acked(5, None)
    for bad in (b'{"quantity":"5"}', b"[]", b"nope", b"{}"):
        with pytest.raises(ValueError):
            records.decode_acked(bad)


def test_hold_round_trips_and_keeps_its_wire_form() -> None:
    h = Hold("shopee:my", "SKU-1", "11:22", 3, 99)
    raw = records.encode_hold(h)
    assert raw == b'{"account":"shopee:my","sku":"SKU-1","listing_ref":"11:22","held":3,"at":99}'
    assert records.decode_hold(raw) == h
    assert (h.key, h.listing_key) == ("shopee:my/SKU-1", "shopee:my/11:22")
    with pytest.raises(ValueError):
        records.decode_hold(b'{"account":"a"}')


def test_action_round_trips_and_keeps_its_wire_form() -> None:
    a = Action("lazada:sg", "fix-sku", "manual", "check it", 10, 20, {"1:2": None}, count=2)
    raw = records.encode_action(a.record())
    assert raw == (
        b'{"id":"lazada:sg/fix-sku","account":"lazada:sg","action":"fix-sku","class":"manual",'
        b'"hint":"check it","listings":["1:2"],"state":"open","opened_at":10,"updated_at":20,'
        b'"count":2}'
    )
    value = records.decode_action(raw)
    assert value == a.record()
    assert value is not None
    assert records.action_of("lazada:sg", value) == a
    assert records.decode_action(b"[1]") is None
    with pytest.raises(ValueError):
        records.decode_action(b"{")


def test_push_result_round_trips_and_keeps_its_wire_form() -> None:
    ok = PushResult(
        "lazada:sg", "1:2", "SKU", 4, True, 1, 200, None, None, 12.5, 1700, 1800, True, False
    )
    raw = records.encode_push_result(ok)
    assert raw == (
        b'{"account":"lazada:sg","listing_ref":"1:2","sku":"SKU","quantity":4,"ok":true,'
        b'"attempt":1,"http_status":200,"code":null,"message":null,"latency_ms":12.5,'
        b'"source_ts":1700,"acked_at":1800,"final":true,"retriable":false}'
    )
    assert records.decode_push_result(raw) == ok
    failed = PushResult(
        "shopee:my",
        "1:2",
        "SKU",
        5,
        False,
        2,
        400,
        "error_busi",
        "no",
        3.0,
        None,
        None,
        True,
        False,
        desired_quantity=2,
        held=5,
        min_quantity=None,
        error_class="adjust",
        row="shopee-held",
        action="campaign",
    )
    raw = records.encode_push_result(failed)
    assert list(orjson.loads(raw)) == [
        "account",
        "listing_ref",
        "sku",
        "quantity",
        "ok",
        "attempt",
        "http_status",
        "code",
        "message",
        "latency_ms",
        "source_ts",
        "acked_at",
        "final",
        "retriable",
        "desired_quantity",
        "held",
        "class",
        "row",
        "action",
    ]
    assert records.decode_push_result(raw) == failed
    with pytest.raises(ValueError):
        records.decode_push_result(b'{"account":"a"}')

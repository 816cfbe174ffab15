"""The batch processor without Kafka: dead letters, partitioning, unknown stock, order retention."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from dev import sample
from syncd import config
from syncd.compute.processor import Processor
from syncd.contract import decode_listing
from syncd.core.catalog import Catalog
from syncd.kafka.partitioning import partition_for

CFG = config.parse(
    {"topics": {"internal_prefix": "x"}, "compute": {"closed_order_retention_hours": 1}}, env={}
)
T = CFG.topics
P = 3


@dataclass
class R:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def make(skus: int = 3) -> Processor:
    cat = Catalog()
    for r in sample.catalog(skus):
        assert r.key is not None
        cat.apply(r.key.decode(), decode_listing(r.key, r.value, max_bytes=65536))
    proc = Processor(CFG, cat, P)
    for p in range(P):
        proc.adopt("sku", p, {})
        proc.adopt("order", p, {})
    return proc


def snap(sku: str, qty: int, at: int, eid: str = "s1") -> bytes:
    return orjson.dumps(
        {
            "type": "stock.snapshot",
            "event_id": eid,
            "sku": sku,
            "warehouse": "WH-1",
            "on_hand": qty,
            "as_of": sample.rfc3339(at),
        }
    )


def test_desired_only_after_a_stock_fact_and_only_on_change() -> None:
    proc = make()
    sku = sample.sku_name(1)
    p = partition_for(sku, P)
    res = proc.process([], dirty_skus=[sku])
    assert not [o for o in res.outputs if o.topic == T.desired]  # unknown stock is not zero
    res = proc.process([R(T.stock, p, 0, sku.encode(), snap(sku, 7, sample.T0))])
    desired = {
        o.key: orjson.loads(o.value)["quantity"]
        for o in res.outputs
        if o.topic == T.desired and o.key and o.value
    }
    assert len(desired) == 3 and set(desired.values()) == {7}
    res = proc.process([R(T.stock, p, 1, sku.encode(), snap(sku, 7, sample.T0 + 1, "s2"))])
    assert not [o for o in res.outputs if o.topic == T.desired]


def test_record_in_the_wrong_partition_is_dead_lettered() -> None:
    proc = make()
    sku = sample.sku_name(1)
    wrong = (partition_for(sku, P) + 1) % P
    res = proc.process([R(T.stock, wrong, 5, sku.encode(), snap(sku, 7, sample.T0))])
    [dead] = [o for o in res.outputs if o.topic == T.dead_letter]
    headers = dict(dead.headers or [])
    assert headers["syncd.error.code"] == b"wrong_partition"
    assert headers["syncd.source.offset"] == b"5"
    assert dead.value == snap(sku, 7, sample.T0)


def test_a_failure_inside_syncd_parks_the_record_and_goes_on() -> None:
    proc = make()
    sku = sample.sku_name(2)
    p = partition_for(sku, P)
    res = proc.process(
        [
            R(T.order_lines, p, 0, sku.encode(), b'{"broken": true}'),
            R(T.stock, p, 0, sku.encode(), snap(sku, 4, sample.T0)),
        ]
    )
    codes = [
        dict(o.headers or [])["syncd.error.code"] for o in res.outputs if o.topic == T.dead_letter
    ]
    assert codes == [b"internal_error"]
    assert any(o.topic == T.desired for o in res.outputs)


def test_catalog_record_with_a_bad_rule_is_dead_lettered() -> None:
    proc = make()
    ev = {
        "type": "listing.linked",
        "event_id": "c1",
        "channel": "shopee:my-main",
        "listing": {"item_id": 1, "model_id": 0},
        "sku": "A",
        "rules": {"share": 3},
    }
    res = proc.process([R(T.catalog, 0, 0, b"shopee:my-main/x", orjson.dumps(ev))])
    [dead] = [o for o in res.outputs if o.topic == T.dead_letter]
    assert b"share" in dict(dead.headers or [])["syncd.error.reason"]


def test_closed_orders_are_forgotten_after_retention_open_ones_kept() -> None:
    proc = make()
    hour = 3_600_000

    def order(eid: str, oid: str, kind: str, at: int) -> R:
        ev: dict[str, object] = {"type": kind, "event_id": eid, "order_id": oid}
        if kind == "order.placed":
            ev |= {
                "channel": "shop",
                "placed_at": sample.rfc3339(at),
                "lines": [{"sku": "A", "qty": 1}],
            }
        else:
            ev["cancelled_at"] = sample.rfc3339(at)
        q = partition_for(oid, P)
        return R(T.orders, q, int(eid), oid.encode(), orjson.dumps(ev))

    proc.process(
        [
            order("1", "closed", "order.placed", sample.T0),
            order("2", "closed", "order.cancelled", sample.T0 + 1),
            order("3", "open", "order.placed", sample.T0),
        ]
    )
    proc.start_sweep()
    assert proc.sweep_step(CFG.compute.retention_ms, 100) == []  # not old enough yet
    # The retention clock is per partition: move the closed order's partition past it.
    later = next(
        f"later-{i}"
        for i in range(100)
        if partition_for(f"later-{i}", P) == partition_for("closed", P)
    )
    proc.process([order("4", later, "order.placed", sample.T0 + 2 * hour)])
    proc.start_sweep()
    gone = proc.sweep_step(CFG.compute.retention_ms, 100)
    assert [(o.topic, o.key, o.value) for o in gone] == [(T.order_state, b"closed", None)]
    assert "closed" not in proc.order_state[partition_for("closed", P)]
    assert "open" in proc.order_state[partition_for("open", P)]

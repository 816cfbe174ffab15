"""Sample input streams for the demo, the integration tests and the benchmarks.

Deterministic for a seed: a catalog (each SKU listed on several channel
accounts), then a mixed stream of order events (placed, later cancelled or
shipped, some duplicated, some out of order), stock snapshots and stock
adjustments, all shaped exactly as docs/contract.md says.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

ACCOUNTS = ("shopee:my-main", "lazada:sg-main", "wayfair:us")
WAREHOUSES = ("WH-1", "WH-2")
T0 = 1_795_000_000_000  # 2026-11-17, epoch ms


def rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def sku_name(i: int) -> str:
    return f"SKU-{i:06d}"


def listing_for(account: str, i: int) -> dict[str, object]:
    platform = account.split(":", 1)[0]
    if platform == "shopee":
        return {"item_id": 100000 + i, "model_id": 0}
    if platform == "lazada":
        return {"item_id": 300000 + i, "sku_id": 700000 + i, "seller_sku": sku_name(i)}
    if platform == "wayfair":
        return {"supplier_part_number": sku_name(i)}
    return {
        "inventory_item_id": f"gid://shopify/InventoryItem/{i + 1}",
        "location_id": "gid://shopify/Location/1",
    }


@dataclass(frozen=True, slots=True)
class Rec:
    topic: str
    """'stock', 'orders' or 'catalog'."""
    key: bytes | None
    value: bytes | None


def catalog(n_skus: int, accounts: Sequence[str] = ACCOUNTS) -> list[Rec]:
    out = []
    for i in range(n_skus):
        for a in accounts:
            listing = listing_for(a, i)
            ref = orjson.dumps(listing, option=orjson.OPT_SORT_KEYS).decode()
            ev = {
                "type": "listing.linked",
                "event_id": f"cat-{a}-{i}",
                "channel": a,
                "listing": listing,
                "sku": sku_name(i),
            }
            out.append(Rec("catalog", f"{a}/{ref}".encode(), orjson.dumps(ev)))
    return out


def events(
    n_events: int,
    n_skus: int,
    *,
    seed: int = 7,
    mix: tuple[float, float, float] = (0.6, 0.3, 0.1),
    duplicate_rate: float = 0.01,
    step_ms: int = 1000,
) -> Iterator[Rec]:
    """``n_events`` records: order events, snapshots and adjustments in ``mix`` proportions."""
    rng = random.Random(seed)
    now = T0
    open_orders: list[tuple[str, list[dict[str, object]]]] = []
    order_no = 0
    recent: list[Rec] = []
    for n in range(n_events):
        now += rng.randint(0, step_ms)
        if recent and rng.random() < duplicate_rate:
            yield rng.choice(recent)  # producers retry: duplicates are normal
            continue
        r = rng.random()
        if r < mix[0]:
            if open_orders and rng.random() < 0.45:
                oid, lines = open_orders.pop(rng.randrange(len(open_orders)))
                kind = "order.shipped" if rng.random() < 0.8 else "order.cancelled"
                at = "shipped_at" if kind == "order.shipped" else "cancelled_at"
                ev: dict[str, object] = {
                    "type": kind,
                    "event_id": f"e{n}",
                    "order_id": oid,
                    at: rfc3339(now),
                }
                if rng.random() < 0.2:
                    ev["lines"] = [lines[0]]
                rec = Rec("orders", oid.encode(), orjson.dumps(ev))
            else:
                order_no += 1
                oid = f"O-{seed}-{order_no}"
                lines = [
                    {
                        "sku": sku_name(rng.randrange(n_skus)),
                        "qty": rng.randint(1, 3),
                        "warehouse": rng.choice(WAREHOUSES),
                    }
                    for _ in range(1 if rng.random() < 0.8 else 2)
                ]
                open_orders.append((oid, lines))
                ev = {
                    "type": "order.placed",
                    "event_id": f"e{n}",
                    "order_id": oid,
                    "channel": rng.choice(ACCOUNTS),
                    "placed_at": rfc3339(now),
                    "lines": lines,
                }
                rec = Rec("orders", oid.encode(), orjson.dumps(ev))
        elif r < mix[0] + mix[1]:
            sku = sku_name(rng.randrange(n_skus))
            ev = {
                "type": "stock.snapshot",
                "event_id": f"e{n}",
                "sku": sku,
                "warehouse": rng.choice(WAREHOUSES),
                "on_hand": rng.randint(0, 60),
                "as_of": rfc3339(now - rng.randint(0, 5000)),
            }
            rec = Rec("stock", sku.encode(), orjson.dumps(ev))
        else:
            sku = sku_name(rng.randrange(n_skus))
            ev = {
                "type": "stock.adjusted",
                "event_id": f"e{n}",
                "sku": sku,
                "warehouse": rng.choice(WAREHOUSES),
                "delta": rng.choice([-3, -2, -1, 1, 2, 5, 10]),
                "as_of": rfc3339(now),
                "reason": "count correction",
            }
            rec = Rec("stock", sku.encode(), orjson.dumps(ev))
        recent.append(rec)
        if len(recent) > 50:
            recent.pop(0)
        yield rec


def bad_records() -> list[Rec]:
    """One record per kind of contract violation (each must reach the dead-letter topic)."""
    snap = {
        "type": "stock.snapshot",
        "event_id": "bad-1",
        "sku": "SKU-000001",
        "warehouse": "WH-1",
        "on_hand": 5,
        "as_of": rfc3339(T0),
    }
    return [
        Rec("stock", b"SKU-000001", b"{not json"),
        Rec("stock", b"SKU-000001", b"[1, 2]"),
        Rec("stock", b"SKU-000001", orjson.dumps({k: v for k, v in snap.items() if k != "as_of"})),
        Rec("stock", b"SKU-000001", orjson.dumps({**snap, "on_hand": "5"})),
        Rec("stock", b"SKU-000001", orjson.dumps({**snap, "on_hand": -1})),
        Rec("stock", b"SKU-000001", orjson.dumps({**snap, "type": "stock.teleported"})),
        Rec("stock", b"TS  RED", orjson.dumps({**snap, "sku": "TS  RED"})),
        Rec("stock", b"SKU-000001", orjson.dumps({**snap, "reason": "x" * 70000})),
        Rec(
            "orders",
            b"O-bad",
            orjson.dumps(
                {
                    "type": "order.placed",
                    "event_id": "bad-2",
                    "order_id": "O-bad",
                    "channel": "shopee:my-main",
                    "placed_at": rfc3339(T0),
                    "lines": [{"sku": "SKU-000001", "qty": 0}],
                }
            ),
        ),
    ]

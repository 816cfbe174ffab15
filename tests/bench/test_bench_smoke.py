"""Smoke tests of the flash-sale simulation's pure parts: accounting, shoppers, periodic sync.

The live harness (syncd in the loop) runs in ``bench/report.py``; these keep its
bookkeeping and the periodic strategy honest without a broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bench.flash_sale import (
    SCENARIOS,
    Books,
    Periodic,
    Restock,
    Shopper,
    drive,
    run_periodic,
    timeline,
)

TINY = replace(SCENARIOS["flash"], skus=1, stock=(2, 2), channel_share=(0.5, 0.5), feed_delay_s=2.0)


def test_books_counts_oversold_turned_away_and_lost() -> None:
    b = Books([2, 5])
    assert b.shop(0, shown=3) and b.shop(0, shown=2)
    assert b.shop(0, shown=1)  # the warehouse had nothing left: oversold, feed had not told
    assert (b.oversold, b.oversold_known) == (1, 0)
    b.told(0, -1)
    b.told(0, -1)
    assert b.shop(0, shown=1)  # the feed had told the stock was gone: the channel's fault
    assert (b.oversold, b.oversold_known) == (2, 1)
    assert not b.shop(0, shown=0)  # no stock: not turned away
    assert not b.shop(1, shown=0) and not b.shop(1, shown=0)  # 5 unsold: turned away twice
    b.restock(0, 1)
    f = b.figures()
    assert f["orders"] == 4 and f["shoppers"] == 7 and f["turned_away"] == 2
    assert f["lost"] == 2  # SKU 1 kept its units
    assert f["oversold_per_10k"] == 2 * 10_000 / 4


def test_lost_sales_are_capped_by_the_units_left_unsold() -> None:
    b = Books([1])
    for _ in range(5):
        b.shop(0, shown=0)  # five shoppers turned away while one unit sat in the buffer
    assert b.figures()["turned_away"] == 5 and b.lost_sales() == 1
    b.shop(0, shown=1)  # someone bought it later after all: nothing was lost
    assert b.lost_sales() == 0


def test_timeline_is_deterministic_and_sized() -> None:
    sc = SCENARIOS["steady"].scaled(0.1)
    a, b = timeline(sc, 7), timeline(sc, 7)
    assert a == b and a != timeline(sc, 8)
    assert [e.t for e in a] == sorted(e.t for e in a)
    shoppers = [e for e in a if isinstance(e, Shopper)]
    assert abs(len(shoppers) - sc.shoppers) < 0.15 * sc.shoppers
    assert any(isinstance(e, Restock) for e in a)
    assert all(0 <= e.t < sc.minutes * 60 for e in a)


def _periodic(events: list[Shopper | Restock], period_s: float, **kw: object) -> Books:
    world = Periodic(replace(TINY, **kw), [2], period_s=period_s)  # type: ignore[arg-type]
    asyncio.run(drive(world, events, world.sc.feed_delay_s))
    return world.books


def test_periodic_sync_oversells_between_syncs_and_catches_up() -> None:
    three = [Shopper(10, 0, 0), Shopper(20, 0, 1), Shopper(30, 0, 1)]
    slow = _periodic(three, period_s=600)  # both channels show 2 for ten minutes
    assert (slow.orders, slow.oversold) == (3, 1)
    fast = _periodic(three, period_s=5)  # synced after the feed told both sales
    assert (fast.orders, fast.oversold) == (2, 0)
    restocked = _periodic([Restock(10, 0, 4), *three, Shopper(700, 0, 0)], period_s=600)
    assert restocked.orders == 4 and restocked.oversold == 0


def test_periodic_sync_skips_a_channel_in_outage() -> None:
    later = [Shopper(10, 0, 0), Shopper(20, 0, 0), Shopper(610, 0, 1), Shopper(620, 0, 1)]
    ok = _periodic(later, period_s=600)
    assert ok.oversold == 0  # the 10-minute sync showed 0 on channel 1
    down = _periodic(later, period_s=600, outage=(1, 5.0, 15.0))
    assert down.oversold == 2  # channel 1 kept showing 2
    assert down.figures()["oversold_by_channel"] == {"lazada": 2}


def test_flash_scenario_periodic_oversells_far_more_than_it_loses() -> None:
    f = asyncio.run(run_periodic(SCENARIOS["flash"].scaled(0.25), 7))
    assert f["oversold_per_10k"] > 1000
    assert f["lost"] == 0

"""The order book (syncd.core.orders): per-order facts -> per-SKU views, in any arrival order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.events import OrderCancelled, OrderEvent, OrderLine, OrderPlaced, OrderShipped
from syncd.core.orders import LineView, OrderState, SkuOrderView, apply, expired

OID = "o-1"
CH = "shopee:my-main"
T0 = 1_700_000_000_000
HOUR = 3_600_000


def ln(sku: str, qty: int, wh: str | None = None) -> OrderLine:
    return OrderLine(sku, qty, wh)


def placed(eid: str = "p1", *lines: OrderLine, at: int = T0, channel: str = CH) -> OrderPlaced:
    return OrderPlaced(eid, OID, channel, at, tuple(lines) or (ln("A", 2),))


def cancelled(eid: str, *lines: OrderLine, at: int = T0 + 1000) -> OrderCancelled:
    return OrderCancelled(eid, OID, at, tuple(lines) or None)


def shipped(eid: str, *lines: OrderLine, at: int = T0 + 2000) -> OrderShipped:
    return OrderShipped(eid, OID, at, tuple(lines) or None)


def run(events: list[OrderEvent], start: int = 0) -> OrderState:
    state = None
    for i, ev in enumerate(events):
        state, _, _ = apply(state, ev, start + i)
    assert state is not None
    return state


def open_units(state: OrderState) -> dict[str, int]:
    return {sku: sum(x.open for x in v.lines) for sku, v in state.views(OID).items()}


# -- placement ------------------------------------------------------------------------------


def test_placement_reserves_every_line() -> None:
    ev = placed("p1", ln("A", 2, "W1"), ln("B", 3))
    state, outcome, changed = apply(None, ev, 7)
    assert outcome == "applied"
    assert set(changed) == {"A", "B"}
    a = changed["A"]
    assert a == SkuOrderView(OID, 7, CH, T0, (LineView("W1", 2, 2, ()),))
    assert changed["B"].lines == (LineView(None, 3, 3, ()),)
    assert state.version == 7
    assert state.views(OID) == changed
    assert not state.closed


def test_apply_modifies_given_state_in_place() -> None:
    st0 = OrderState()
    st1, _, _ = apply(st0, placed(), 0)
    assert st1 is st0
    assert st0.lines == [("A", 2, None)]


def test_views_empty_until_placement_known() -> None:
    state, outcome, changed = apply(None, cancelled("c1"), 0)
    assert outcome == "applied"
    assert changed == {}
    assert state.views(OID) == {}
    assert not state.closed


def test_multi_sku_order_gives_one_view_per_sku_with_only_its_lines() -> None:
    ev = placed("p1", ln("A", 1, "W1"), ln("B", 2, "W1"), ln("A", 4, "W2"), ln("C", 1))
    _, _, changed = apply(None, ev, 3)
    assert set(changed) == {"A", "B", "C"}
    assert changed["A"].lines == (LineView("W1", 1, 1, ()), LineView("W2", 4, 4, ()))
    assert changed["B"].lines == (LineView("W1", 2, 2, ()),)
    assert changed["C"].lines == (LineView(None, 1, 1, ()),)
    for v in changed.values():
        assert (v.order_id, v.version, v.channel, v.placed_at) == (OID, 3, CH, T0)


# -- cancels ----------------------------------------------------------------------------------


def test_cancel_all_releases_every_line() -> None:
    state = run([placed("p1", ln("A", 2, "W1"), ln("B", 3))])
    state, outcome, changed = apply(state, cancelled("c1"), 1)
    assert outcome == "applied"
    assert set(changed) == {"A", "B"}
    assert changed["A"].lines == (LineView("W1", 2, 0, ()),)
    assert changed["B"].lines == (LineView(None, 3, 0, ()),)
    assert changed["A"].version == 1
    assert state.closed


def test_partial_cancel_matches_sku_and_warehouse() -> None:
    state = run([placed("p1", ln("A", 3, "W1"), ln("A", 2, "W2"), ln("B", 1, "W2"))])
    state, _, changed = apply(state, cancelled("c1", ln("A", 1, "W2")), 1)
    assert set(changed) == {"A"}  # B did not change: no view for it
    assert changed["A"].lines == (LineView("W1", 3, 3, ()), LineView("W2", 2, 1, ()))
    assert open_units(state) == {"A": 4, "B": 1}
    assert not state.closed


def test_partial_cancel_of_other_warehouse_does_not_touch_line() -> None:
    state = run([placed("p1", ln("A", 3, "W1"))])
    state, _, changed = apply(state, cancelled("c1", ln("A", 1, "W9")), 1)
    assert changed == {}
    assert open_units(state) == {"A": 3}


def test_partial_cancel_without_warehouse_takes_lines_in_placement_order() -> None:
    state = run([placed("p1", ln("A", 3, "W1"), ln("A", 2, "W2"))])
    state, _, changed = apply(state, cancelled("c1", ln("A", 4)), 1)
    assert changed["A"].lines == (LineView("W1", 3, 0, ()), LineView("W2", 2, 1, ()))


def test_cancel_more_than_ordered_releases_only_what_is_open() -> None:
    state = run([placed("p1", ln("A", 2)), cancelled("c1", ln("A", 5))])
    assert state.views(OID)["A"].lines == (LineView(None, 2, 0, ()),)
    assert state.closed


def test_cancel_of_sku_not_in_order_changes_nothing() -> None:
    state = run([placed("p1", ln("A", 2))])
    state, outcome, changed = apply(state, cancelled("c1", ln("Z", 1)), 1)
    assert outcome == "applied"
    assert changed == {}
    assert open_units(state) == {"A": 2}


def test_two_partial_cancels_add_up() -> None:
    state = run(
        [
            placed("p1", ln("A", 5)),
            cancelled("c1", ln("A", 2), at=T0 + 10),
            cancelled("c2", ln("A", 2), at=T0 + 20),
        ]
    )
    assert open_units(state) == {"A": 1}
    state, _, _ = apply(state, cancelled("c3", ln("A", 1), at=T0 + 30), 3)
    assert open_units(state) == {"A": 0}
    assert state.closed


# -- ships ------------------------------------------------------------------------------------


def test_ship_all_moves_open_units_to_shipped_with_time() -> None:
    state = run([placed("p1", ln("A", 2, "W1"), ln("B", 1))])
    state, outcome, changed = apply(state, shipped("s1", at=T0 + 500), 1)
    assert outcome == "applied"
    assert changed["A"].lines == (LineView("W1", 2, 0, ((2, T0 + 500),)),)
    assert changed["B"].lines == (LineView(None, 1, 0, ((1, T0 + 500),)),)
    assert state.closed


def test_partial_ships_keep_one_part_per_ship() -> None:
    state = run([placed("p1", ln("A", 5, "W1"), ln("B", 1, "W1"))])
    state, _, changed = apply(state, shipped("s1", ln("A", 2, "W1"), at=T0 + 100), 1)
    assert set(changed) == {"A"}
    assert changed["A"].lines == (LineView("W1", 5, 3, ((2, T0 + 100),)),)
    state, _, changed = apply(state, shipped("s2", ln("A", 3), at=T0 + 200), 2)
    assert changed["A"].lines == (LineView("W1", 5, 0, ((2, T0 + 100), (3, T0 + 200))),)
    assert not state.closed  # B still open
    state, _, changed = apply(state, shipped("s3", at=T0 + 300), 3)
    assert set(changed) == {"B"}  # the all-lines ship changed only B
    assert changed["B"].lines == (LineView("W1", 1, 0, ((1, T0 + 300),)),)
    assert state.closed


def test_ship_after_partial_cancel_ships_only_the_rest() -> None:
    state = run(
        [
            placed("p1", ln("A", 4)),
            cancelled("c1", ln("A", 1), at=T0 + 10),
            shipped("s1", at=T0 + 20),
        ]
    )
    assert state.views(OID)["A"].lines == (LineView(None, 4, 0, ((3, T0 + 20),)),)


def test_ship_more_than_open_ships_only_open_units() -> None:
    state = run([placed("p1", ln("A", 2)), shipped("s1", ln("A", 9))])
    assert state.views(OID)["A"].lines == (LineView(None, 2, 0, ((2, T0 + 2000),)),)


def test_facts_are_applied_in_their_own_time_order() -> None:
    # The ship happened before the cancel-all: the shipped units are shipped, not cancelled.
    in_order = run(
        [placed("p1", ln("A", 3)), shipped("s1", ln("A", 1), at=T0 + 5), cancelled("c1", at=T0 + 9)]
    )
    late_ship = run(
        [placed("p1", ln("A", 3)), cancelled("c1", at=T0 + 9), shipped("s1", ln("A", 1), at=T0 + 5)]
    )
    want = (LineView(None, 3, 0, ((1, T0 + 5),)),)
    assert in_order.views(OID)["A"].lines == want
    assert late_ship.views(OID)["A"].lines == want


# -- duplicates, replays, repeats ---------------------------------------------------------------


def test_duplicate_event_id_has_no_effect() -> None:
    state = run([placed("p1", ln("A", 5)), cancelled("c1", ln("A", 1))])
    before = state.views(OID)
    ops_before = list(state.ops)
    state, outcome, changed = apply(state, cancelled("c1", ln("A", 1)), 10)
    assert outcome == "duplicate"
    assert changed == {}
    assert state.ops == ops_before
    assert open_units(state) == {"A": 4}
    assert {k: v.lines for k, v in state.views(OID).items()} == {
        k: v.lines for k, v in before.items()
    }
    assert state.version == 10  # the offset is consumed
    # The same event id with different content is still a duplicate (ids are unique).
    state, outcome, changed = apply(state, cancelled("c1", ln("A", 3)), 11)
    assert outcome == "duplicate"
    assert open_units(state) == {"A": 4}


def test_duplicate_placement_event_id_is_duplicate() -> None:
    state = run([placed("p1", ln("A", 5))])
    state, outcome, changed = apply(state, placed("p1", ln("A", 5)), 1)
    assert (outcome, changed) == ("duplicate", {})


@pytest.mark.parametrize("offset", [3, 4])
def test_offset_at_or_below_version_is_replayed(offset: int) -> None:
    state = run([placed("p1", ln("A", 5))], start=4)
    assert state.version == 4
    snapshot = state.to_bytes()
    state, outcome, changed = apply(state, cancelled("c-new"), offset)
    assert (outcome, changed) == ("replayed", {})
    assert state.to_bytes() == snapshot
    assert open_units(state) == {"A": 5}


def test_placement_after_cancel_reserves_nothing() -> None:
    state, _, changed = apply(None, cancelled("c1", at=T0 + 50), 0)
    assert changed == {}
    state, outcome, changed = apply(state, placed("p1", ln("A", 2), ln("B", 1)), 1)
    assert outcome == "applied"
    # Views are emitted (the SKU side must learn the order) but nothing is open.
    assert set(changed) == {"A", "B"}
    assert all(x.open == 0 for v in changed.values() for x in v.lines)
    assert state.closed


def test_placement_after_full_ship_reserves_nothing_open() -> None:
    state = run([shipped("s1", at=T0 + 50), placed("p1", ln("A", 2, "W1"))])
    assert state.views(OID)["A"].lines == (LineView("W1", 2, 0, ((2, T0 + 50),)),)
    assert state.closed


def test_placement_after_partial_cancel_reserves_the_rest() -> None:
    state = run([cancelled("c1", ln("A", 1)), placed("p1", ln("A", 3))])
    assert open_units(state) == {"A": 2}
    assert not state.closed


def test_repeat_placement_after_cancel_is_ignored() -> None:
    state = run([placed("p1", ln("A", 2)), cancelled("c1")])
    state, outcome, changed = apply(state, placed("p2", ln("A", 2)), 2)
    assert outcome == "repeat_placement"
    assert changed == {}
    assert open_units(state) == {"A": 0}
    assert state.closed


def test_repeat_placement_with_other_lines_keeps_first_placement() -> None:
    state = run([placed("p1", ln("A", 2))])
    state, outcome, changed = apply(
        state, placed("p2", ln("A", 9), ln("B", 1), at=T0 + 5, channel="lazada:x"), 1
    )
    assert outcome == "repeat_placement"
    assert changed == {}
    views = state.views(OID)
    assert set(views) == {"A"}
    assert views["A"].lines == (LineView(None, 2, 2, ()),)
    assert (views["A"].channel, views["A"].placed_at) == (CH, T0)
    # The repeated id is remembered: applying it again is a duplicate.
    _, outcome, _ = apply(state, placed("p2", ln("A", 9)), 2)
    assert outcome == "duplicate"


def test_views_only_for_skus_that_changed() -> None:
    state = run([placed("p1", ln("A", 2), ln("B", 2), ln("C", 2))])
    _, _, changed = apply(state, shipped("s1", ln("B", 1), ln("C", 2)), 1)
    assert set(changed) == {"B", "C"}
    # After the ship, C has nothing open left: a later cancel of C changes no view.
    _, _, changed = apply(state, cancelled("c1", ln("C", 1), at=T0 + 3000), 2)
    assert changed == {}
    # A cancel dated before the ship does change C (facts apply in their own time order).
    _, _, changed = apply(state, cancelled("c2", ln("C", 1), at=T0 + 1000), 3)
    assert set(changed) == {"C"}
    assert changed["C"].lines == (LineView(None, 2, 0, ((1, T0 + 2000),)),)


# -- persistence --------------------------------------------------------------------------------


def test_state_round_trip() -> None:
    state = run(
        [
            placed("p1", ln("A", 3, "W1"), ln("B", 1)),
            cancelled("c1", ln("A", 1, "W1")),
            shipped("s1", ln("B", 1), at=T0 + 77),
            shipped("s2", at=T0 + 99),
        ]
    )
    raw = state.to_bytes()
    back = OrderState.from_bytes(raw)
    assert back == state
    assert back.to_bytes() == raw
    assert back.views(OID) == state.views(OID)
    assert back.closed == state.closed


def test_state_round_trip_before_placement_and_continues_identically() -> None:
    state = run([cancelled("c1", ln("A", 1)), shipped("s1")])
    back = OrderState.from_bytes(state.to_bytes())
    assert back == state
    nxt = placed("p1", ln("A", 3))
    r1 = apply(state, nxt, 5)
    r2 = apply(back, nxt, 5)
    assert r1[1:] == r2[1:]
    assert r1[0].to_bytes() == r2[0].to_bytes()


def test_empty_state_round_trip() -> None:
    assert OrderState.from_bytes(OrderState().to_bytes()) == OrderState()


def test_view_json_round_trip() -> None:
    v = SkuOrderView(
        OID,
        42,
        CH,
        T0,
        (LineView("W1", 3, 1, ((1, T0 + 1), (1, T0 + 2))), LineView(None, 1, 1, ())),
    )
    assert SkuOrderView.from_json(v.to_json()) == v


# -- retention ----------------------------------------------------------------------------------


def test_open_order_is_never_expired() -> None:
    state = run([placed("p1", ln("A", 1), at=T0)])
    assert not expired(state, now_ms=T0 + 10_000 * 24 * HOUR, retention_ms=HOUR)


def test_partially_open_order_is_never_expired() -> None:
    state = run([placed("p1", ln("A", 2)), shipped("s1", ln("A", 1))])
    assert not expired(state, now_ms=T0 + 10_000 * HOUR, retention_ms=HOUR)


@pytest.mark.parametrize("close", [cancelled("c1"), shipped("s1")])
def test_closed_order_expires_after_retention_only(close: OrderEvent) -> None:
    state = run([placed("p1", ln("A", 1)), close])
    last = state.last_at
    assert last == max(T0, getattr(close, "cancelled_at", 0), getattr(close, "shipped_at", 0))
    assert not expired(state, now_ms=last + HOUR - 1, retention_ms=HOUR)
    assert expired(state, now_ms=last + HOUR, retention_ms=HOUR)
    assert expired(state, now_ms=last + 100 * HOUR, retention_ms=HOUR)


def test_unplaced_order_expires_after_retention() -> None:
    state = run([cancelled("c1", at=T0)])
    assert not expired(state, now_ms=T0 + HOUR - 1, retention_ms=HOUR)
    assert expired(state, now_ms=T0 + HOUR, retention_ms=HOUR)


def test_last_at_is_newest_event_time_not_arrival() -> None:
    state = run([shipped("s1", at=T0 + 50), placed("p1", at=T0)])
    assert state.last_at == T0 + 50
    assert not expired(state, now_ms=T0 + 50 + HOUR - 1, retention_ms=HOUR)


# -- properties -----------------------------------------------------------------------------------

SKUS = ("A", "B", "C")
WHS = (None, "W1", "W2")
lines_st = st.lists(
    st.builds(OrderLine, st.sampled_from(SKUS), st.integers(1, 4), st.sampled_from(WHS)),
    min_size=1,
    max_size=3,
)


@st.composite
def order_events(draw: st.DrawFn) -> list[OrderEvent]:
    events: list[OrderEvent] = [
        OrderPlaced("p", OID, CH, draw(st.integers(0, 50)), tuple(draw(lines_st)))
    ]
    for i in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, 60))
        lines = draw(st.none() | lines_st)
        lines_t = None if lines is None else tuple(lines)
        if draw(st.booleans()):
            events.append(OrderCancelled(f"c{i}", OID, at, lines_t))
        else:
            events.append(OrderShipped(f"s{i}", OID, at, lines_t))
    return events


def _final(events: list[OrderEvent]) -> dict[str, SkuOrderView]:
    return run(events).views(OID)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), events=order_events())
def test_any_arrival_order_gives_the_same_views(
    data: st.DataObject, events: list[OrderEvent]
) -> None:
    want = _final(events)
    perm = data.draw(st.permutations(events))
    got = _final(perm)
    assert got == want
    for v in got.values():
        for x in v.lines:
            assert 0 <= x.open <= x.placed
            assert x.open + sum(q for q, _ in x.shipped) <= x.placed


@settings(max_examples=100, deadline=None)
@given(data=st.data(), events=order_events())
def test_applying_every_event_twice_changes_nothing(
    data: st.DataObject, events: list[OrderEvent]
) -> None:
    perm = data.draw(st.permutations(events))
    once = run(perm)
    # Each event delivered twice, the repeat at a random later position.
    doubled: list[OrderEvent] = list(perm)
    for ev in perm:
        pos = data.draw(st.integers(doubled.index(ev) + 1, len(doubled)))
        doubled.insert(pos, ev)
    state: OrderState | None = None
    seen: set[str] = set()
    for off, ev in enumerate(doubled):
        state, outcome, changed = apply(state, ev, off)
        if ev.event_id in seen:
            assert (outcome, changed) == ("duplicate", {})
        seen.add(ev.event_id)
    assert state is not None
    assert state.ops == once.ops
    assert {k: v.lines for k, v in state.views(OID).items()} == {
        k: v.lines for k, v in once.views(OID).items()
    }


@settings(max_examples=100, deadline=None)
@given(events=order_events())
def test_changed_views_reconstruct_the_final_views(events: list[OrderEvent]) -> None:
    """A consumer keeping the newest changed view per SKU ends with the final views."""
    state: OrderState | None = None
    latest: dict[str, SkuOrderView] = {}
    for off, ev in enumerate(events[::-1]):
        state, _, changed = apply(state, ev, off)
        for sku, v in changed.items():
            assert v.version == off
            latest[sku] = v
    assert state is not None
    final = state.views(OID)
    assert set(latest) == set(final)
    assert {k: v.lines for k, v in latest.items()} == {k: v.lines for k, v in final.items()}

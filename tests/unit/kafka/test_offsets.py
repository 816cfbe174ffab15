"""OffsetTracker: the commit position of a partition whose records resolve out of order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.kafka.offsets import OffsetTracker


def test_position_waits_for_the_lowest_unresolved_offset() -> None:
    t = OffsetTracker()
    assert t.position() is None  # nothing seen: nothing to commit
    for offset in (10, 11, 12, 13):
        t.add(offset)
    assert (t.position(), t.open) == (10, 4)
    t.done([11, 12])  # later ones resolve first
    assert (t.position(), t.open) == (10, 2)
    t.done([10])
    assert t.position() == 13
    t.done([13])
    assert (t.position(), t.open) == (14, 0)  # all resolved: one past the newest seen
    t.done([13, 99])  # resolving twice, or an offset never added, changes nothing
    assert t.position() == 14


@given(st.permutations(range(50)), st.integers(min_value=0, max_value=50))
def test_position_is_the_first_gap_whatever_the_order(order: list[int], resolved: int) -> None:
    t = OffsetTracker()
    for offset in range(100, 150):
        t.add(offset)
    done = {100 + o for o in order[:resolved]}
    t.done(done)
    expected = min((o for o in range(100, 150) if o not in done), default=150)
    assert t.position() == expected
    assert t.open == 50 - resolved

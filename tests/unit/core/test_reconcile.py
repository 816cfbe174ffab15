"""Reconciliation, the pure part (:mod:`syncd.core.reconcile`): what one read-back means.

Each rule of the module docstring on its own, then properties over arbitrary
sequences of reads (hypothesis): a drift is pushed again at most once, never before
it was seen twice, and an action needs the push and ``persist_s``; the action's code
picks the error-table row (Wayfair's Confirm Stock Status for a forced zero,
``read-back-drift`` elsewhere); the settings and the ``[publish]`` keys.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import config
from syncd.channels.base import PushOutcome
from syncd.config.error_table import default_table
from syncd.core.errortable import READ_BACK_STALE, READ_BACK_ZERO
from syncd.core.reconcile import (
    COST_BUCKET_CALLS_PER_S,
    PROPAGATION_DELAYS,
    Check,
    Drift,
    Settings,
    check,
    propagation_delay,
    read_rate,
)
from syncd.errors import ConfigError

DELAY, PERSIST = 100.0, 600.0


def at(now: float, read: int | None, drift: Drift | None = None, **kw: object) -> Check:
    args: dict[str, object] = {"delay_s": DELAY, "persist_s": PERSIST, "drift": drift, **kw}
    acked = args.pop("acked", 7)
    acked_at = args.pop("acked_at", 0.0)
    return check(acked, acked_at, read, now, **args)  # type: ignore[arg-type]


def test_the_platform_shows_the_acknowledged_quantity_ends_any_drift() -> None:
    assert at(1000, 7) == Check("ok", None)
    assert at(1000, 7, Drift(500, 3, pushed=True, opened=True)) == Check("ok", None)


def test_within_the_propagation_delay_a_difference_is_waited_for() -> None:
    assert at(99, 3).verdict == "wait"
    old = Drift(10, 3, pushed=True)
    assert at(150, 3, old, acked_at=100.0) == Check("wait", old)  # the re-push propagates


def test_a_drift_is_confirmed_then_pushed_once_then_an_action_after_persist() -> None:
    first = at(1000, 3)
    assert first == Check("drift", Drift(1000, 3))
    second = at(1300, 4, first.drift)
    assert second == Check("push", Drift(1000, 4, pushed=True))
    still = at(1500, 4, second.drift, acked_at=1350.0)
    assert still == Check("drift", Drift(1000, 4, pushed=True))
    late = at(1600, 4, still.drift, acked_at=1350.0)
    assert late.verdict == "action"
    assert late.code == READ_BACK_STALE
    assert late.message == "read back 4 since 10 min, sent 7"
    assert at(9000, 4, still.drift).message == "read back 4 since 2.2 h, sent 7"
    assert late.drift == Drift(1000, 4, pushed=True, opened=True)
    assert at(1600, 0, still.drift, acked_at=1350.0).code == READ_BACK_ZERO


def test_no_read_back_value_keeps_the_state() -> None:
    d = Drift(5, 1, pushed=True)
    assert at(1000, None, d) == Check("unknown", d)


def test_a_quantity_never_acknowledged_is_adopted_when_the_platform_shows_it() -> None:
    assert at(1000, 9, desired=9) == Check("adopt", None)
    assert at(1000, 8, desired=9) == Check("unknown", None)
    assert at(1000, 9, desired=9, acked=None, acked_at=None) == Check("adopt", None)
    assert at(1000, 9, acked=None, acked_at=None) == Check("unknown", None)
    assert at(1000, 7, desired=7).verdict == "ok"  # desired == acked: a normal check


@settings(max_examples=300, deadline=None)
@given(
    reads=st.lists(
        st.tuples(st.floats(0, 2000), st.one_of(st.none(), st.integers(0, 9))),
        min_size=1,
        max_size=30,
    ),
    acked=st.integers(0, 9),
    persist=st.floats(0, 1000),
)
def test_properties_over_any_sequence_of_reads(
    reads: list[tuple[float, int | None]], acked: int, persist: float
) -> None:
    now, drift, pushes, seen = 0.0, None, 0, 0
    for step, read in reads:
        now += step
        c = check(acked, 0.0, read, now, delay_s=DELAY, persist_s=persist, drift=drift)
        if read == acked:
            assert c.verdict == "ok" and c.drift is None
            pushes = seen = 0
        elif read is not None and now >= DELAY:
            seen += 1
            if c.verdict == "push":
                pushes += 1
                assert seen >= 2  # never on the first sight (a sale may be on its way)
            if c.verdict == "action":
                assert drift is not None and drift.pushed and now - drift.since >= persist
                assert c.code == (READ_BACK_ZERO if read == 0 else READ_BACK_STALE)
            assert pushes <= 1
            assert c.drift is not None and c.drift.read == read
        else:
            assert c.verdict in ("wait", "unknown") and c.drift == drift
        drift = c.drift


@pytest.mark.parametrize(
    ("platform", "read", "row", "action"),
    [
        ("wayfair", 0, "wayfair-confirm-stock-status", "confirm-stock-status"),
        ("wayfair", 3, "wayfair-castlegate-markdown", "castlegate-markdown"),
        ("shopee", 0, "read-back-drift", "stock-drift"),
        ("lazada", 3, "read-back-drift", "stock-drift"),
        ("shopify", 3, "read-back-drift", "stock-drift"),
    ],
)
def test_the_action_code_picks_the_error_table_row(
    platform: str, read: int, row: str, action: str
) -> None:
    c = at(5000, read, Drift(1000, read, pushed=True), acked_at=1000.0)
    assert c.verdict == "action"
    outcome = PushOutcome("ref", False, None, c.code, c.message, None, None)
    dec = default_table().classify(platform, outcome, sku="SKU-1", listing="ref")
    assert (dec.row.id, dec.action) == (row, action)
    if row == "wayfair-confirm-stock-status":
        assert "Partner Home > Inventory > Confirm Stock Status" in dec.hint
        assert dec.error_class == "park-listing"


def test_settings_defaults_and_overrides() -> None:
    assert propagation_delay("wayfair:us", "wayfair", {}) == PROPAGATION_DELAYS["wayfair"][0]
    assert PROPAGATION_DELAYS["wayfair"][0] <= 24 * 3600
    assert propagation_delay("wayfair:us", "wayfair", {"propagation_delay_s": 86400}) == 86400
    with pytest.raises(ConfigError) as e:
        propagation_delay("shopee:a", "shopee", {"propagation_delay_s": "1h"})
    assert e.value.key == "channels.shopee:a.propagation_delay_s"
    assert read_rate(50.0, 0.1) == pytest.approx(5.0)
    assert read_rate(None, 0.5) == COST_BUCKET_CALLS_PER_S / 2
    s = Settings.build("lazada:a", "lazada", {}, 50.0, interval_s=60, share=0.2, persist_s=1800)
    assert (s.read_rate_per_s, s.delay_s, s.listings_per_read) == (10.0, 120.0, 1)


def test_publish_keys() -> None:
    pub = config.parse({"publish": {"reconcile_interval_s": 300}}, env={}).publish
    assert (pub.reconcile_interval_s, pub.reconcile_share, pub.drift_persist_s) == (300, 0.1, 3600)
    assert config.PublishConfig().reconcile_interval_s == 0  # off unless configured
    for key, bad in (("reconcile_share", 0), ("reconcile_share", 1.5), ("drift_persist_s", -1)):
        with pytest.raises(ConfigError) as e:
            config.parse({"publish": {key: bad}}, env={})
        assert e.value.key == f"publish.{key}"

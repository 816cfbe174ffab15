"""The quantity policy (syncd.core.policy): rules layers and the formula with its explanation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.config import Config, parse
from syncd.core.policy import (
    SAFETY_KINDS,
    Inputs,
    Quantity,
    RuleError,
    RuleLayers,
    Rules,
    buffer_for,
    compute,
    parse_layer,
)


def q(
    rules: Rules | None = None,
    *,
    on_hand: int = 100,
    reserved: int = 0,
    held: int = 0,
    velocity: float = 0.0,
    unpaid: int = 0,
) -> Quantity:
    return compute(rules or Rules(), Inputs(on_hand, reserved, held, velocity, unpaid))


def R(**kw: object) -> Rules:  # short: used in nearly every test
    return Rules().merged(kw)


# -- defaults and available -----------------------------------------------------------------------


def test_defaults_show_everything_available() -> None:
    r = Rules()
    assert (r.safety, r.safety_units, r.share, r.max_quantity, r.zero_below) == (
        "fixed",
        0,
        1.0,
        None,
        0,
    )
    got = q(on_hand=10)
    assert (got.available, got.buffer, got.after_buffer, got.shown, got.sent) == (10, 0, 10, 10, 10)


def test_available_subtracts_reservations_and_other_channels_holds() -> None:
    got = q(on_hand=20, reserved=5, held=3)
    assert got.available == 12
    assert got.shown == 12
    assert (got.on_hand, got.reserved, got.held_by_others) == (20, 5, 3)


def test_negative_available_shows_zero() -> None:
    got = q(on_hand=2, reserved=5)
    assert got.available == -3
    assert got.shown == 0
    assert got.sent == 0


# -- safety kinds ---------------------------------------------------------------------------------


def test_safety_none() -> None:
    got = q(R(safety="none", safety_units=50), on_hand=10, velocity=1000)
    assert (got.buffer, got.buffer_reason, got.shown) == (0, "none", 10)


def test_safety_fixed() -> None:
    got = q(R(safety="fixed", safety_units=3), on_hand=10)
    assert (got.buffer, got.after_buffer, got.shown) == (3, 7, 7)
    assert got.buffer_reason == "fixed 3"


@pytest.mark.parametrize(
    ("percent", "available", "buffer"),
    [(10, 100, 10), (10, 95, 10), (10, 91, 10), (10, 90, 9), (0, 50, 0), (100, 7, 7), (33, 1, 1)],
)
def test_safety_percent_rounds_up(percent: float, available: int, buffer: int) -> None:
    got = q(R(safety="percent", safety_percent=percent), on_hand=available)
    assert got.buffer == buffer
    assert got.shown == available - buffer


def test_safety_percent_of_negative_available_is_zero() -> None:
    got = q(R(safety="percent", safety_percent=50), on_hand=0, reserved=4)
    assert got.buffer == 0
    assert got.shown == 0


@pytest.mark.parametrize(("percent", "available", "buffer"), [(2.2, 1500, 33), (16.1, 1000, 161)])
def test_safety_percent_exact_product_is_not_rounded_up(
    percent: float, available: int, buffer: int
) -> None:
    assert buffer_for(R(safety="percent", safety_percent=percent), available, 0.0)[0] == buffer


@pytest.mark.parametrize(
    ("velocity", "minutes", "least", "buffer"),
    [
        (12.0, 30, 0, 6),  # 12/h x 0.5 h
        (10.0, 30, 0, 5),
        (10.0, 31, 0, 6),  # 5.1666 rounds up
        (0.0, 30, 2, 2),  # at least safety_units
        (1.0, 30, 2, 2),
        (6.0, 10, 0, 1),  # 6/h x 10 min = 1.0000000000000002 in floats: still 1
        (0.1, 30, 0, 1),
    ],
)
def test_safety_velocity(velocity: float, minutes: float, least: int, buffer: int) -> None:
    rules = R(safety="velocity", react_minutes=minutes, safety_units=least)
    got = q(rules, on_hand=100, velocity=velocity)
    assert got.buffer == buffer
    assert got.shown == 100 - buffer
    assert "velocity" in got.buffer_reason


def test_infinite_react_minutes_is_refused() -> None:
    # Accepted today, and then the quantity cannot be computed at all:
    rules = Rules(safety="velocity", react_minutes=math.inf)
    with pytest.raises((OverflowError, ValueError)):
        compute(rules, Inputs(10, 0, 0, 1.0))
    with pytest.raises(RuleError) as ei:
        Rules().merged({"safety": "velocity", "react_minutes": math.inf})
    assert ei.value.key == "react_minutes"


def test_nan_numbers_are_refused() -> None:
    for key in ("share", "safety_percent", "react_minutes"):
        with pytest.raises(RuleError) as ei:
            parse_layer({key: math.nan})
        assert ei.value.key == key


# -- share, cap, threshold ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "after", "shown"),
    [(0.5, 9, 4), (0.5, 10, 5), (0.3, 10, 3), (0.7, 10, 7), (0.1, 30, 3), (0.0, 50, 0), (1, 7, 7)],
)
def test_share_rounds_down(share: float, after: int, shown: int) -> None:
    got = q(R(share=share), on_hand=after)
    assert got.shown == shown
    assert got.share == share


def test_max_quantity_caps() -> None:
    assert q(R(max_quantity=5), on_hand=10).shown == 5
    assert q(R(max_quantity=5), on_hand=3).shown == 3
    assert q(R(max_quantity=0), on_hand=3).shown == 0
    # The cap applies after the share.
    assert q(R(max_quantity=5, share=0.5), on_hand=8).shown == 4


def test_zero_below_threshold() -> None:
    rules = R(safety="fixed", safety_units=2, zero_below=3)
    assert q(rules, on_hand=4).shown == 0  # 2 left < 3
    assert q(rules, on_hand=5).shown == 3  # 3 left: shown
    # The threshold is on what is left after the buffer, before the share.
    assert q(R(zero_below=4, share=0.5), on_hand=4).shown == 2


def test_buffer_larger_than_available_shows_zero_never_negative() -> None:
    got = q(R(safety="fixed", safety_units=10), on_hand=4)
    assert got.after_buffer == -6
    assert got.shown == 0
    assert got.sent == 0


def test_unpaid_minimum_raises_sent_only() -> None:
    got = q(R(safety="fixed", safety_units=10), on_hand=4, unpaid=3)
    assert (got.shown, got.sent, got.unpaid_minimum) == (0, 3, 3)
    got = q(on_hand=8, unpaid=3)
    assert (got.shown, got.sent) == (8, 8)


# -- explain ------------------------------------------------------------------------------------


def test_explain_lists_every_term_in_formula_order() -> None:
    rules = R(safety="fixed", safety_units=2, share=0.5, max_quantity=4, zero_below=1)
    got = q(rules, on_hand=20, reserved=3, held=1, unpaid=2)
    terms = got.explain()
    assert [t for t, _ in terms] == [
        "on_hand",
        "reserved",
        "held_by_others",
        "available",
        "buffer",
        "after_buffer",
        "threshold",
        "share",
        "shown",
        "unpaid_minimum",
        "sent",
    ]
    text = dict(terms)
    assert "20" in text["on_hand"]
    assert "3" in text["reserved"]
    assert "1" in text["held_by_others"]
    assert text["available"] == "= 16"
    assert "2" in text["buffer"] and "fixed 2" in text["buffer"]
    assert text["after_buffer"] == "= 14"
    assert text["threshold"] == "14 >= zero_below 1"
    assert "0.5" in text["share"] and "max_quantity 4" in text["share"]
    assert text["shown"] == "= 4"
    assert "2" in text["unpaid_minimum"]
    assert text["sent"] == "= 4"


def test_explain_says_when_the_threshold_zeroes() -> None:
    got = q(R(zero_below=5), on_hand=3)
    text = dict(got.explain())
    assert text["threshold"] == "3 < zero_below 5: show 0"
    assert "none" in text["share"]
    assert text["shown"] == "= 0"


# -- rule layers --------------------------------------------------------------------------------


def test_layers_merge_most_specific_wins() -> None:
    cfg = parse(
        {
            "policy": {"safety": "fixed", "safety_units": 1, "share": 0.9, "zero_below": 1},
            "channels": {
                "shopee:main": {"policy": {"safety_units": 2, "share": 0.8, "max_quantity": 50}},
            },
            "skus": {"SKU-1": {"policy": {"share": 0.7, "max_quantity": 40}}},
        },
        env={},
    )
    base = cfg.rules_for("lazada:other", "SKU-2", None)
    assert (base.safety_units, base.share, base.max_quantity, base.zero_below) == (1, 0.9, None, 1)
    ch = cfg.rules_for("shopee:main", "SKU-2", None)
    assert (ch.safety_units, ch.share, ch.max_quantity, ch.zero_below) == (2, 0.8, 50, 1)
    sku = cfg.rules_for("shopee:main", "SKU-1", None)
    assert (sku.safety_units, sku.share, sku.max_quantity) == (2, 0.7, 40)
    listing = cfg.rules_for("shopee:main", "SKU-1", {"max_quantity": 30, "safety": "none"})
    assert (listing.safety, listing.safety_units, listing.share, listing.max_quantity) == (
        "none",
        2,
        0.7,
        30,
    )
    # A listing may remove a cap set by a less specific layer.
    assert cfg.rules_for("shopee:main", "SKU-1", {"max_quantity": None}).max_quantity is None
    # SKU overrides apply on every channel; a SKU layer on another channel keeps channel values.
    other = cfg.rules_for("lazada:other", "SKU-1", {})
    assert (other.safety_units, other.share, other.max_quantity) == (1, 0.7, 40)


def test_rule_layers_are_what_the_config_merges() -> None:
    cfg = parse(
        {
            "policy": {"safety_units": 1},
            "channels": {"shopee:main": {"policy": {"share": 0.8}}},
            "skus": {"SKU-1": {"policy": {"max_quantity": 40}}},
        },
        env={},
    )
    layers = cfg.rule_layers()
    assert layers.base == cfg.policy
    for account in ("shopee:main", "lazada:other"):
        for sku in ("SKU-1", "SKU-2"):
            for listing in (None, {}, {"share": 0.5}):
                got = layers.rules_for(account, sku, listing)
                assert got == cfg.rules_for(account, sku, listing)
    assert layers.rules_for("shopee:main", "SKU-1", None) == Rules(
        safety_units=1, share=0.8, max_quantity=40
    )
    assert RuleLayers().rules_for("x:y", "S", None) == Rules()


def test_merged_with_empty_layer_is_the_same_rules() -> None:
    r = R(share=0.5)
    assert r.merged(None) is r
    assert r.merged({}) is r


def test_merged_does_not_modify_the_base() -> None:
    base = Rules()
    top = base.merged({"share": 0.5})
    assert base.share == 1.0
    assert top.share == 0.5
    assert Config().rules_for("x:y", "S", None) == Rules()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("safety", "buffer"),
        ("safety", 1),
        ("safety", None),
        ("safety_units", -1),
        ("safety_units", 1.5),
        ("safety_units", True),
        ("safety_units", "2"),
        ("safety_percent", -0.1),
        ("safety_percent", 100.5),
        ("safety_percent", "10"),
        ("safety_percent", False),
        ("react_minutes", -1),
        ("react_minutes", "15"),
        ("share", 1.01),
        ("share", -0.1),
        ("share", True),
        ("share", "0.5"),
        ("max_quantity", -1),
        ("max_quantity", 2.0),
        ("max_quantity", True),
        ("max_quantity", "10"),
        ("zero_below", -2),
        ("zero_below", 0.5),
        ("zero_below", None),
    ],
)
def test_invalid_rule_value_names_the_key(key: str, value: object) -> None:
    with pytest.raises(RuleError) as ei:
        parse_layer({"share": 0.5, key: value})
    assert ei.value.key == key
    assert str(ei.value).startswith(f"{key}: ")
    assert isinstance(ei.value, ValueError)
    with pytest.raises(RuleError):
        Rules().merged({key: value})


def test_unknown_rule_key_names_the_key_and_lists_known_ones() -> None:
    with pytest.raises(RuleError) as ei:
        parse_layer({"safety": "fixed", "safty_units": 2})
    assert ei.value.key == "safty_units"
    assert "safety_units" in ei.value.reason


@pytest.mark.parametrize(
    "layer",
    [{"safety": k} for k in SAFETY_KINDS]
    + [
        {"safety_units": 0, "zero_below": 0, "max_quantity": 0},
        {"share": 0, "safety_percent": 100, "react_minutes": 0},
        {"share": 1, "safety_percent": 0, "react_minutes": 2.5, "max_quantity": None},
    ],
)
def test_valid_boundary_values_are_accepted(layer: dict[str, object]) -> None:
    out = parse_layer(layer)
    assert out.keys() == layer.keys()
    r = Rules().merged(layer)
    for k, v in layer.items():
        assert getattr(r, k) == v


def test_integer_share_and_percent_become_floats() -> None:
    out = parse_layer({"share": 1, "safety_percent": 5, "react_minutes": 3})
    assert out == {"share": 1.0, "safety_percent": 5.0, "react_minutes": 3.0}
    assert all(isinstance(v, float) for v in out.values())


# -- properties ---------------------------------------------------------------------------------

rules_st = st.builds(
    Rules,
    safety=st.sampled_from(SAFETY_KINDS),
    safety_units=st.integers(0, 30),
    safety_percent=st.floats(0, 100),
    react_minutes=st.floats(0, 600),
    share=st.floats(0, 1),
    max_quantity=st.none() | st.integers(0, 500),
    zero_below=st.integers(0, 20),
)
inputs_st = st.builds(
    Inputs,
    on_hand=st.integers(0, 10_000),
    reserved=st.integers(0, 200),
    held_by_others=st.integers(0, 50),
    velocity_per_hour=st.floats(0, 500),
    unpaid_minimum=st.integers(0, 20),
)


@settings(max_examples=400, deadline=None)
@given(rules=rules_st, inputs=inputs_st)
def test_shown_is_bounded(rules: Rules, inputs: Inputs) -> None:
    got = compute(rules, inputs)
    assert isinstance(got.shown, int)
    assert 0 <= got.shown <= max(got.available, 0)
    assert got.shown <= max(got.available - got.buffer, 0)
    assert got.buffer >= 0
    if rules.max_quantity is not None:
        assert got.shown <= rules.max_quantity
    if got.after_buffer < rules.zero_below:
        assert got.shown == 0
    assert got.sent == max(got.shown, inputs.unpaid_minimum)
    assert got.available == inputs.on_hand - inputs.reserved - inputs.held_by_others
    assert got.after_buffer == got.available - got.buffer
    assert len(got.explain()) == 11


@settings(max_examples=300, deadline=None)
@given(rules=rules_st, inputs=inputs_st, more=st.integers(1, 500))
def test_shown_is_monotone_in_on_hand(rules: Rules, inputs: Inputs, more: int) -> None:
    lo = compute(rules, inputs)
    hi = compute(
        rules,
        Inputs(
            inputs.on_hand + more,
            inputs.reserved,
            inputs.held_by_others,
            inputs.velocity_per_hour,
            inputs.unpaid_minimum,
        ),
    )
    assert hi.shown >= lo.shown
    assert hi.sent >= lo.sent


@settings(max_examples=200, deadline=None)
@given(rules=rules_st, inputs=inputs_st, more=st.integers(1, 50))
def test_shown_never_grows_with_reservations(rules: Rules, inputs: Inputs, more: int) -> None:
    lo = compute(
        rules,
        Inputs(
            inputs.on_hand,
            inputs.reserved + more,
            inputs.held_by_others,
            inputs.velocity_per_hour,
            inputs.unpaid_minimum,
        ),
    )
    assert lo.shown <= compute(rules, inputs).shown


@settings(max_examples=200, deadline=None)
@given(rules=rules_st, inputs=inputs_st)
def test_share_formula_matches_exact_arithmetic(rules: Rules, inputs: Inputs) -> None:
    """For a decimal share (two places), floor((available - buffer) x share) is exact."""
    share = round(rules.share, 2)
    r = Rules(
        safety="fixed",
        safety_units=rules.safety_units,
        share=share,
        max_quantity=rules.max_quantity,
        zero_below=rules.zero_below,
    )
    got = compute(r, inputs)
    after = inputs.on_hand - inputs.reserved - inputs.held_by_others - rules.safety_units
    if after <= 0 or after < rules.zero_below:
        want = 0
    else:
        want = after * round(share * 100) // 100
        if rules.max_quantity is not None:
            want = min(want, rules.max_quantity)
    assert got.shown == want

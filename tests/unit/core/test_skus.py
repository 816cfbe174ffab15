"""SKU hygiene (syncd.core.skus): which SKUs are rejected, the reason text, the suggested fix,
and that the JSON Schema pattern says exactly what ``sku_problem`` says."""

from __future__ import annotations

import fastjsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core.skus import SKU_PATTERN, sku_problem, suggest_fix

CLEAN = [
    "TS-RED-M",
    "TS RED",
    "A B C",
    "sku_1/2.3",
    "Größe-XL",
    "T\u00a0RED",  # one inner no-break space is one space: allowed
    "商品 123",
    "x",
]


@pytest.mark.parametrize("sku", CLEAN)
def test_clean_skus_have_no_problem_and_fix_is_identity(sku: str) -> None:
    assert sku_problem(sku) is None
    assert suggest_fix(sku) == sku


def test_double_space_reason_is_exact() -> None:
    assert sku_problem("TS  RED") == (
        "SKU 'TS  RED' has 2 consecutive spaces at position 2; the likely intended code is 'TS RED'"
    )


def test_three_spaces_and_several_runs() -> None:
    problem = sku_problem("A   B  C")
    assert problem is not None
    assert "3 consecutive spaces at position 1" in problem
    assert "2 consecutive spaces at position 5" in problem
    assert problem.endswith("the likely intended code is 'A B C'")


def test_leading_white_space() -> None:
    problem = sku_problem(" TS-RED")
    assert problem is not None
    assert "SKU ' TS-RED'" in problem
    assert "leading white space (1 character)" in problem
    assert problem.endswith("the likely intended code is 'TS-RED'")


def test_trailing_white_space() -> None:
    problem = sku_problem("TS-RED  ")
    assert problem is not None
    assert "trailing white space (2 characters)" in problem
    assert "consecutive" not in problem  # the trailing run is reported once, as trailing
    assert problem.endswith("'TS-RED'")


def test_leading_no_break_space_is_white_space() -> None:
    problem = sku_problem("\u00a0TS")
    assert problem is not None
    assert "leading white space" in problem
    assert suggest_fix("\u00a0TS") == "TS"


def test_mixed_white_space_run_is_named_as_such() -> None:
    problem = sku_problem("TS \u00a0RED")
    assert problem is not None
    assert "2 consecutive white-space characters at position 2" in problem
    assert suggest_fix("TS \u00a0RED") == "TS RED"


def test_control_character_is_named_by_code_point_and_position() -> None:
    problem = sku_problem("TS\x00RED")
    assert problem is not None
    assert "SKU 'TS\\x00RED'" in problem  # shown escaped, so a person can see it
    assert "control character U+0000 (NUL) at position 2" in problem
    assert problem.endswith("the likely intended code is 'TSRED'")


def test_tab_is_a_control_character_and_becomes_a_space() -> None:
    problem = sku_problem("TS\tRED")
    assert problem is not None
    assert "U+0009 (tab) at position 2" in problem
    assert suggest_fix("TS\tRED") == "TS RED"


@pytest.mark.parametrize("c", ["\x7f", "\x85", "\x9f", "\x1b", "\r", "\n"])
def test_other_control_characters(c: str) -> None:
    problem = sku_problem(f"A{c}B")
    assert problem is not None
    assert f"U+{ord(c):04X}" in problem


def test_several_problems_in_one_reason() -> None:
    problem = sku_problem(" TS  RED\x07")
    assert problem is not None
    assert "leading white space" in problem
    assert "2 consecutive spaces at position 3" in problem
    assert "control character U+0007 at position 8" in problem
    assert problem.endswith("the likely intended code is 'TS RED'")


def test_many_control_characters_are_summarised() -> None:
    problem = sku_problem("A\x01B\x02C\x03D\x04E\x05F")
    assert problem is not None
    assert "2 more control characters" in problem


def test_only_white_space_and_empty() -> None:
    problem = sku_problem("   ")
    assert problem is not None
    assert "only white space" in problem
    assert "no visible characters" in problem
    assert suggest_fix("   ") == ""
    empty = sku_problem("")
    assert empty is not None and "empty" in empty


def test_format_characters_are_not_control_characters() -> None:
    # The contract names control characters (Unicode Cc); U+200B is Cf and stays allowed.
    assert sku_problem("TS\u200bRED") is None


_PATTERN_CHECK = fastjsonschema.compile({"type": "string", "pattern": SKU_PATTERN})


def _pattern_accepts(sku: str) -> bool:
    try:
        _PATTERN_CHECK(sku)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


_TRICKY = st.sampled_from(
    [" ", "  ", "\t", "\n", "\x00", "\x7f", "\x85", "\u00a0", "\u2028", "\u3000", "\u200b"]
)
sku_like = st.lists(
    st.one_of(st.text(alphabet="AB-1é商", min_size=1, max_size=3), _TRICKY), max_size=6
).map("".join)


@given(st.one_of(sku_like, st.text(max_size=12)))
def test_schema_pattern_agrees_with_sku_problem(sku: str) -> None:
    assert _pattern_accepts(sku) == (sku_problem(sku) is None)


@given(st.one_of(sku_like, st.text(max_size=12)))
def test_suggest_fix_is_clean_and_idempotent(sku: str) -> None:
    fix = suggest_fix(sku)
    assert fix == "" or sku_problem(fix) is None
    assert suggest_fix(fix) == fix
    if sku_problem(sku) is None:
        assert fix == sku


@given(sku_like)
def test_reason_names_the_sku_and_the_fix(sku: str) -> None:
    problem = sku_problem(sku)
    if problem is not None:
        assert repr(sku) in problem
        fix = suggest_fix(sku)
        if fix:
            assert problem.endswith(f"the likely intended code is {fix!r}")

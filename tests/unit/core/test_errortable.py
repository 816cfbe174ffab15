"""The error table (syncd.core.errortable, syncd/config/error-table.toml, docs/error-table.md).

Every shipped row is matched by a realistic answer: the bodies, statuses and messages
the marketplace sandboxes send (their own constants), turned into outcomes by the real
channel parsers. A row without a sample fails ``test_every_row_has_samples``.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.channels.answers import HttpResult
from syncd.channels.base import (
    BAD_RESPONSE,
    BATCH_REJECTED,
    INVALID_LISTING,
    NO_RESULT,
    NO_TOKEN,
    PushOutcome,
    StockUpdate,
    listing_ref,
)
from syncd.channels.lazada import parse_sellable_update
from syncd.channels.shopee import parse_update_stock
from syncd.channels.shopify import parse_set_quantities
from syncd.channels.wayfair import SUBMISSION_ERROR, parse_save
from syncd.config.error_table import load, load_or_keep
from syncd.core.errortable import (
    CLASSES,
    READ_BACK_STALE,
    READ_BACK_ZERO,
    Decision,
    ErrorTable,
    RetrySpec,
    parse,
)
from syncd.errors import ConfigError
from syncd.platforms import BUILTIN as PLATFORMS
from syncd.testing.sandbox import lazada as sb_lazada
from syncd.testing.sandbox import shopee as sb_shopee
from syncd.testing.sandbox import shopify as sb_shopify
from syncd.testing.sandbox.base import gateway_page

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "syncd" / "config" / "error-table.toml"
DOC = ROOT / "docs" / "error-table.md"
SHIPPED = load(TABLE)
INTERNAL_ERROR = "syncd.internal_error"  # syncd.publish.pusher.INTERNAL_ERROR


# -- realistic answers, through the real parsers -------------------------------------------


def _upd(listing: dict[str, Any]) -> StockUpdate:
    return StockUpdate(listing, listing_ref(listing), 5)


SHOPEE_U = _upd({"item_id": 1001, "model_id": 0})
LAZADA_SKU = "TS RED"
LAZADA_U = _upd({"item_id": 2001, "sku_id": 3001, "seller_sku": LAZADA_SKU})
WAYFAIR_PART = "WF-100"
WAYFAIR_U = _upd({"supplier_part_number": WAYFAIR_PART})
SHOPIFY_U = _upd({"inventory_item_id": 11, "location_id": 22})
UPDATES = {"shopee": SHOPEE_U, "lazada": LAZADA_U, "wayfair": WAYFAIR_U, "shopify": SHOPIFY_U}


def _result(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResult:
    import orjson

    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    return HttpResult(status, headers or {}, None if isinstance(body, str) else body, text)


def shopee(error: str = "", message: str = "", *, reason: str | None = None) -> PushOutcome:
    """An update_stock answer as the Shopee sandbox sends it (its HTTP_STATUS table)."""
    body: dict[str, Any] = {"request_id": "r", "error": error, "message": message, "warning": ""}
    if reason is not None:
        failure = [{"model_id": 0, "failed_reason": reason}]
        body["response"] = {"success_list": [], "failure_list": failure}
    status = sb_shopee.HTTP_STATUS.get(error, 200)
    return parse_update_stock([SHOPEE_U], _result(status, body))[0]


def lazada(kind: str, detail: str | None = None, **fmt: Any) -> PushOutcome:
    """A sellable/update answer from the Lazada sandbox's ERRORS table (always HTTP 200)."""
    etype, code, message = sb_lazada.ERRORS[kind]
    return lazada_raw(etype, code, message.format(**fmt), detail)


def lazada_raw(etype: str, code: str, message: str, detail: str | None = None) -> PushOutcome:
    body: dict[str, Any] = {"type": etype, "code": code, "message": message, "request_id": "r"}
    if detail is not None:
        body["detail"] = [
            {"field": "SellableQuantity", "seller_sku": LAZADA_SKU, "message": detail}
        ]
    return parse_sellable_update([LAZADA_U], _result(200, body))[0]


def shopify_user_error(code: str) -> PushOutcome:
    message = sb_shopify.USER_ERRORS.get(code, "The inventory item can't be changed.")
    err = {
        "field": ["input", "quantities", "0", "inventoryItemId"],
        "message": message,
        "code": code,
    }
    payload = {"inventoryAdjustmentGroup": None, "userErrors": [err]}
    body = {"data": {"inventorySetQuantities": payload}}
    return parse_set_quantities([SHOPIFY_U], _result(200, body))[0]


def shopify_errors(code: str | None, message: str, status: int = 200) -> PushOutcome:
    err: dict[str, Any] = {"message": message}
    if code is not None:
        err["extensions"] = {"code": code}
    return parse_set_quantities([SHOPIFY_U], _result(status, {"errors": [err]}))[0]


def wayfair(status: int, body: Any, headers: dict[str, str] | None = None) -> PushOutcome:
    return parse_save([WAYFAIR_U], _result(status, body, headers))[0]


def wayfair_refused_part() -> PushOutcome:
    save = {"id": "s", "handle": "h", "status": "COMPLETE", "errors": [{"key": WAYFAIR_PART}]}
    return wayfair(200, {"data": {"inventory": {"save": save}}})


def gateway(platform: str, status: int) -> PushOutcome:
    """The HTML page a load balancer sends (the sandboxes' http_error fault)."""
    page = gateway_page(status).text
    assert page is not None
    parsers = {
        "shopee": parse_update_stock,
        "lazada": parse_sellable_update,
        "wayfair": parse_save,
        "shopify": parse_set_quantities,
    }
    return parsers[platform]([UPDATES[platform]], _result(status, page))[0]


def token_stage(platform: str, status: int | None, code: str | None, message: str) -> PushOutcome:
    """What HttpChannel.push makes of a refused token refresh (ChannelAuthError)."""
    u = UPDATES[platform]
    return PushOutcome(u.listing_ref, False, status, code, message, None, {"stage": "token"})


def syncd_code(platform: str, code: str, message: str = "") -> PushOutcome:
    return PushOutcome(UPDATES[platform].listing_ref, False, None, code, message, None, None)


# row id -> samples: (platform, outcome or transport code, captures expected)
Sample = tuple[str, PushOutcome | str, dict[str, Any]]
S = sb_shopee
L = sb_lazada
SAMPLES: dict[str, list[Sample]] = {
    "shopee-holiday-mode": [
        ("shopee", shopee(*S.HOLIDAY), {}),
        ("shopee", shopee("product." + S.HOLIDAY[0], S.HOLIDAY[1]), {}),
    ],
    "shopee-holiday-mode-pending": [
        (
            "shopee",
            shopee("error_auth", "Please wait for the holiday mode set then to edit item"),
            {},
        )
    ],
    "shopee-reserved-stock": [
        ("shopee", shopee(reason=S.RESERVED_SHAPES["failure_list"][1]), {}),
        ("shopee", shopee(*S.RESERVED_SHAPES["error_param"]), {}),
        ("shopee", shopee(*S.RESERVED_SHAPES["error_auth"]), {}),
        (
            "shopee",
            shopee("error.param", "Can not update item with stock less than reserve stock"),
            {},
        ),
        (
            "shopee",
            shopee(reason="Total stock must be more than reserved stock: 7"),
            {"reserved": 7},
        ),
    ],
    "shopee-unpaid-orders": [("shopee", shopee(reason=S.UNPAID.format(n=3)), {"unpaid": 3})],
    "shopee-promotion-lock": [
        ("shopee", shopee(*S.RESERVED_SHAPES["promotion"]), {}),
        ("shopee", shopee("product.error_cannt_edit_stock_in_promotion", "in promotion"), {}),
    ],
    "shopee-refresh-refused": [
        ("shopee", token_stage("shopee", 403, *S.BAD_REFRESH), {}),
    ],
    "shopee-access-token": [
        ("shopee", shopee(*S.BAD_TOKEN), {}),
        ("shopee", shopee("error_param", "There is no access_token in query"), {}),
        ("shopee", shopee("error_auth", "Invalid partner_id or shopid."), {}),
    ],
    "shopee-invalid-token-code": [("shopee", shopee("invalid_access_token", "expired"), {})],
    "shopee-signature": [
        ("shopee", shopee("error_sign", "Wrong sign"), {}),
        ("shopee", shopee("error_param", "Invalid timestamp"), {}),
    ],
    "shopee-throttle": [("shopee", shopee(*S.THROTTLE), {})],
    "shopee-fbs-stock": [("shopee", shopee("error_server", "normal stock must be equal to 0"), {})],
    "shopee-invalid-location": [("shopee", shopee("error_inner", "Invalid stock location ID"), {})],
    "shopee-server-error": [
        ("shopee", shopee(*S.INNER), {}),
        ("shopee", shopee("product.error_system_busy", "System busy"), {}),
        ("shopee", shopee("error_server", "Something wrong. Please try later."), {}),
    ],
    "shopee-item-not-found": [("shopee", shopee(*S.NOT_FOUND), {})],
    "shopee-model-not-found": [
        ("shopee", shopee(reason=S.MODEL_NOT_FOUND), {}),
        ("shopee", shopee("error_param", "Wrong model_id."), {}),
    ],
    "shopee-item-has-models": [
        ("shopee", shopee("error_edit_item_stock_for_item_has_model", "send model_id"), {})
    ],
    "shopee-item-uneditable": [
        ("shopee", shopee("error_item_uneditable", "Can't edit this item."), {})
    ],
    "shopee-item-status-abnormal": [
        ("shopee", shopee("product.error_busi", "The item status is abnormal"), {})
    ],
    "shopee-shop-restricted": [
        ("shopee", shopee("warehouse.error_not_in_whitelist", "not in whitelist"), {})
    ],
    "shopee-default": [("shopee", shopee("error_brand_new", "Never seen before"), {})],
    "lazada-holiday-mode": [("lazada", lazada("holiday"), {})],
    "lazada-refresh-refused": [
        ("lazada", token_stage("lazada", 200, *L.ERRORS["refresh"][1:]), {})
    ],
    "lazada-access-token": [("lazada", lazada("token"), {})],
    "lazada-signature": [("lazada", lazada("sign"), {}), ("lazada", lazada("timestamp"), {})],
    "lazada-throttle": [
        ("lazada", lazada("throttle", n=4), {"seconds": 4}),
        ("lazada", lazada_raw("ISV", "ApiCallLimit", "Too many calls"), {}),
    ],
    "lazada-too-frequent": [("lazada", lazada("e901"), {})],
    "lazada-server-error": [
        ("lazada", lazada("inner"), {}),
        ("lazada", lazada_raw("ISP", "E006", "Unexpected internal error"), {}),
    ],
    "lazada-campaign-lock": [
        ("lazada", lazada("batch", L.RESERVED.format(n=6)), {"reserved": 6}),
    ],
    "lazada-unpaid-orders": [("lazada", lazada("batch", L.UNPAID.format(n=2)), {"unpaid": 2})],
    "lazada-sku-invalid": [("lazada", lazada("batch", "SELLER_SKU_INVALID"), {})],
    "lazada-item-not-found": [
        ("lazada", lazada("not_found"), {}),
        ("lazada", lazada_raw("ISV", "E200", "Empty SellerSku"), {}),
    ],
    "lazada-default": [("lazada", lazada("format"), {})],
    "wayfair-credentials-refused": [
        ("wayfair", token_stage("wayfair", 401, "access_denied", "Unauthorized"), {})
    ],
    "wayfair-token-expired": [
        ("wayfair", wayfair(401, {"errors": [{"message": "Unauthorized"}]}), {})
    ],
    "wayfair-throttle": [
        (
            "wayfair",
            wayfair(429, {"errors": [{"message": "Too Many Requests"}]}, {"Retry-After": "3"}),
            {},
        )
    ],
    "wayfair-server-error": [
        (
            "wayfair",
            wayfair(
                200,
                {
                    "errors": [
                        {
                            "message": "Internal server error",
                            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                        }
                    ],
                    "data": None,
                },
            ),
            {},
        )
    ],
    "wayfair-unknown-part": [("wayfair", wayfair_refused_part(), {"part": WAYFAIR_PART})],
    "wayfair-confirm-stock-status": [
        ("wayfair", syncd_code("wayfair", READ_BACK_ZERO, "read back 0 since 2 h, sent 7"), {})
    ],
    "wayfair-castlegate-markdown": [
        ("wayfair", syncd_code("wayfair", READ_BACK_STALE, "read back 9 since 26 h, sent 4"), {})
    ],
    "wayfair-default": [
        (
            "wayfair",
            wayfair(400, {"errors": [{"message": "x", "extensions": {"code": "BAD_USER_INPUT"}}]}),
            {},
        )
    ],
    "shopify-refresh-refused": [
        (
            "shopify",
            token_stage(
                "shopify", 400, "invalid_grant", "The refresh token is invalid, expired or revoked"
            ),
            {},
        ),
        (
            "shopify",
            token_stage("shopify", 401, "invalid_client", "Client authentication failed"),
            {},
        ),
    ],
    "shopify-access-token": [
        ("shopify", parse_set_quantities([SHOPIFY_U], _result(401, sb_shopify.BAD_TOKEN))[0], {})
    ],
    "shopify-throttled": [("shopify", shopify_errors("THROTTLED", "Throttled"), {})],
    "shopify-server-error": [
        (
            "shopify",
            shopify_errors(
                "INTERNAL_SERVER_ERROR",
                "Internal error. Looks like something went wrong.\nRequest ID: r",
            ),
            {},
        )
    ],
    "shopify-retry-later": [("shopify", shopify_user_error("CHANGE_FROM_QUANTITY_STALE"), {})],
    "shopify-unknown-item": [("shopify", shopify_user_error("INVALID_INVENTORY_ITEM"), {})],
    "shopify-location": [
        ("shopify", shopify_user_error("INVALID_LOCATION"), {}),
        ("shopify", shopify_user_error("ITEM_NOT_STOCKED_AT_LOCATION"), {}),
    ],
    "shopify-not-mutable": [("shopify", shopify_user_error("NON_MUTABLE_INVENTORY_ITEM"), {})],
    "shopify-api-version": [
        (
            "shopify",
            shopify_errors(
                "BAD_REQUEST",
                "The @idempotent directive is required for this mutation but was not provided.",
            ),
            {},
        )
    ],
    "shopify-default": [("shopify", shopify_user_error("INVALID_REASON"), {})],
    "no-token": [
        (p, token_stage(p, None, NO_TOKEN, "token cannot be refreshed"), {}) for p in PLATFORMS
    ],
    "invalid-listing": [
        (p, syncd_code(p, INVALID_LISTING, "listing lacks ids"), {}) for p in PLATFORMS
    ],
    "transport": [(p, "channel_timeout", {}) for p in PLATFORMS]
    + [(p, syncd_code(p, "channel_transport", "ClientConnectorError"), {}) for p in PLATFORMS],
    "http-429": [("shopee", gateway("shopee", 429), {}), ("shopify", gateway("shopify", 429), {})],
    "http-5xx": [(p, gateway(p, s), {}) for p in PLATFORMS for s in (500, 501, 502, 503, 504)],
    "syncd-retry": [
        ("lazada", syncd_code("lazada", BATCH_REJECTED, "other SKUs failed"), {}),
        ("shopee", syncd_code("shopee", NO_RESULT, "model in neither list"), {}),
        ("shopify", syncd_code("shopify", BAD_RESPONSE, "<html>"), {}),
    ],
    "read-back-drift": [
        ("shopee", syncd_code("shopee", READ_BACK_ZERO, "read back 0"), {}),
        ("lazada", syncd_code("lazada", READ_BACK_STALE, "read back 3"), {}),
    ],
    "internal-error": [("shopify", syncd_code("shopify", INTERNAL_ERROR, "KeyError"), {})],
}
CASES = [(row_id, i) for row_id, samples in SAMPLES.items() for i in range(len(samples))]


def test_every_row_has_samples() -> None:
    ids = [r.id for r in SHIPPED.rows]
    assert sorted(SAMPLES) == sorted(ids), "every shipped row needs a sample answer here"
    assert all(SAMPLES[i] for i in ids)


@pytest.mark.parametrize("row_id", [r.id for r in SHIPPED.rows])
def test_row_is_matched_by_its_samples(row_id: str) -> None:
    for platform, outcome, captures in SAMPLES[row_id]:
        table = load(TABLE)
        ref = UPDATES[platform].listing_ref
        d = table.classify(platform, outcome, sku="TS RED", listing=ref, account="a")
        assert d.row.id == row_id, (platform, outcome)
        assert d.error_class == d.row.error_class
        assert {k: d.captures[k] for k in captures} == captures
        assert d.matched_default == d.row.default
        assert sum(table.unmatched.values()) == (1 if d.row.default else 0)
        assert not re.search(r"\{\w+(!\w)?\}", d.hint) and "  " not in d.hint
        assert d.hint.endswith(".")


def test_syncd_codes_in_the_table_are_real() -> None:
    """The table names syncd's own codes as text; they must be the constants' values."""
    from syncd.errors import ChannelTimeout, ChannelTransportError

    known = {NO_TOKEN, INVALID_LISTING, BATCH_REJECTED, NO_RESULT, BAD_RESPONSE}
    known |= {SUBMISSION_ERROR, INTERNAL_ERROR, READ_BACK_ZERO, READ_BACK_STALE}
    known |= {ChannelTimeout.code, ChannelTransportError.code}
    used = {c for r in SHIPPED.rows for c in r.code or () if c.startswith(("syncd.", "channel_"))}
    assert used <= known, used - known
    assert wayfair_refused_part().code == SUBMISSION_ERROR


def test_shipped_rows_are_sound() -> None:
    for row in SHIPPED.rows:
        assert (row.retry is not None) == (row.error_class == "retry"), row.id
        if row.error_class == "adjust":
            assert row.adjust in ("hold", "min_quantity")
    assert {r.error_class for r in SHIPPED.rows} == set(CLASSES)


# -- captures, prefixes, defaults ------------------------------------------------------------


def test_adjust_quantities_and_ban_seconds() -> None:
    t = SHIPPED
    d = t.classify("lazada", lazada("batch", L.RESERVED.format(n=12)))
    assert (d.error_class, d.adjust, d.quantity) == ("adjust", "hold", 12)
    assert "12 units" in d.hint
    d = t.classify("shopee", shopee(reason=S.UNPAID.format(n=4)))
    assert (d.adjust, d.quantity, d.captures) == ("min_quantity", 4, {"unpaid": 4})
    d = t.classify("lazada", lazada("batch", L.UNPAID.format(n=9)))
    assert (d.adjust, d.quantity) == ("min_quantity", 9)
    d = t.classify("shopee", shopee(reason=S.RESERVED_SHAPES["failure_list"][1]))
    assert (d.adjust, d.quantity) == ("hold", None)  # no number: read it back
    d = t.classify("lazada", lazada("throttle", n=7))
    assert (d.slow_down, d.captures["seconds"], d.retry_after_s) == (True, 7, 7.0)
    d = t.classify("wayfair", wayfair(429, {"errors": [{"message": "x"}]}, {"Retry-After": "3"}))
    assert (d.slow_down, d.retry_after_s) == (True, 3.0)
    d = t.classify("shopee", "channel_timeout")
    assert (d.error_class, d.slow_down, d.retry_after_s) == ("retry", False, None)


def test_shopee_module_prefix_is_stripped() -> None:
    d = SHIPPED.classify("shopee", shopee("product.error_holiday_mode_change_stock", "holiday"))
    assert (d.row.id, d.code) == ("shopee-holiday-mode", "error_holiday_mode_change_stock")
    assert SHIPPED.classify("shopee", shopee("product.error_inner", "x")).row.id == (
        "shopee-server-error"
    )
    # Other platforms' codes are compared as sent; syncd's own codes are never stripped.
    other = lazada_raw("ISP", "gw.1000", "Internal Application Error")
    assert SHIPPED.classify("lazada", other).row.id == "lazada-default"
    assert SHIPPED.classify("shopee", syncd_code("shopee", NO_TOKEN)).row.id == "no-token"


def test_platform_rows_come_before_star_rows() -> None:
    # error_inner answers HTTP 500 in the sandbox: Shopee's own row, not http-5xx
    assert SHIPPED.classify("shopee", shopee(*S.INNER)).row.id == "shopee-server-error"
    wf = wayfair(429, {"errors": [{"message": "Too Many Requests"}]})
    assert SHIPPED.classify("wayfair", wf).row.id == "wayfair-throttle"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_defaults_catch_unknown_answers_and_count_them(platform: str) -> None:
    t = load(TABLE)
    u = UPDATES[platform]
    for _ in range(2):
        d = t.classify(
            platform, PushOutcome(u.listing_ref, False, 200, "NEW_CODE", "?", None, None)
        )
        assert d.matched_default and d.row.id == f"{platform}-default"
        assert d.error_class == "retry" and d.retry is not None and d.action == "unknown-error"
    t.classify(platform, PushOutcome(u.listing_ref, False, 418, None, None, None, None))
    assert t.unmatched == {(platform, "NEW_CODE"): 2, (platform, "http_418"): 1}


def test_unmatched_count_is_bounded() -> None:
    t = load(TABLE)
    for i in range(1100):
        t.classify("shopee", syncd_code("shopee", f"error_new_{i}"))
    assert len(t.unmatched) == 1001 and t.unmatched[("shopee", "other")] == 100


def test_hint_names_the_sku_and_the_exact_fix() -> None:
    out = lazada("batch", "SELLER_SKU_INVALID")
    d = SHIPPED.classify("lazada", out, sku="TS  RED")
    assert (d.error_class, d.action) == ("manual", "unknown-listing")
    assert "'TS  RED'" in d.hint and "the likely intended code is 'TS RED'" in d.hint
    clean = SHIPPED.classify("lazada", out, sku="TS-RED")
    assert "'TS-RED'" in clean.hint and "likely intended" not in clean.hint
    assert "  " not in clean.hint
    d = SHIPPED.classify("shopee", shopee(*S.NOT_FOUND), sku=" A1")
    assert "leading white space" in d.hint and "'A1'" in d.hint


def test_retry_spec_bounds() -> None:
    r = RetrySpec(max_attempts=3, base_delay_s=1.0, max_delay_s=5.0, give_up_after_s=20.0)
    assert r.delay(1, 0.5) == 0.5 and r.delay(4, 0.999) <= 5.0 and r.delay(1, 0.1, 9.0) == 9.0
    assert r.delay(10_000, 1.0) == 5.0
    assert not r.gives_up(1, 0.0, 1.0) and r.gives_up(3, 0.0, 1.0) and r.gives_up(1, 19.5, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    platform=st.sampled_from(PLATFORMS),
    status=st.none() | st.integers(min_value=-(2**40), max_value=2**40),
    code=st.none()
    | st.text()
    | st.sampled_from(sorted({c for r in SHIPPED.rows for c in r.code or ()})).map(
        lambda c: "product." + c
    ),
    message=st.none() | st.text() | st.from_regex(r"[a-z ]{0,20}\d{1,30}[a-z ]{0,20}"),
    retry_after=st.none() | st.floats(allow_nan=True),
    sku=st.none() | st.text(),
)
def test_classify_never_raises(
    platform: str,
    status: int | None,
    code: str | None,
    message: str | None,
    retry_after: float | None,
    sku: str | None,
) -> None:
    out = PushOutcome("ref", False, status, code, message, retry_after, None)
    d = SHIPPED.classify(platform, out, sku=sku)
    assert isinstance(d, Decision) and isinstance(d.hint, str)
    assert d.row.platform in (platform, "*")
    assert SHIPPED.classify(platform, code or "").row.platform in (platform, "*")


def test_unknown_platform_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tiktok"):
        SHIPPED.classify("tiktok", "channel_timeout")


def test_module_is_pure() -> None:
    code = (
        "import sys, syncd.core.errortable; "
        "bad = {'asyncio', 'aiohttp', 'aiokafka'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- validation --------------------------------------------------------------------------


def _minimal() -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {
            "id": f"{p}-default",
            "platform": p,
            "default": True,
            "class": "manual",
            "action": "unknown-error",
            "hint": "Unknown answer {code}.",
        }
        for p in PLATFORMS
    ]
    rows.append(
        {
            "id": "lazada-lock",
            "platform": "lazada",
            "message": r"locked (?P<reserved>\d+)",
            "class": "adjust",
            "hold": "reserved",
            "action": "campaign-reservation",
            "hint": "Lazada holds {reserved} of {sku}.",
        }
    )
    return {"rows": rows}


def bad(mutate: Any) -> ConfigError:
    raw = _minimal()
    mutate(raw["rows"])
    with pytest.raises(ConfigError) as ei:
        parse(raw)
    err = ei.value
    assert str(err).startswith(f"{err.key}: ")
    return err


def test_minimal_table_parses() -> None:
    t = parse(_minimal())
    d = t.classify("lazada", lazada("batch", "locked 3"), sku="X")
    assert (d.row.id, d.quantity, d.hint) == ("lazada-lock", 3, "Lazada holds 3 of X.")


ROW4 = "error-table.rows[4]"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"message": "locked (?P<reserved>\\d+"}, f"{ROW4}.message", "regular expression"),
        ({"class": "ignore"}, f"{ROW4}.class", "must be one of"),
        ({"hint": None}, f"{ROW4}.hint", "is required"),
        ({"hint": "  "}, f"{ROW4}.hint", "is required"),
        ({"hint": "Holds {units}."}, f"{ROW4}.hint", "unknown placeholder {units}"),
        ({"hint": "{sku.__class__}"}, f"{ROW4}.hint", "placeholders are"),
        ({"hint": "{reserved:>9}"}, f"{ROW4}.hint", "placeholders are"),
        ({"hint": "a { b"}, f"{ROW4}.hint", "bad placeholder"),
        ({"hold": "units"}, f"{ROW4}.hold", "capture"),
        ({"min_quantity": "reserved"}, f"{ROW4}.class", "exactly one"),
        ({"colour": "red"}, f"{ROW4}.colour", "unknown key"),
        ({"platform": "amazon"}, f"{ROW4}.platform", "must be one of"),
        ({"id": "Bad Id"}, f"{ROW4}.id", "lowercase"),
        ({"action": None}, f"{ROW4}.action", "is required"),
        ({"class": "retry", "hold": None}, f"{ROW4}.max_attempts", "retry row needs"),
        ({"class": "park-listing", "hold": None}, f"{ROW4}.probe_every_s", "probe_every_s > 0"),
        ({"probe_every_s": 5}, f"{ROW4}.probe_every_s", "only park"),
        ({"slow_down": True}, f"{ROW4}.slow_down", "only on retry"),
        ({"http_status": 700}, f"{ROW4}.http_status", "HTTP status"),
        ({"code": []}, f"{ROW4}.code", "list of codes"),
        ({"message": None, "hold": None, "class": "manual"}, f"{ROW4}.platform", "matcher"),
        ({"platform": "shopee", "code": "product.error_x"}, f"{ROW4}.code", "prefixes"),
        ({"message": "(?P<sku>x) (?P<reserved>1)"}, f"{ROW4}.message", "clash"),
        ({"note": 3}, f"{ROW4}.note", "string"),
    ],
)
def test_validation_names_row_and_key(change: dict[str, Any], key: str, words: str) -> None:
    def mutate(rows: list[dict[str, Any]]) -> None:
        for k, v in change.items():
            if v is None:
                rows[4].pop(k, None)
            else:
                rows[4][k] = v

    err = bad(mutate)
    assert err.key == key
    assert words in err.reason
    if not key.endswith(".id"):
        assert "'lazada-lock'" in err.reason


def test_retry_bounds_are_checked() -> None:
    retry = {"max_attempts": 0, "base_delay_s": 1, "max_delay_s": 2, "give_up_after_s": 3}

    def mutate(rows: list[dict[str, Any]]) -> None:
        rows[0].update(retry)
        rows[0]["class"] = "retry"

    assert bad(mutate).key == "error-table.rows[0].max_attempts"
    retry.update(max_attempts=2, max_delay_s=0.5)
    assert bad(mutate).key == "error-table.rows[0].max_delay_s"


def test_two_defaults_duplicate_ids_and_missing_defaults() -> None:
    err = bad(lambda rows: rows.append({**rows[0], "id": "shopee-default-2"}))
    assert err.key == "error-table.rows[5].default"
    assert "second default row for shopee" in err.reason and "'shopee-default'" in err.reason
    err = bad(lambda rows: rows.append({**rows[4]}))
    assert err.key == "error-table.rows[5].id" and "duplicate id 'lazada-lock'" in err.reason
    err = bad(lambda rows: rows.pop(1))
    assert err.key == "error-table.rows" and "lazada" in err.reason
    err = bad(lambda rows: rows[0].update(code="x"))
    assert err.key == "error-table.rows[0].default"
    err = bad(lambda rows: rows.append({**rows[0], "id": "any-default", "platform": "*"}))
    assert err.key == "error-table.rows[5].default"
    with pytest.raises(ConfigError) as ei:
        parse({"rows": _minimal()["rows"], "version": 2})
    assert ei.value.key == "error-table.version"
    with pytest.raises(ConfigError) as ei:
        parse({"rows": []})
    assert ei.value.key == "error-table.rows"


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as ei:
        load(tmp_path / "missing.toml")
    assert ei.value.key == "error-table"
    broken = tmp_path / "broken.toml"
    broken.write_text("[[rows]\nid = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(broken)


def test_load_or_keep_keeps_the_old_table_on_a_broken_file(tmp_path: Path) -> None:
    current = load(TABLE)
    current.classify("shopee", shopee("error_never_seen", "?"))
    path = tmp_path / "error-table.toml"
    text = TABLE.read_text()
    path.write_text(text.replace('class = "adjust"', 'class = "adjusted"', 1))
    table, error = load_or_keep(path, current)
    assert table is current and error is not None
    assert error.key.startswith("error-table.rows[") and error.key.endswith("].class")
    assert "'shopee-reserved-stock'" in error.reason
    path.write_text("not toml [")
    assert load_or_keep(path, current)[0] is current
    path.write_text(text)
    table, error = load_or_keep(path, current)
    assert error is None and table is not current and isinstance(table, ErrorTable)
    assert table.unmatched == {("shopee", "error_never_seen"): 1}  # counts survive a reload


def test_operators_can_add_a_row(tmp_path: Path) -> None:
    raw = copy.deepcopy(_minimal())
    raw["rows"].insert(
        0,
        {
            "id": "shopee-new",
            "platform": "shopee",
            "code": "error_new",
            "class": "manual",
            "action": "new-thing",
            "hint": "New thing for {sku}: {message}",
        },
    )
    d = parse(raw).classify("shopee", shopee("shop.error_new", "details"), sku="A")
    assert (d.row.id, d.hint, d.matched_default) == (
        "shopee-new",
        "New thing for A: details",
        False,
    )


# -- docs ------------------------------------------------------------------------------------


def _doc_rows() -> list[tuple[str, ...]]:
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| id | platform |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(tuple(c.strip().strip("`") for c in line.strip("|").split("|")))
    return rows


def test_doc_table_equals_the_shipped_rows() -> None:
    shipped = [(r.id, r.platform, r.error_class, r.action) for r in SHIPPED.rows]
    assert _doc_rows() == shipped


def test_doc_describes_every_class() -> None:
    text = DOC.read_text()
    for cls in CLASSES:
        assert re.search(rf"^\| `{re.escape(cls)}` \|", text, re.M), cls

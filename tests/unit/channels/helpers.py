"""Small builders shared by the channel tests."""

from __future__ import annotations

from typing import Any

import orjson

from syncd.channels.base import HttpResult, StockUpdate, listing_ref


def upd(listing: dict[str, Any], quantity: int) -> StockUpdate:
    return StockUpdate(listing, listing_ref(listing), quantity)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResult:
    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    parsed = None if isinstance(body, str) else body
    return HttpResult(status, headers or {}, parsed, text)

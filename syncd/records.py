"""The records of syncd's internal topics: one typed encode/decode pair per topic.

Owns the wire form (JSON, written with orjson) of every record one stage writes and
another part of syncd reads, so that each format is written down once:

- ``<p>.desired`` (key ``<account>/<listing ref>``; a tombstone unlinks the listing):
  written by the compute stage (:func:`encode_desired`), read by the publish stage and
  the listings view (:func:`decode_desired` -> :class:`syncd.core.sending.Desired`);
- ``<p>.acked`` (same key, compacted): the newest quantity a channel acknowledged
  (:func:`encode_acked` / :func:`decode_acked` -> :class:`Acked`);
- ``topics.holds`` (key ``<account>/<sku>``, compacted): a campaign hold (or its end,
  ``held`` 0) that the publish stage hands back to the compute stage
  (:func:`encode_hold` / :func:`decode_hold` -> :class:`Hold`);
- ``topics.actions`` (key ``<account>/<action>``, compacted): manual actions, whose
  value :meth:`syncd.core.actions.Action.record` builds (:func:`encode_action` /
  :func:`decode_action`, :func:`action_of`);
- ``topics.push_results``: one record per update per call (:class:`PushResult`,
  :func:`encode_push_result` / :func:`decode_push_result`).

Decoders raise :class:`ValueError` for a value that is not a record of their topic.
Imports only :mod:`syncd.core` and :mod:`syncd.errors` (and orjson).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from syncd.core.actions import Action
from syncd.core.keys import hold_key, listing_key
from syncd.core.sending import Desired

__all__ = [
    "Acked",
    "Desired",
    "Hold",
    "PushResult",
    "action_of",
    "decode_acked",
    "decode_action",
    "decode_desired",
    "decode_hold",
    "decode_push_result",
    "encode_acked",
    "encode_action",
    "encode_desired",
    "encode_hold",
    "encode_push_result",
]


def _object(value: bytes) -> dict[str, Any]:
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    return d


# -- desired -------------------------------------------------------------------------


def encode_desired(
    *,
    account: str,
    listing: Mapping[str, Any],
    listing_ref: str,
    sku: str,
    quantity: int,
    source_ts: int | None,
    computed_at: int,
) -> bytes:
    """A desired-topic record value (key ``<account>/<listing_ref>``)."""
    return orjson.dumps(
        {
            "account": account,
            "listing": listing,
            "listing_ref": listing_ref,
            "sku": sku,
            "quantity": quantity,
            "source_ts": source_ts,
            "computed_at": computed_at,
        }
    )


def decode_desired(key: bytes | None, value: bytes) -> Desired:
    """A desired-topic record; ValueError when malformed or when ``key`` (if given) is
    not ``<account>/<listing_ref>``."""
    d = _object(value)
    account, ref, qty = d.get("account"), d.get("listing_ref"), d.get("quantity")
    listing, sku, ts = d.get("listing"), d.get("sku"), d.get("source_ts")
    if not (isinstance(account, str) and isinstance(ref, str) and isinstance(listing, dict)):
        raise ValueError("account, listing and listing_ref are required")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
        raise ValueError("quantity must be an integer >= 0")
    if ts is not None and not isinstance(ts, int):
        raise ValueError("source_ts must be an integer or null")
    lkey = listing_key(account, ref)
    if key is not None and key.decode(errors="replace") != lkey:
        raise ValueError("key does not match account/listing_ref")
    return Desired(lkey, listing, ref, str(sku or ""), qty, ts)


# -- acked ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acked:
    """The newest quantity a channel acknowledged for a listing, and when (epoch ms)."""

    quantity: int
    at: int | None = None


def encode_acked(quantity: int, at_ms: int) -> bytes:
    """An acked-topic record value (key ``<account>/<listing_ref>``)."""
    return orjson.dumps({"quantity": quantity, "at": at_ms})


def decode_acked(value: bytes) -> Acked:
    """An acked-topic record; ValueError when it has no integer ``quantity``."""
    d = _object(value)
    qty, at = d.get("quantity"), d.get("at")
    if not isinstance(qty, int):
        raise ValueError("quantity must be an integer")
    return Acked(qty, at if isinstance(at, int) else None)


# -- holds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Units a channel account holds for a campaign on a SKU's listing (0: the hold ended)."""

    account: str
    sku: str
    listing_ref: str
    held: int
    at: int

    @property
    def key(self) -> str:
        """The record key: ``<account>/<sku>`` (compacted per account and SKU)."""
        return hold_key(self.account, self.sku)

    @property
    def listing_key(self) -> str:
        """``<account>/<listing_ref>``, the listing's key in the desired topic."""
        return listing_key(self.account, self.listing_ref)


def encode_hold(h: Hold) -> bytes:
    return orjson.dumps(
        {
            "account": h.account,
            "sku": h.sku,
            "listing_ref": h.listing_ref,
            "held": h.held,
            "at": h.at,
        }
    )


def decode_hold(value: bytes) -> Hold:
    """A holds-topic record; ValueError when a field is missing or of the wrong type."""
    d = _object(value)
    try:
        return Hold(
            str(d["account"]),
            str(d["sku"]),
            str(d.get("listing_ref", "")),
            int(d["held"]),
            int(d.get("at") or 0),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a hold record: {e!r}") from None


# -- actions -------------------------------------------------------------------------


def encode_action(value: Mapping[str, Any]) -> bytes:
    """An actions-topic record value (:meth:`syncd.core.actions.Action.record`, possibly
    with another ``state``/``updated_at``; key ``<account>/<action>``)."""
    return orjson.dumps(value)


def decode_action(value: bytes) -> dict[str, Any] | None:
    """An actions-topic record value; None when it is JSON but not an object (it then
    describes no action), ValueError when it is not JSON."""
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    return d if isinstance(d, dict) else None


def action_of(account: str, value: Mapping[str, Any]) -> Action:
    """The open :class:`~syncd.core.actions.Action` of ``account`` an actions-topic value
    describes."""
    return Action(
        account,
        str(value["action"]),
        str(value["class"]),
        str(value.get("hint", "")),
        int(value.get("opened_at", 0)),
        int(value.get("updated_at", 0)),
        dict.fromkeys(str(ref) for ref in value.get("listings", [])),
        count=int(value.get("count", 0)),
    )


# -- push results --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushResult:
    """One update's share of one call, as written to ``topics.push_results``."""

    account: str
    listing_ref: str
    sku: str
    quantity: int
    """The quantity sent (raised by an ``adjust`` row, else the desired one)."""
    ok: bool
    attempt: int
    http_status: int | None
    code: str | None
    message: str | None
    latency_ms: float
    source_ts: int | None
    acked_at: int | None
    final: bool
    retriable: bool
    desired_quantity: int | None = None
    """Written only when the quantity sent differs from the desired one."""
    held: int | None = None
    min_quantity: int | None = None
    error_class: str | None = None
    """The error table's class, row and action for a failure (all three, or none)."""
    row: str | None = None
    action: str | None = None

    def value(self) -> dict[str, Any]:
        """The record value (the keys after ``retriable`` only when they apply)."""
        out: dict[str, Any] = {
            "account": self.account,
            "listing_ref": self.listing_ref,
            "sku": self.sku,
            "quantity": self.quantity,
            "ok": self.ok,
            "attempt": self.attempt,
            "http_status": self.http_status,
            "code": self.code,
            "message": self.message,
            "latency_ms": self.latency_ms,
            "source_ts": self.source_ts,
            "acked_at": self.acked_at,
            "final": self.final,
            "retriable": self.retriable,
        }
        if self.desired_quantity is not None:
            out["desired_quantity"] = self.desired_quantity
        if self.held is not None:
            out["held"] = self.held
        if self.min_quantity is not None:
            out["min_quantity"] = self.min_quantity
        if self.error_class is not None:
            out["class"] = self.error_class
            out["row"] = self.row
            out["action"] = self.action
        return out


def encode_push_result(r: PushResult) -> bytes:
    return orjson.dumps(r.value())


def decode_push_result(value: bytes) -> PushResult:
    """A push-results record; ValueError when a required field is missing."""
    d = _object(value)
    try:
        return PushResult(
            str(d["account"]),
            str(d["listing_ref"]),
            str(d["sku"]),
            int(d["quantity"]),
            bool(d["ok"]),
            int(d["attempt"]),
            d.get("http_status"),
            d.get("code"),
            d.get("message"),
            float(d["latency_ms"]),
            d.get("source_ts"),
            d.get("acked_at"),
            bool(d["final"]),
            bool(d["retriable"]),
            d.get("desired_quantity"),
            d.get("held"),
            d.get("min_quantity"),
            d.get("class"),
            d.get("row"),
            d.get("action"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a push-results record: {e!r}") from None

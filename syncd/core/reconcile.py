"""Reconciliation, the pure part: what one read-back of a listing means.

Owns :func:`check` (given the last acknowledged quantity and when it was acknowledged,
what the platform shows now, the platform's propagation delay and the listing's drift
so far: ``ok`` / ``wait`` / ``drift`` / ``push`` / ``action`` / ``adopt`` / ``unknown``),
the drift state it works on (:class:`Drift`), the per-platform propagation delays
(:data:`PROPAGATION_DELAYS`, :func:`propagation_delay`) and the read budget
(:func:`read_rate`). The pusher runs it (:meth:`syncd.publish.pusher.AccountPusher.reconcile`);
docs/reconciliation.md says how.

Rules:

- the platform shows the acknowledged quantity: ``ok`` (any drift is over);
- the acknowledgement is younger than the propagation delay: ``wait``;
- a difference seen for the first time: ``drift`` (nothing is sent yet: a sale the
  platform counted itself is published by syncd within seconds, and that newer
  quantity ends the drift);
- seen again on a later read: ``push`` the last desired quantity again, once;
- still there ``persist_s`` after it was first seen (the re-push had its own
  propagation delay): ``action`` with the code the error table classifies
  (:data:`~syncd.core.errortable.READ_BACK_ZERO` when the platform shows 0, else
  :data:`~syncd.core.errortable.READ_BACK_STALE`);
- a listing whose desired quantity was never acknowledged (retries ran out) and whose
  read-back equals it: ``adopt`` (consider it acknowledged);
- no read-back value: ``unknown`` (state kept).

Pure: no I/O, no asyncio, no clock (``now`` is passed in, epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from syncd.core.errortable import READ_BACK_STALE, READ_BACK_ZERO
from syncd.errors import ConfigError

READ_BACK_CODES = frozenset({READ_BACK_ZERO, READ_BACK_STALE})

Verdict = Literal["ok", "wait", "drift", "push", "action", "adopt", "unknown"]

PROPAGATION_DELAYS: Mapping[str, tuple[float, str]] = {
    "shopee": (120.0, "assumption: update_stock shows on read-back at once"),
    "lazada": (120.0, "assumption: sellable quantity shows on read-back at once"),
    "shopify": (60.0, "documented: inventorySetQuantities is synchronous"),
    "wayfair": (
        4 * 3600.0,
        "documented: up to 24 h for a feed to show; 4 h is a grace that catches a Confirm "
        "Stock Status alert the same day (set 86400 to never flag a slow feed)",
    ),
}
"""Seconds after an acknowledgement during which the read-back may still show an older
quantity, when the account's table sets no ``propagation_delay_s``."""

COST_BUCKET_CALLS_PER_S = 10.0
"""Shopify (no request rate, a cost bucket): calls per second the read share is taken
of (the default bucket restores 100 points/s, a call costs about 10)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """A listing's read-back differs from its acknowledged quantity."""

    since: float
    """When the difference was first seen (epoch seconds)."""
    read: int
    pushed: bool = False
    """The last desired quantity was pushed again."""
    opened: bool = False
    """A manual action was opened for it."""


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    drift: Drift | None
    """The listing's drift state after this read."""
    code: str | None = None
    """For ``action``: the syncd code the error table classifies."""
    message: str = ""
    """For ``action``: the outcome message (the hint's ``{message}``)."""


def check(
    acked: int | None,
    acked_at: float | None,
    read: int | None,
    now: float,
    *,
    delay_s: float,
    persist_s: float,
    drift: Drift | None = None,
    desired: int | None = None,
) -> Check:
    """What a read-back of one listing means (see the module docstring)."""
    if read is None:
        return Check("unknown", drift)
    if desired is not None and desired != acked:
        return Check("adopt" if desired == read else "unknown", None)
    if acked is None:
        return Check("unknown", None)
    if read == acked:
        return Check("ok", None)
    if acked_at is not None and now < acked_at + delay_s:
        return Check("wait", drift)
    if drift is None:
        return Check("drift", Drift(now, read))
    drift = replace(drift, read=read)
    if not drift.pushed:
        return Check("push", replace(drift, pushed=True))
    if now - drift.since < persist_s:
        return Check("drift", drift)
    code = READ_BACK_ZERO if read == 0 else READ_BACK_STALE
    minutes = (now - drift.since) / 60
    since = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    message = f"read back {read} since {since}, sent {acked}"
    return Check("action", replace(drift, opened=True), code, message)


LISTINGS_PER_READ: Mapping[str, int] = {"shopee": 1, "lazada": 1, "shopify": 50, "wayfair": 10000}
"""Listings one ``read_stock`` call covers in one HTTP request (Shopee and Lazada read
per item; Shopify 50 per query; Wayfair's query returns up to ``read_limit`` parts)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """One account's reconciliation settings."""

    interval_s: float
    read_rate_per_s: float
    delay_s: float
    persist_s: float
    listings_per_read: int

    @classmethod
    def build(
        cls,
        account: str,
        platform: str,
        settings: Mapping[str, Any],
        rate_per_s: float | None,
        *,
        interval_s: float,
        share: float,
        persist_s: float,
    ) -> Settings:
        return cls(
            interval_s,
            read_rate(rate_per_s, share),
            propagation_delay(account, platform, settings),
            persist_s,
            LISTINGS_PER_READ.get(platform, 1),
        )


def propagation_delay(account: str, platform: str, settings: Mapping[str, Any]) -> float:
    """The account's ``propagation_delay_s``, else the platform's default; ConfigError
    names ``channels.<account>.propagation_delay_s`` when it is not a number >= 0."""
    value = settings.get("propagation_delay_s")
    if value is None:
        return PROPAGATION_DELAYS.get(platform, (0.0, ""))[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"channels.{account}.propagation_delay_s", "must be a number >= 0")
    return float(value)


def read_rate(rate_per_s: float | None, share: float) -> float:
    """Read-back calls per second allowed for an account: ``share`` of its rate."""
    return share * (rate_per_s if rate_per_s is not None else COST_BUCKET_CALLS_PER_S)

"""Marketplace channel clients: one module per platform behind the
:class:`syncd.channels.base.Channel` protocol; build one with
:func:`syncd.channels.base.make_channel`.

The contract module is loaded first, whichever module is imported: it
re-exports the plumbing of :mod:`syncd.channels.http` and
:mod:`syncd.channels.tokens`, which build on it.
"""

from collections.abc import Mapping
from typing import Any

from syncd.channels import base as base  # load order, see above

_COMMON = {"base_url", "timeout_s", "max_connections", "batch_size", "refresh_ahead_s"}
_COMMON |= {"access_token", "refresh_token", "access_token_expires_at"}
_COMMON |= {"rate_per_s", "burst", "max_in_flight", "propagation_delay_s"}
_KNOWN = {
    "shopee": {"partner_id", "shop_id", "partner_key"},
    "lazada": {"auth_url", "app_key", "app_secret"},
    "wayfair": {"token_url", "audience", "client_id", "client_secret", "supplier_id"}
    | {"feed_kind", "read_limit"},
    "shopify": {"api_version", "quantity_name", "reason", "reference_document_uri"}
    | {"client_id", "client_secret"},
}


def check_settings(platform: str, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (key, reason) problem of one account's settings (a stand-in: unknown keys)."""
    known = _COMMON | _KNOWN.get(platform, set())
    return [
        (key, f"unknown setting for {platform} (known: {', '.join(sorted(known))})")
        for key in settings
        if key not in known
    ]

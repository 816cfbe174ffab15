"""Request signing for the marketplaces that sign requests (Shopee, Lazada).

Pure functions on fixed inputs, no clock and no I/O, so tests can check them
against values computed independently from the platforms' published recipes.
Wayfair and Shopify use bearer/header tokens and need no signing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def shopee_base_string(
    partner_id: int | str,
    path: str,
    timestamp: int,
    access_token: str | None = None,
    shop_id: int | str | None = None,
) -> str:
    """The string Shopee signs: ``partner_id + path + timestamp [+ access_token + shop_id]``.

    Public/auth APIs (``/api/v2/auth/...``) pass neither ``access_token`` nor
    ``shop_id``; shop APIs pass both. ``path`` has no host and no query.
    """
    base = f"{partner_id}{path}{timestamp}"
    if access_token is not None:
        base += access_token
    if shop_id is not None:
        base += str(shop_id)
    return base


def shopee_sign(
    partner_key: str,
    partner_id: int | str,
    path: str,
    timestamp: int,
    access_token: str | None = None,
    shop_id: int | str | None = None,
) -> str:
    """HMAC-SHA256(partner_key, base string), lowercase hex (Shopee Open Platform v2)."""
    base = shopee_base_string(partner_id, path, timestamp, access_token, shop_id)
    return hmac.new(partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()


def lazada_base_string(api_path: str, params: Mapping[str, str], body: str | None = None) -> str:
    """The string Lazada signs: API path, then ``k1v1k2v2...`` sorted by name, then any body.

    ``sign`` itself is left out, and so are empty values (as the official Java
    and C# SDKs do). The ``payload`` parameter is an ordinary text parameter and
    is signed like the others.
    """
    parts = [api_path]
    for key in sorted(params):
        value = params[key]
        if key == "sign" or not key or value == "":
            continue
        parts.append(f"{key}{value}")
    if body:
        parts.append(body)
    return "".join(parts)


def lazada_sign(
    app_secret: str, api_path: str, params: Mapping[str, str], body: str | None = None
) -> str:
    """HMAC-SHA256(app_secret, base string), UPPERCASE hex (LAZOP ``sign_method=sha256``)."""
    base = lazada_base_string(api_path, params, body)
    return hmac.new(app_secret.encode(), base.encode(), hashlib.sha256).hexdigest().upper()

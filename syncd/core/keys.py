"""The keys syncd builds: one definition each, so every stage spells them the same.

Owns the text forms that travel between modules and topics:

- :func:`listing_ref`: a listing object's canonical text (JSON, sorted keys, no spaces),
  the listing's identity inside one channel account;
- :func:`listing_key` / :func:`account_of`: ``<account>/<listing ref>``, the key of the
  catalog topic, of ``<p>.desired`` and ``<p>.acked``, and of the publish stage's per-listing
  state; the account is everything before the first ``/`` (an account id,
  ``<platform>:<name>``, has none);
- :func:`hold_key`: ``<account>/<SKU>``, the key of ``<p>.holds`` (campaign holds);
- :func:`action_id`: ``<account>/<action>``, the key of ``<p>.actions`` (manual actions).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def listing_ref(listing: Mapping[str, Any]) -> str:
    """The canonical text of a listing identifier: JSON with sorted keys, no spaces.

    Raises TypeError (orjson's encode error) for a value orjson cannot write, such as
    an object nested deeper than it writes.
    """
    obj = listing if isinstance(listing, dict) else dict(listing)
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def listing_key(account: str, ref: str) -> str:
    """A listing's key: ``<account>/<listing ref>``."""
    return f"{account}/{ref}"


def account_of(key: str) -> str:
    """The channel account of a listing key (or of a hold key or an action id)."""
    return key.split("/", 1)[0]


def hold_key(account: str, sku: str) -> str:
    """A campaign hold's key on ``<p>.holds``: ``<account>/<SKU>``."""
    return f"{account}/{sku}"


def action_id(account: str, action: str) -> str:
    """A manual action's id and its key on ``<p>.actions``: ``<account>/<action>``."""
    return f"{account}/{action}"

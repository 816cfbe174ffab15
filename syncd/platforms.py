"""The names of the known channel platforms: the one list every layer reads.

Owns the set of platform names (``shopee``, ``lazada``, ``wayfair``,
``shopify`` built in) that the input contract (a listing's ``channel``), the
configuration (an account id ``<platform>:<name>``) and the error table (a
row's ``platform``) accept. Names only: the clients and their registry are
:mod:`syncd.channels`, whose :func:`~syncd.channels.register` adds a name here.

Why a module of names at the bottom layer (beside :mod:`syncd.errors`) rather
than the set passed as a parameter: the layer contract forbids ``core``,
``contract`` and ``config`` to import :mod:`syncd.channels`, and the set is
read deep inside them (a schema error's text, an error-table row check, an
account id check) by functions that every caller would otherwise have to
thread a set through, for a value that is the same everywhere in a process.
So the registry (above) writes the names, the lower layers read them here,
and a new platform is one module (a client class and one ``register`` call)
plus error-table rows: nothing below the channels names it.

A platform module that is not built in must be imported (so that it
registers) before the configuration, the error table or input records are
read.
"""

from __future__ import annotations

import re
from typing import Final

BUILTIN: Final = ("shopee", "lazada", "wayfair", "shopify")
"""The platforms syncd ships a client for, in their documented order."""

NAME: Final = re.compile(r"[a-z][a-z0-9_-]*")
"""What a platform name looks like (lower case; the schemas' ``channel`` pattern)."""

_known: list[str] = list(BUILTIN)


def known() -> tuple[str, ...]:
    """The known platform names: the built-ins first, then the added ones in order."""
    return tuple(_known)


def is_known(name: str) -> bool:
    """Whether ``name`` is a known platform."""
    return name in _known


def add(name: str) -> None:
    """Make ``name`` a known platform (no effect when it is known already)."""
    if not NAME.fullmatch(name):
        raise ValueError(f"a platform name is lower case letters, digits, '_' and '-': {name!r}")
    if name not in _known:
        _known.append(name)


def remove(name: str) -> None:
    """Forget an added platform (tests); a built-in one stays known."""
    if name in _known and name not in BUILTIN:
        _known.remove(name)

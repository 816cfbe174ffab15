"""The error table: what a marketplace's failure answer means and what syncd does about it.

The table is data (``syncd/config/error-table.toml``, format in docs/error-table.md;
:mod:`syncd.config.error_table` reads the file). This package is its pure side, in three
rooms:

- :mod:`.rules`: the vocabulary: :class:`Row`, :data:`ErrorClass`, :class:`RetrySpec`,
  :class:`Decision`, the read-back codes;
- :mod:`.parse`: :func:`parse`, a table read from TOML validated into rows;
- :mod:`.classify`: :class:`ErrorTable` and its :meth:`~ErrorTable.classify`, which turns
  a platform, a failed outcome and the listing's SKU into a :class:`Decision` (the row,
  its class ``retry``, ``refresh-auth``, ``park-account``, ``park-listing``, ``adjust``
  or ``manual``, the captures, the seller-facing hint and the row's policy).

Pure: no I/O, no clock, no asyncio; the publisher does what a decision says. The names
below are the public API (``from syncd.core.errortable import X``).
"""

from syncd.core.errortable.classify import (
    MAX_HINT_MESSAGE,
    MAX_MESSAGE,
    MAX_UNMATCHED_KEYS,
    ErrorTable,
    Outcome,
    bare_code,
)
from syncd.core.errortable.parse import KEY, parse
from syncd.core.errortable.rules import (
    CLASSES,
    CONTEXT_FIELDS,
    READ_BACK_STALE,
    READ_BACK_ZERO,
    AdjustKind,
    Decision,
    ErrorClass,
    HintPart,
    RetrySpec,
    Row,
)

__all__ = [
    "CLASSES",
    "CONTEXT_FIELDS",
    "KEY",
    "MAX_HINT_MESSAGE",
    "MAX_MESSAGE",
    "MAX_UNMATCHED_KEYS",
    "READ_BACK_STALE",
    "READ_BACK_ZERO",
    "AdjustKind",
    "Decision",
    "ErrorClass",
    "ErrorTable",
    "HintPart",
    "Outcome",
    "RetrySpec",
    "Row",
    "bare_code",
    "parse",
]

"""The error table the daemon reads: the shipped one, or an operator's file.

Owns finding and reading the table: ``[publish] error_table`` empty (the default) means
the table shipped inside the package (``syncd/config/error-table.toml``, read through
:mod:`importlib.resources`, so an installed wheel works from any folder); otherwise it is
a file path. Parsing and classification are pure and live in :mod:`syncd.core.errortable`.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path

from syncd.core.errortable import KEY, ErrorTable, parse
from syncd.errors import ConfigError

SHIPPED = "error-table.toml"
"""The shipped table's resource name inside :mod:`syncd.config`."""


def shipped_text() -> str:
    """The text of the table shipped with syncd."""
    return (resources.files("syncd.config") / SHIPPED).read_text(encoding="utf-8")


def load(path: str | Path | None = None) -> ErrorTable:
    """Read and validate a table: ``path``, or the shipped one when ``path`` is empty.

    Raises ConfigError naming the row and key (or the file and why it cannot be read)."""
    if not path:
        return _parse_text(shipped_text(), "syncd/config/error-table.toml (shipped)")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(KEY, f"{p} does not exist") from None
    except OSError as e:
        raise ConfigError(KEY, f"cannot read {p}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(KEY, f"{p} is not UTF-8 text") from None
    return _parse_text(text, str(p))


def _parse_text(text: str, source: str) -> ErrorTable:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(KEY, f"{source} is not valid TOML: {e}") from None
    return parse(raw, source=source)


def load_or_keep(
    path: str | Path | None, current: ErrorTable
) -> tuple[ErrorTable, ConfigError | None]:
    """For a reload: the new table (keeping the unmatched counts), or ``current`` and why
    the file was refused."""
    try:
        table = load(path)
    except ConfigError as e:
        return current, e
    table.unmatched = current.unmatched
    return table, None


@functools.cache
def default_table() -> ErrorTable:
    """The shipped table (for pushers built without one, as in tests)."""
    return load(None)

"""Reading one channel account's settings.

Owns :func:`setting`: one value of an account's settings table with a type
check, the :class:`~syncd.errors.ConfigError` naming ``channels.<account>.<key>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.errors import ConfigError


def setting(
    settings: Mapping[str, Any], account: str, key: str, kind: type, default: Any = ...
) -> Any:
    """Read one setting with a type check; ConfigError names ``channels.<account>.<key>``."""
    if key not in settings or settings[key] is None:
        if default is ...:
            raise ConfigError(f"channels.{account}.{key}", "is required")
        return default
    value = settings[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"channels.{account}.{key}", f"must be {kind.__name__}")
    return value

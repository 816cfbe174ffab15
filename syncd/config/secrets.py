"""Secret sources: a secret setting ``X`` is never written in the file.

It is given as ``X_env = "VAR"`` (read from the environment) or ``X_file = "/path"``
(read from a file, trailing newlines stripped). A literal ``X`` is refused, naming the
key and never the value. The resolved values are held by the models in fields hidden
from ``repr`` (:mod:`syncd.config.model`), so a logged configuration shows no secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError

CHANNEL_SECRETS = ("partner_key", "app_secret", "client_secret", "access_token", "refresh_token")
"""Channel settings that are secrets: only ``X_env`` / ``X_file`` may give them."""

SUFFIXES = ("_env", "_file")


def secret(table: Mapping[str, Any], name: str, where: str, env: Mapping[str, str]) -> str | None:
    """Resolve ``name_env`` / ``name_file`` in ``table``; a literal ``name`` is refused.

    Raises ConfigError naming ``<where>.<key>``; None when the table gives neither."""
    if name in table:
        raise ConfigError(
            f"{where}.{name}", f"secrets are not written in the file; use {name}_env or {name}_file"
        )
    for suffix in SUFFIXES:
        ref = table.get(f"{name}{suffix}")
        if ref is not None and (not isinstance(ref, str) or not ref):
            raise ConfigError(f"{where}.{name}{suffix}", f"must be a non-empty string, got {ref!r}")
    if f"{name}_env" in table and f"{name}_file" in table:
        raise ConfigError(f"{where}.{name}_env", f"give {name}_env or {name}_file, not both")
    if f"{name}_env" in table:
        var = table[f"{name}_env"]
        if var not in env:
            raise ConfigError(f"{where}.{name}_env", f"environment variable {var} is not set")
        return env[var]
    if f"{name}_file" in table:
        path = Path(table[f"{name}_file"])
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError as e:
            raise ConfigError(f"{where}.{name}_file", f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}.{name}_file", f"{path} is not UTF-8 text") from None
    return None


UNRESOLVED = "<unresolved secret>"
"""Stands for a channel secret that could not be read, so that a settings check does not
report it missing a second time (only :func:`channel_settings` with ``keep_unresolved``)."""


def channel_settings(
    table: Mapping[str, Any],
    where: str,
    env: Mapping[str, str],
    problems: list[ConfigError],
    *,
    keep_unresolved: bool = False,
) -> dict[str, Any]:
    """A channel account's settings, each ``X_env`` / ``X_file`` resolved into ``X``.

    Literal secrets (:data:`CHANNEL_SECRETS`) are refused. Problems are appended."""
    settings: dict[str, Any] = {}
    bases: set[str] = set()
    for key, value in table.items():
        if key == "policy":
            continue
        if key in CHANNEL_SECRETS:  # a literal secret: refused, naming the key only
            _collect(problems, table, key, where, env)
            continue
        if key.endswith(SUFFIXES):
            base = key.rsplit("_", 1)[0]
            if base in bases:
                continue
            bases.add(base)
            value = _collect(problems, table, base, where, env)
            settings[base] = UNRESOLVED if value is None and keep_unresolved else value
        else:
            settings[key] = value
    return settings


def _collect(
    problems: list[ConfigError],
    table: Mapping[str, Any],
    name: str,
    where: str,
    env: Mapping[str, str],
) -> str | None:
    try:
        return secret(table, name, where, env)
    except ConfigError as e:
        if all(p.key != e.key for p in problems):
            problems.append(e)
        return None

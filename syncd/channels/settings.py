"""One channel account's settings, typed.

Owns :class:`ChannelSettings`, the pydantic model of the keys every account
table may have (the HTTP ones every built-in client reads, the first token,
and the keys the publish stage reads from the same table), the field types
the platform models build on (:data:`Int`, :data:`Float`, :data:`Str`,
:data:`Secret`: the same acceptance rules as before the models, e.g. an int
may be written as a string of digits, a float as an int, never a bool),
:func:`problems` (every problem of one table, as ``(key, reason)``) and
:func:`setting` (one untyped read, for code that has no model).

Each platform module declares its own subclass (``ShopeeSettings`` and so on)
with its keys and defaults. Secrets (keys, client secrets, tokens) are
:class:`~pydantic.SecretStr`: never printed by ``repr`` or ``str``, read with
``get_secret_value()`` where they are used.

A key set to ``None`` counts as absent (TOML has no null, but tests and the
sandboxes hand in ``None`` for "no token yet"). Unknown keys are problems for
:func:`problems` (``check-config`` reports a typo such as ``partnerid``) but
are ignored when a client is built (:meth:`ChannelSettings.of`), as they
always were: ``run`` starts with a table that ``check-config`` flags.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError
from pydantic import field_validator as field_validator

from syncd.errors import ConfigError


def _int(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be int")
    return value


def _float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, float):
        raise ValueError("must be float")
    return value


def _str(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be str")
    return value


Int = Annotated[int, BeforeValidator(_int)]
"""An int, or a string of digits; never a bool."""
Float = Annotated[float, BeforeValidator(_float)]
"""A float, or an int; never a bool or a string."""
Str = Annotated[str, BeforeValidator(_str)]
"""A string."""
Secret = Annotated[SecretStr, BeforeValidator(_str)]
"""A string that is never printed."""
OptInt = Annotated[int | None, BeforeValidator(_int)]
OptFloat = Annotated[float | None, BeforeValidator(_float)]
OptStr = Annotated[str | None, BeforeValidator(_str)]
OptSecret = Annotated[SecretStr | None, BeforeValidator(_str)]


def reveal(secret: SecretStr | None) -> str | None:
    """The text of a secret setting (None when it is not set)."""
    return None if secret is None else secret.get_secret_value()


class ChannelSettings(BaseModel):
    """The keys every channel account's table may have."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    platform: ClassVar[str] = "?"
    """The platform these settings are for (names it in problems)."""

    # -- the HTTP client (every built-in platform) --
    base_url: OptStr = None
    """The platform's API root; None: the platform's default (required where it has none)."""
    timeout_s: Float = 10.0
    max_connections: Int = 8
    batch_size: OptInt = None
    """Updates per call, clamped to the platform's maximum; None: the platform's default."""
    # -- the first token (the token store wins afterwards) --
    access_token: OptSecret = None
    refresh_token: OptSecret = None
    access_token_expires_at: OptFloat = None
    refresh_ahead_s: OptFloat = None
    """Refresh this long before the token expires; None: the platform's default."""
    # -- read by the publish stage (syncd.publish.limits, syncd.core.reconcile) --
    rate_per_s: OptFloat = None
    burst: OptInt = None
    max_in_flight: OptInt = None
    propagation_delay_s: Any = None

    @field_validator("batch_size", "burst", "max_in_flight")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("rate_per_s")
    @classmethod
    def _positive_rate(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError("must be a number > 0")
        return value

    @field_validator("propagation_delay_s")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError("must be a number >= 0")
        return float(value)

    @classmethod
    def of(cls, account: str, settings: Mapping[str, Any]) -> Self:
        """The settings of ``account`` (unknown keys ignored); ConfigError for the first
        problem, naming ``channels.<account>.<key>``."""
        known = {k: v for k, v in settings.items() if k in cls.model_fields and v is not None}
        try:
            return cls.model_validate(known)
        except ValidationError as e:
            key, reason = _problems(cls, e)[0]
            raise ConfigError(f"channels.{account}.{key}", reason) from None

    @classmethod
    def problems(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of one account's table, as ``(key, reason)``: unknown keys too."""
        given = {k: v for k, v in settings.items() if v is not None}
        try:
            cls.model_validate(given)
        except ValidationError as e:
            return _problems(cls, e)
        return []


def _problems(model: type[ChannelSettings], error: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in error.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in item["loc"]) or "<settings>"
        kind = item["type"]
        if kind == "missing":
            reason = "is required"
        elif kind == "extra_forbidden":
            reason = _unknown(model, key)
        elif kind == "value_error":
            reason = str(item.get("ctx", {}).get("error", item["msg"]))
        else:
            reason = item["msg"]
        out.append((key, reason))
    return out


def _unknown(model: type[ChannelSettings], key: str) -> str:
    known = sorted(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown setting for {model.platform}; did you mean {close[0]!r}?"
    return f"unknown setting for {model.platform} (known: {', '.join(known)})"


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

"""The one exception tree of syncd.

Every error syncd raises derives from :class:`SyncdError` and carries a stable
``code`` (documented in docs/errors.md, kept equal by a test) and a
``retriable`` flag. Code never matches on message text: callers branch on the
class or on ``code``.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Root of every syncd error."""

    code: str = "syncd_error"
    retriable: bool = False

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigError(SyncdError):
    """The configuration is invalid; ``key`` names the offending setting."""

    code = "config_invalid"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}", key=key)
        self.key = key
        self.reason = reason


class InvalidRecord(SyncdError):
    """An input record cannot be used; it goes to the dead-letter topic.

    ``code`` is one of the stable reason codes listed in docs/contract.md
    (``not_json``, ``not_object``, ``missing_field``, ``wrong_type``,
    ``invalid_value``, ``unknown_type``, ``bad_sku``, ``too_large``,
    ``key_mismatch``, ``bad_timestamp``).
    """

    code = "invalid_record"

    def __init__(self, reason_code: str, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason, field=field)
        self.code = reason_code
        self.reason = reason
        self.field = field


class KafkaError(SyncdError):
    """Talking to Kafka failed in a way syncd cannot hide (the broker is unreachable)."""

    code = "kafka_unavailable"
    retriable = True


class ChannelError(SyncdError):
    """A channel API call failed; subclasses say how (issue 3 and 4 extend this)."""

    code = "channel_error"
    retriable = False

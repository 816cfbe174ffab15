"""The one exception tree of syncd.

Every error syncd raises derives from :class:`SyncdError` and carries a stable
``code`` (documented in docs/errors.md, kept equal by a test) and a
``retriable`` flag. Code never matches on message text: callers branch on the
class or on ``code``::

    SyncdError                      syncd_error
    ├── ConfigError                 config_invalid
    ├── InvalidRecord               invalid_record (instance code: a reason code)
    ├── KafkaError                  kafka_unavailable      retriable
    └── ChannelError                channel_error
        ├── ChannelTransportError   channel_transport      retriable
        │   └── ChannelTimeout      channel_timeout        retriable
        └── ChannelAuthError        channel_auth_failed
"""

from __future__ import annotations

from typing import Any


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
    """A channel API call failed; subclasses say how."""

    code = "channel_error"
    retriable = False


class ChannelTransportError(ChannelError):
    """The request did not get a platform answer (connection refused, reset, DNS)."""

    code = "channel_transport"
    retriable = True

    def __init__(self, platform: str, account: str, operation: str, reason: str) -> None:
        super().__init__(
            f"{platform} {account}: {operation} failed: {reason}",
            platform=platform,
            account=account,
            operation=operation,
        )
        self.platform = platform
        self.account = account
        self.operation = operation


class ChannelTimeout(ChannelTransportError):
    """The request timed out (total timeout of the account's session)."""

    code = "channel_timeout"


class ChannelAuthError(ChannelError):
    """Getting or refreshing the account's token failed with a platform answer.

    ``push`` turns this into outcomes (``raw["stage"] == "token"``);
    ``read_stock`` raises it. Carries the token endpoint's status, code and
    message verbatim; never the token or secret.
    """

    code = "channel_auth_failed"
    retriable = False

    def __init__(
        self,
        platform: str,
        account: str,
        http_status: int | None,
        platform_code: str | None,
        platform_message: str | None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"{platform} {account}: token request refused"
            f" (http {http_status}, {platform_code}: {platform_message})",
            platform=platform,
            account=account,
            http_status=http_status,
            platform_code=platform_code,
        )
        self.platform = platform
        self.account = account
        self.http_status = http_status
        self.platform_code = platform_code
        self.platform_message = platform_message
        self.raw = raw

"""The typed configuration: one pydantic model per section of the TOML file.

Each section model is strict (a TOML integer is no string, ``true`` is no number; an
integer is accepted where a number is wanted) and refuses unknown keys. Rules that
span fields are in each model's :meth:`problems`, reported with the field errors.
Secret values (``kafka.sasl_password``, ``admin.token``, channel settings) live in
fields hidden from ``repr``; :mod:`syncd.config.secrets` resolves them. Building the
models from a file, collecting every problem at once, is :mod:`syncd.config`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, InstanceOf

from syncd.core.policy import RuleLayers, Rules

SECURITY = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("debug", "info", "warning", "error")

Problem = tuple[str, str]
"""A rule broken across fields: (dotted key, reason)."""


def _finite(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"must be a finite number >= 0, got {value!r}")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _servers(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(s, str) and ":" in s for s in value)
    ):
        raise ValueError("must be a list of 'host:port' strings")
    return tuple(value)


Seconds = Annotated[float, AfterValidator(_finite)]
"""A duration or amount: a finite number >= 0."""
Count = Annotated[int, AfterValidator(_at_least_one)]
"""A size or count: a whole number >= 1."""
Servers = Annotated[tuple[str, ...], BeforeValidator(_servers)]


class Section(BaseModel):
    """A section of the file: strict types, unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def problems(self) -> list[Problem]:
        """Rules that span fields, checked once every field is valid."""
        return []


class KafkaConfig(Section):
    bootstrap_servers: Servers = ("127.0.0.1:9092",)
    client_id: str = "syncd"
    group_id: str = "syncd"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)
    """From ``sasl_password_env`` / ``sasl_password_file`` only."""
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def problems(self) -> list[Problem]:
        if not self.security_protocol.startswith("SASL"):
            return []
        if self.sasl_mechanism is None:
            return [("kafka.sasl_mechanism", f"must be one of {', '.join(SASL)}")]
        if not self.sasl_username or self.sasl_password is None:
            return [("kafka.sasl_username", "SASL needs sasl_username and sasl_password_env/_file")]
        return []


class TopicsConfig(Section):
    stock: str = "stock.events"
    orders: str = "order.events"
    catalog: str = "catalog.listings"
    dead_letter: str = "syncd.dead-letter"
    push_results: str = "syncd.push-results"
    actions: str = "syncd.actions"
    internal_prefix: str = "syncd"
    input_partitions: Count = 6
    """Partitions of input topics syncd creates itself (when ``create`` is on)."""
    desired_partitions: Count = 6
    replication_factor: Count = 1
    create: bool = True

    @property
    def order_lines(self) -> str:
        return f"{self.internal_prefix}.order-lines"

    @property
    def holds(self) -> str:
        """Units a channel account holds for a campaign, per SKU (publish -> compute;
        partitioned by SKU as ``stock``)."""
        return f"{self.internal_prefix}.holds"

    @property
    def order_state(self) -> str:
        return f"{self.internal_prefix}.order-state"

    @property
    def sku_state(self) -> str:
        return f"{self.internal_prefix}.sku-state"

    @property
    def desired(self) -> str:
        return f"{self.internal_prefix}.desired"

    @property
    def acked(self) -> str:
        """Newest acknowledged quantity per listing (compacted; partitioned as ``desired``)."""
        return f"{self.internal_prefix}.acked"


class ComputeConfig(Section):
    max_record_bytes: Count = 65536
    batch_max_records: Count = 2000
    velocity_bucket_minutes: Count = 5
    velocity_window_minutes: int = 60
    closed_order_retention_hours: Seconds = 168.0

    def problems(self) -> list[Problem]:
        if self.velocity_window_minutes < self.velocity_bucket_minutes:
            return [("compute.velocity_window_minutes", "must be at least velocity_bucket_minutes")]
        return []

    @property
    def bucket_ms(self) -> int:
        return self.velocity_bucket_minutes * 60_000

    @property
    def window_ms(self) -> int:
        return self.velocity_window_minutes * 60_000

    @property
    def retention_ms(self) -> int:
        return int(self.closed_order_retention_hours * 3_600_000)


REMOVED_PUBLISH_KEYS = ("max_attempts", "max_retry_seconds", "backoff_initial_s", "backoff_max_s")
"""``[publish]`` keys of earlier versions: the error table's rows carry the retry bounds."""


class PublishConfig(Section):
    """The publish stage (docs/publisher.md); per-account limits live in the channel tables."""

    token_store: str | None = None
    """JSON file holding the channel tokens (rotated refresh tokens survive restarts)."""
    retry_pass_s: Seconds = 60.0
    """How often listings whose retries ran out are tried again (0 = never)."""
    stop_deadline_s: Seconds = 10.0
    """On stop, calls in flight may finish for this long, then are cancelled; queued updates
    are not sent (uncommitted, the next run sends them)."""
    max_in_flight: Count = 8
    """Concurrent calls per account (an account's table may set its own)."""
    commit_interval_ms: Count = 500
    batch_max_records: Count = 5000
    error_table: str = ""
    """The error table (docs/error-table.md): empty, the table shipped with syncd; else a
    file path, absolute or relative to the working directory."""
    reconcile_interval_s: Seconds = 0.0
    """How often each account's acknowledged quantities are read back (0 = never;
    docs/reconciliation.md)."""
    reconcile_share: float = 0.1
    """Share of an account's rate its read-back calls may use (0 < share <= 1)."""
    drift_persist_s: Seconds = 3600.0
    """A drift still seen this long after it was first seen (and pushed again) opens a
    manual action."""

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if not 0 < self.reconcile_share <= 1:
            out.append(("publish.reconcile_share", "must be a number > 0 and <= 1"))
        if self.token_store == "":
            out.append(("publish.token_store", "must be a file path"))
        return out


class AdminConfig(Section):
    """The daemon's admin HTTP server (docs/admin.md)."""

    host: str = "127.0.0.1"
    port: int = 8090
    """0: any free port (tests)."""
    token: str | None = Field(default=None, repr=False)
    """Bearer token of the mutations, from ``token_env`` / ``token_file``; None: the
    mutations are refused (403)."""

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.host:
            out.append(("admin.host", "must be a host name or address"))
        if not 0 <= self.port <= 65535:
            out.append(("admin.port", f"must be a port number (0-65535), got {self.port!r}"))
        return out


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class ChannelConfig(BaseModel):
    """One channel account: ``<platform>:<name>``, its policy layer and its settings."""

    model_config = ConfigDict(frozen=True)

    account: str
    platform: str
    policy: Mapping[str, Any]
    settings: Mapping[str, Any] = Field(repr=False)
    """Platform settings (base URLs, limits, credentials resolved from secrets); checked
    per platform by ``syncd check-config`` and when the publish stage builds the client."""


class Config(BaseModel):
    """The whole configuration, as the stages read it."""

    model_config = ConfigDict(frozen=True)

    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    compute: ComputeConfig = ComputeConfig()
    policy: InstanceOf[Rules] = Rules()
    channels: Mapping[str, ChannelConfig] = Field(default_factory=dict)
    skus: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)
    log_level: str = "info"
    source: str = "<defaults>"
    publish: PublishConfig = PublishConfig()
    admin: AdminConfig = AdminConfig()

    def rule_layers(self) -> RuleLayers:
        """The configured rule layers (global, channel account, SKU) for the pure core."""
        accounts = {account: ch.policy for account, ch in self.channels.items()}
        return RuleLayers(self.policy, accounts, self.skus)

    def rules_for(self, account: str, sku: str, listing_rules: Mapping[str, Any] | None) -> Rules:
        """Merge the rule layers: global, channel account, SKU, listing."""
        return self.rule_layers().rules_for(account, sku, listing_rules)

"""Configuration: one TOML file, validated at start.

Every problem raises :class:`~syncd.errors.ConfigError` naming the key (as a
dotted path) and the reason; unknown keys are errors too (a typo must not be
silently ignored). Secrets never sit in the file: a setting ``X`` is given as
``X_env = "VAR"`` (read from the environment) or ``X_file = "/path"`` (read
from a file, trailing newline stripped). See config/syncd.example.toml.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncd.core.events import PLATFORMS
from syncd.core.policy import RuleError, RuleLayers, Rules, parse_layer
from syncd.core.skus import sku_problem
from syncd.errors import ConfigError

CHANNEL_SECRETS = ("partner_key", "app_secret", "client_secret", "access_token", "refresh_token")
"""Channel settings that are secrets: only ``X_env`` / ``X_file`` may give them."""

_SECURITY = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    client_id: str = "syncd"
    group_id: str = "syncd"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


@dataclass(frozen=True, slots=True)
class TopicsConfig:
    stock: str = "stock.events"
    orders: str = "order.events"
    catalog: str = "catalog.listings"
    dead_letter: str = "syncd.dead-letter"
    push_results: str = "syncd.push-results"
    actions: str = "syncd.actions"
    internal_prefix: str = "syncd"
    input_partitions: int = 6
    """Partitions of input topics syncd creates itself (when ``create`` is on)."""
    desired_partitions: int = 6
    replication_factor: int = 1
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


@dataclass(frozen=True, slots=True)
class ComputeConfig:
    max_record_bytes: int = 65536
    batch_max_records: int = 2000
    velocity_bucket_minutes: int = 5
    velocity_window_minutes: int = 60
    closed_order_retention_hours: float = 168.0

    @property
    def bucket_ms(self) -> int:
        return self.velocity_bucket_minutes * 60_000

    @property
    def window_ms(self) -> int:
        return self.velocity_window_minutes * 60_000

    @property
    def retention_ms(self) -> int:
        return int(self.closed_order_retention_hours * 3_600_000)


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """The publish stage (docs/publisher.md); per-account limits live in the channel tables."""

    token_store: str | None = None
    """JSON file holding the channel tokens (rotated refresh tokens survive restarts)."""
    max_attempts: int = 5
    """Attempts per push (the first one included) before it is recorded as failed."""
    max_retry_seconds: float = 60.0
    """No retry starts after this many seconds since the first attempt."""
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    retry_pass_s: float = 60.0
    """How often listings whose retries ran out are tried again (0 = never)."""
    stop_deadline_s: float = 10.0
    """On stop, calls in flight may finish for this long, then are cancelled; queued updates
    are not sent (uncommitted, the next run sends them)."""
    max_in_flight: int = 8
    """Concurrent calls per account (an account's table may set its own)."""
    commit_interval_ms: int = 500
    batch_max_records: int = 5000
    error_table: str = ""
    """Empty: the table shipped with syncd; else a file path."""
    """The error table file (docs/error-table.md): absolute, or relative to the working
    directory."""
    reconcile_interval_s: float = 0.0
    """How often each account's acknowledged quantities are read back (0 = never;
    docs/reconciliation.md)."""
    reconcile_share: float = 0.1
    """Share of an account's rate its read-back calls may use (0 < share <= 1)."""
    drift_persist_s: float = 3600.0
    """A drift still seen this long after it was first seen (and pushed again) opens a
    manual action."""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The daemon's admin HTTP server (docs/admin.md)."""

    host: str = "127.0.0.1"
    port: int = 8090
    """0: any free port (tests)."""
    token: str | None = field(default=None, repr=False)
    """Bearer token of the mutations, from ``token_env`` / ``token_file``; None: the
    mutations are refused (403)."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    account: str
    platform: str
    policy: Mapping[str, Any]
    settings: Mapping[str, Any] = field(repr=False)
    """Platform settings (base URLs, limits, credentials resolved from secrets)."""


@dataclass(frozen=True, slots=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    policy: Rules = field(default_factory=Rules)
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    skus: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
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


# -- loading ------------------------------------------------------------------


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raises ConfigError naming the key."""
    env = os.environ if env is None else env
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("<file>", f"{p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("<file>", f"{p} is not valid TOML: {e}") from None
    return parse(raw, env=env, source=str(p))


def parse(raw: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<dict>") -> Config:
    _only(
        raw,
        "",
        {"kafka", "topics", "compute", "publish", "admin", "policy", "channels", "skus", "log"},
    )
    kafka = _kafka(_sub(raw, "kafka"), env)
    topics = _build(TopicsConfig, _sub(raw, "topics"), "topics")
    for name in ("desired_partitions", "input_partitions", "replication_factor"):
        if getattr(topics, name) < 1:
            raise ConfigError(f"topics.{name}", "must be at least 1")
    compute = _build(ComputeConfig, _sub(raw, "compute"), "compute")
    for name in ("max_record_bytes", "batch_max_records", "velocity_bucket_minutes"):
        if getattr(compute, name) < 1:
            raise ConfigError(f"compute.{name}", "must be at least 1")
    hours = compute.closed_order_retention_hours
    if not (math.isfinite(hours) and hours >= 0):
        raise ConfigError(
            "compute.closed_order_retention_hours", f"must be a finite number >= 0, got {hours!r}"
        )
    if compute.velocity_window_minutes < compute.velocity_bucket_minutes:
        raise ConfigError(
            "compute.velocity_window_minutes", "must be at least velocity_bucket_minutes"
        )
    publish = _publish(_sub(raw, "publish"))
    admin = _admin(_sub(raw, "admin"), env)
    policy = Rules().merged(_rules(_sub(raw, "policy"), "policy"))
    channels = {}
    for account, table in _sub(raw, "channels").items():
        channels[account] = _channel(account, table, env)
    skus = {}
    for sku, table in _sub(raw, "skus").items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"skus.{sku}", "must be a table")
        problem = sku_problem(sku)
        if problem is not None:
            raise ConfigError(f"skus.{sku}", problem)
        _only(table, f"skus.{sku}", {"policy"})
        skus[sku] = _rules(_sub(table, "policy", f"skus.{sku}"), f"skus.{sku}.policy")
    log = _sub(raw, "log")
    _only(log, "log", {"level"})
    level = log.get("level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log.level", f"must be debug, info, warning or error, got {level!r}")
    return Config(
        kafka, topics, compute, policy, channels, skus, level, source, publish=publish, admin=admin
    )


def reload_plan(old: Config, new: Config) -> tuple[Config, list[str], list[str]]:
    """What a reload (SIGHUP) of ``new`` over the running ``old`` does: the configuration to
    run with (``old`` with the live keys taken from ``new``), the changed keys applied live
    and the changed keys that need a restart (key names only, never values)."""
    live: list[str] = []
    restart: list[str] = []

    def diff(key: str, a: Any, b: Any, is_live: bool) -> None:
        if a != b:
            (live if is_live else restart).append(key)

    diff("log.level", old.log_level, new.log_level, True)
    diff("policy", old.policy, new.policy, True)
    diff("skus", old.skus, new.skus, True)
    for name in ("kafka", "topics", "compute"):
        diff(name, getattr(old, name), getattr(new, name), False)
    for section, live_key in (("publish", "error_table"), ("admin", "token")):
        was_s, now_s = getattr(old, section), getattr(new, section)
        for name in was_s.__slots__:
            key = f"{section}.{name}"
            diff(key, getattr(was_s, name), getattr(now_s, name), name == live_key)
    channels = dict(old.channels)
    for account in sorted({*old.channels, *new.channels}):
        was, now = old.channels.get(account), new.channels.get(account)
        if was is None or now is None:  # a publisher is built per account at start
            restart.append(f"channels.{account}")
            continue
        diff(f"channels.{account}.policy", was.policy, now.policy, True)
        diff(f"channels.{account}", was.settings, now.settings, False)
        channels[account] = replace(was, policy=now.policy)
    applied = replace(
        old,
        log_level=new.log_level,
        policy=new.policy,
        skus=new.skus,
        channels=channels,
        publish=replace(old.publish, error_table=new.publish.error_table),
        admin=replace(old.admin, token=new.admin.token),
    )
    return applied, live, restart


def _publish(table: Mapping[str, Any]) -> PublishConfig:
    cfg: PublishConfig = _build(PublishConfig, table, "publish")
    for name in ("max_attempts", "max_in_flight", "commit_interval_ms", "batch_max_records"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"publish.{name}", "must be at least 1")
    for name in (
        "max_retry_seconds",
        "backoff_initial_s",
        "backoff_max_s",
        "retry_pass_s",
        "stop_deadline_s",
        "reconcile_interval_s",
        "drift_persist_s",
    ):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"publish.{name}", f"must be a finite number >= 0, got {value!r}")
    if not 0 < cfg.reconcile_share <= 1:
        raise ConfigError("publish.reconcile_share", "must be a number > 0 and <= 1")
    if cfg.token_store == "":
        raise ConfigError("publish.token_store", "must be a file path")
    return cfg


def _admin(table: Mapping[str, Any], env: Mapping[str, str]) -> AdminConfig:
    token = secret(table, "token", "admin", env)  # first: a literal token gets its own reason
    cfg: AdminConfig = _build(AdminConfig, table, "admin", exclude={"token"})
    if not cfg.host:
        raise ConfigError("admin.host", "must be a host name or address")
    if not 0 <= cfg.port <= 65535:
        raise ConfigError("admin.port", f"must be a port number (0-65535), got {cfg.port!r}")
    if token is not None and not token.strip():
        key = "admin.token_env" if "token_env" in table else "admin.token_file"
        raise ConfigError(key, "the admin token is empty")
    return AdminConfig(cfg.host, cfg.port, token)


def _kafka(table: Mapping[str, Any], env: Mapping[str, str]) -> KafkaConfig:
    plain = {k: v for k, v in table.items() if not k.startswith("sasl_password")}
    servers = plain.get("bootstrap_servers")
    if isinstance(servers, str):
        plain = {**plain, "bootstrap_servers": [servers]}
    if "bootstrap_servers" in plain:
        bs = plain["bootstrap_servers"]
        if (
            not isinstance(bs, list | tuple)
            or not bs
            or not all(isinstance(s, str) and ":" in s for s in bs)
        ):
            raise ConfigError("kafka.bootstrap_servers", "must be a list of 'host:port' strings")
        plain["bootstrap_servers"] = tuple(bs)
    cfg = _build(KafkaConfig, plain, "kafka", exclude={"sasl_password"})
    if cfg.security_protocol not in _SECURITY:
        raise ConfigError("kafka.security_protocol", f"must be one of {', '.join(_SECURITY)}")
    password = secret(table, "sasl_password", "kafka", env)
    if cfg.security_protocol.startswith("SASL"):
        if cfg.sasl_mechanism not in _SASL:
            raise ConfigError("kafka.sasl_mechanism", f"must be one of {', '.join(_SASL)}")
        if not cfg.sasl_username or password is None:
            raise ConfigError(
                "kafka.sasl_username", "SASL needs sasl_username and sasl_password_env/_file"
            )
    return KafkaConfig(**{**_fields(cfg), "sasl_password": password})


def _channel(account: str, table: Any, env: Mapping[str, str]) -> ChannelConfig:
    where = f"channels.{account}"
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table")
    platform, _, name = account.partition(":")
    if platform not in PLATFORMS or not name:
        raise ConfigError(
            where,
            f"an account id is '<platform>:<name>' with platform one of {', '.join(PLATFORMS)}",
        )
    policy = _rules(_sub(table, "policy", where), f"{where}.policy")
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key == "policy":
            continue
        if key in CHANNEL_SECRETS:
            secret(table, key, where, env)  # raises: secrets are not written in the file
        if key.endswith("_env") or key.endswith("_file"):
            base = key.rsplit("_", 1)[0]
            settings[base] = secret(table, base, where, env)
        else:
            settings[key] = value
    return ChannelConfig(account, platform, policy, settings)


def secret(table: Mapping[str, Any], name: str, where: str, env: Mapping[str, str]) -> str | None:
    """Resolve ``name_env`` / ``name_file`` in ``table``; a literal ``name`` is refused."""
    if name in table:
        raise ConfigError(
            f"{where}.{name}", f"secrets are not written in the file; use {name}_env or {name}_file"
        )
    for suffix in ("_env", "_file"):
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


def _rules(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        return parse_layer(table)
    except RuleError as e:
        raise ConfigError(f"{where}.{e.key}", e.reason) from None


def _sub(raw: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key}".lstrip("."), "must be a table")
    return value


def _only(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}.{key}".lstrip("."), f"unknown key (known: {known})")


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _build(cls: Any, table: Mapping[str, Any], where: str, exclude: set[str] | None = None) -> Any:
    """Build a dataclass from a table, checking keys and types against its defaults."""
    defaults = cls()
    names = set(cls.__slots__) - (exclude or set())
    extra = {f"{name}{suffix}" for name in exclude or () for suffix in ("_env", "_file")}
    _only({k: v for k, v in table.items() if k not in extra}, where, names)
    values = {}
    for key, value in table.items():
        if key in extra:
            continue
        default = getattr(defaults, key)
        ok = _type_ok(default, value)
        if not ok:
            want = "a number" if isinstance(default, float) else type(default).__name__
            if default is None:
                want = "a string"
            raise ConfigError(f"{where}.{key}", f"must be {want}, got {value!r}")
        values[key] = float(value) if isinstance(default, float) else value
    return cls(**values)


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, tuple | list)
    if default is None or isinstance(default, str):
        return isinstance(value, str)
    return True

"""Configuration: one TOML file, validated at start.

:func:`load` / :func:`parse` build the typed :class:`Config` (the section models are in
:mod:`syncd.config.model`) or raise :class:`~syncd.errors.ConfigError` naming the key
(as a dotted path) and the reason; :func:`validate` / :func:`check_file` collect every
problem at once (``syncd check-config``), each with the key's line in the file.
Unknown keys are errors (a typo must not be silently ignored). Secrets never sit in the
file (:mod:`syncd.config.secrets`); what a reload may change is
:mod:`syncd.config.reload`. See config/syncd.example.toml.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from syncd import platforms
from syncd.config.lines import key_line, syntax_line
from syncd.config.model import (
    REMOVED_PUBLISH_KEYS,
    AdminConfig,
    ChannelConfig,
    ComputeConfig,
    Config,
    KafkaConfig,
    LogConfig,
    PublishConfig,
    Section,
    TopicsConfig,
)
from syncd.config.reload import reload_plan
from syncd.config.secrets import CHANNEL_SECRETS, UNRESOLVED, channel_settings, secret
from syncd.core.policy import RuleError, Rules, parse_layer
from syncd.core.skus import sku_problem
from syncd.errors import ConfigError

__all__ = [
    "CHANNEL_SECRETS",
    "AdminConfig",
    "ChannelConfig",
    "Checked",
    "ComputeConfig",
    "Config",
    "KafkaConfig",
    "PublishConfig",
    "SettingsCheck",
    "TopicsConfig",
    "check_file",
    "example_text",
    "load",
    "parse",
    "reload_plan",
    "secret",
    "validate",
]

SECTIONS = ("kafka", "topics", "compute", "publish", "admin", "policy", "channels", "skus", "log")

REMOVED_REASON = "was removed: each error-table row carries its retry bounds (docs/error-table.md)"

SettingsCheck = Callable[[str, Mapping[str, Any]], list[tuple[str, str]]]
"""Checks one channel account's settings: (platform, settings) -> [(key, reason)]."""


EXAMPLE = "syncd.example.toml"
"""The example configuration's resource name inside :mod:`syncd.config` (package data;
config/syncd.example.toml in the source tree is the same text)."""


def example_text() -> str:
    """The example configuration shipped with syncd: every key, documented."""
    return (resources.files("syncd.config") / EXAMPLE).read_text(encoding="utf-8")


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raises ConfigError naming the (first bad) key."""
    checked = check_file(path, env)
    if checked.config is None:
        raise checked.problems[0]
    return checked.config


def parse(raw: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<dict>") -> Config:
    """Validate a parsed TOML document; raises ConfigError naming the (first bad) key."""
    cfg, problems = validate(raw, env=env, source=source)
    if cfg is None:
        raise problems[0]
    return cfg


@dataclass(frozen=True)
class Checked:
    """A checked file: the configuration (None when invalid) and every problem found."""

    source: str
    config: Config | None
    problems: list[ConfigError] = field(default_factory=list)
    text: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The parsed TOML document (empty when the file cannot be read or parsed)."""

    def line(self, problem: ConfigError) -> int | None:
        """The line of the file the problem points at, when it can be told."""
        if problem.key == "<file>":
            return syntax_line(problem.reason)
        return key_line(self.text, problem.key)


def check_file(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    settings_check: SettingsCheck | None = None,
) -> Checked:
    """Read a config file and collect every problem (``settings_check``: also each
    channel account's settings)."""
    env = os.environ if env is None else env
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Checked(str(p), None, [ConfigError("<file>", f"{p} does not exist")])
    except OSError as e:
        return Checked(str(p), None, [ConfigError("<file>", f"cannot read {p}: {e.strerror}")])
    except UnicodeDecodeError:
        return Checked(str(p), None, [ConfigError("<file>", f"{p} is not UTF-8 text")])
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem = ConfigError("<file>", f"{p} is not valid TOML: {e}")
        return Checked(str(p), None, [problem], text)
    cfg, problems = validate(raw, env=env, source=str(p), settings_check=settings_check)
    return Checked(str(p), cfg, problems, text, raw)


def validate(
    raw: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    source: str = "<dict>",
    settings_check: SettingsCheck | None = None,
) -> tuple[Config | None, list[ConfigError]]:
    """Every problem of a parsed TOML document, in file order of sections; the
    configuration when there is none."""
    out: list[ConfigError] = []
    for key in raw:
        if key not in SECTIONS:
            out.append(_unknown(key, SECTIONS))
    t = {name: _sub(raw, name, "", out) for name in SECTIONS}
    kafka_plain = _without(t["kafka"], "sasl_password")
    password = _secret(t["kafka"], "sasl_password", "kafka", env, out)
    kafka = _section(KafkaConfig, {**kafka_plain, "sasl_password": password}, "kafka", out)
    topics = _section(TopicsConfig, t["topics"], "topics", out)
    compute = _section(ComputeConfig, t["compute"], "compute", out)
    publish_table = dict(t["publish"])
    for key in REMOVED_PUBLISH_KEYS:
        if publish_table.pop(key, None) is not None:
            reason = (
                "was removed: the error table's rows carry the retry bounds (docs/error-table.md)"
            )
            out.append(ConfigError(f"publish.{key}", reason))
    publish = _section(PublishConfig, publish_table, "publish", out)
    token = _secret(t["admin"], "token", "admin", env, out)  # first: a literal gets its reason
    admin_plain = _without(t["admin"], "token")
    admin = _section(AdminConfig, {**admin_plain, "token": token}, "admin", out)
    if token is not None and token != UNRESOLVED and not token.strip():
        key = "admin.token_env" if "token_env" in t["admin"] else "admin.token_file"
        out.append(ConfigError(key, "the admin token is empty"))
    policy = Rules().merged(_rules(t["policy"], "policy", out))
    channels = {
        account: ch
        for account, table in t["channels"].items()
        if (ch := _channel(account, table, env, out, settings_check)) is not None
    }
    skus: dict[str, dict[str, Any]] = {}
    for sku, table in t["skus"].items():
        if not isinstance(table, Mapping):
            out.append(ConfigError(f"skus.{sku}", "must be a table"))
            continue
        problem = sku_problem(sku)
        if problem is not None:
            out.append(ConfigError(f"skus.{sku}", problem))
            continue
        for key in table:
            if key != "policy":
                out.append(_unknown(f"skus.{sku}.{key}", ("policy",)))
        skus[sku] = _rules(_sub(table, "policy", f"skus.{sku}", out), f"skus.{sku}.policy", out)
    log = _section(LogConfig, t["log"], "log", out)
    problems = _unique(out)
    if problems or None in (kafka, topics, compute, publish, admin, log):
        return None, problems
    assert kafka and topics and compute and publish and admin and log  # for the type checker
    cfg = Config(
        kafka=kafka,
        topics=topics,
        compute=compute,
        policy=policy,
        channels=channels,
        skus=skus,
        log_level=log.level,
        source=source,
        publish=publish,
        admin=admin,
    )
    return cfg, []


def _channel(
    account: str,
    table: Any,
    env: Mapping[str, str],
    out: list[ConfigError],
    settings_check: SettingsCheck | None,
) -> ChannelConfig | None:
    where = f"channels.{account}"
    if not isinstance(table, Mapping):
        out.append(ConfigError(where, "must be a table"))
        return None
    platform, _, name = account.partition(":")
    if not platforms.is_known(platform) or not name:
        known = ", ".join(platforms.known())
        reason = f"an account id is '<platform>:<name>' with platform one of {known}"
        out.append(ConfigError(where, reason))
        return None
    policy = _rules(_sub(table, "policy", where, out), f"{where}.policy", out)
    checking = settings_check is not None
    settings = channel_settings(table, where, env, out, keep_unresolved=checking)
    if settings_check is not None and settings:
        for key, reason in settings_check(platform, settings):
            out.append(ConfigError(f"{where}.{key}", reason))
    return ChannelConfig(account=account, platform=platform, policy=policy, settings=settings)


# -- helpers ------------------------------------------------------------------------------

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "int",
    "float_type": "a number",
    "bool_type": "bool",
    "dict_type": "a table",
    "model_type": "a table",
}


def _section(
    model: type[Section], table: Mapping[str, Any], where: str, out: list[ConfigError]
) -> Any:
    """The section model built from ``table``, or None with every problem appended."""
    try:
        section = model.model_validate(dict(table))
    except ValidationError as e:
        hidden = {"sasl_password", "token"}  # given as <name>_env / <name>_file
        known = tuple(
            key
            for name in model.model_fields
            for key in ((f"{name}_env", f"{name}_file") if name in hidden else (name,))
        )
        for err in e.errors(include_url=False):
            key = f"{where}.{err['loc'][0]}" if err["loc"] else where
            kind = err["type"]
            got = err.get("input")
            if kind == "extra_forbidden":
                out.append(_unknown(key, known))
            elif kind == "value_error":
                out.append(ConfigError(key, str(err["ctx"]["error"])))
            elif kind == "literal_error":
                out.append(ConfigError(key, f"must be {err['ctx']['expected']}, got {got!r}"))
            elif kind in _TYPE_WORDS:
                out.append(ConfigError(key, f"must be {_TYPE_WORDS[kind]}, got {got!r}"))
            else:
                out.append(ConfigError(key, err["msg"]))
        return None
    out.extend(ConfigError(key, reason) for key, reason in section.problems())
    return section


def _secret(
    table: Mapping[str, Any], name: str, where: str, env: Mapping[str, str], out: list[ConfigError]
) -> str | None:
    try:
        return secret(table, name, where, env)
    except ConfigError as e:
        out.append(e)
        return UNRESOLVED  # reported: no second problem for the same secret


def _rules(table: Mapping[str, Any], where: str, out: list[ConfigError]) -> dict[str, Any]:
    """The valid rules of a policy layer; each bad one is appended."""
    rules: dict[str, Any] = {}
    for key, value in table.items():
        try:
            rules.update(parse_layer({key: value}))
        except RuleError as e:
            out.append(ConfigError(f"{where}.{e.key}", e.reason))
    return rules


def _sub(raw: Mapping[str, Any], key: str, where: str, out: list[ConfigError]) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        out.append(ConfigError(f"{where}.{key}".lstrip("."), "must be a table"))
        return {}
    return value


def _without(table: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``table`` without the secret ``name`` and its sources."""
    drop = {name, f"{name}_env", f"{name}_file"}
    return {k: v for k, v in table.items() if k not in drop}


def _unknown(key: str, known: tuple[str, ...]) -> ConfigError:
    return ConfigError(key, f"unknown key (known: {', '.join(sorted(known))})")


def _unique(problems: list[ConfigError]) -> list[ConfigError]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.key, p.reason) not in seen:
            seen.add((p.key, p.reason))
            out.append(p)
    return out

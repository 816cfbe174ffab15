"""Configuration (syncd.config): the example loads, every bad value names its dotted key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from syncd.config import (
    ChannelConfig,
    ComputeConfig,
    Config,
    KafkaConfig,
    TopicsConfig,
    load,
    parse,
)
from syncd.core.policy import Rules
from syncd.errors import ConfigError, SyncdError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "syncd.example.toml"

RETENTION = "compute.closed_order_retention_hours"
SASL = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"}


def bad(raw: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        parse(raw, env={} if env is None else env)
    err = ei.value
    assert str(err).startswith(f"{err.key}: ")
    assert err.code == "config_invalid"
    assert isinstance(err, SyncdError)
    return err


def write(tmp_path: Path, text: str, name: str = "syncd.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- the example and defaults -----------------------------------------------------------------


def test_example_config_loads() -> None:
    assert EXAMPLE.exists(), "config/syncd.example.toml is missing"
    cfg = load(EXAMPLE, env={})
    assert cfg.source == str(EXAMPLE)
    assert cfg.kafka.bootstrap_servers == ("127.0.0.1:9092",)
    assert cfg.kafka.security_protocol == "PLAINTEXT"
    assert cfg.kafka.sasl_password is None
    assert cfg.topics.stock == "stock.events"
    assert cfg.topics.order_lines == "syncd.order-lines"
    assert cfg.compute.retention_ms == 168 * 3_600_000
    assert cfg.compute.bucket_ms == 5 * 60_000
    assert cfg.compute.window_ms == 60 * 60_000
    assert set(cfg.channels) == {"shopee:my-main", "lazada:sg-main", "wayfair:us"}
    assert all(isinstance(c, ChannelConfig) for c in cfg.channels.values())
    assert cfg.channels["wayfair:us"].platform == "wayfair"
    assert cfg.log_level == "info"
    assert cfg.policy.safety == "velocity"
    # The layers of the example merge as documented.
    assert cfg.rules_for("lazada:sg-main", "X", None).safety == "fixed"
    assert cfg.rules_for("lazada:sg-main", "X", None).safety_units == 2
    w = cfg.rules_for("wayfair:us", "X", None)
    assert (w.safety, w.safety_percent, w.zero_below) == ("percent", 10.0, 2)
    sku = cfg.rules_for("wayfair:us", "TS-RED-M", {"share": 0.5})
    assert (sku.safety, sku.safety_units, sku.zero_below, sku.share) == ("fixed", 5, 2, 0.5)


def test_example_config_loads_with_process_environment() -> None:
    assert load(EXAMPLE).channels


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, ""), env={})
    assert cfg.kafka == KafkaConfig()
    assert cfg.topics == TopicsConfig()
    assert cfg.compute == ComputeConfig()
    assert cfg.policy == Rules()
    assert cfg.channels == {} and cfg.skus == {}


def test_full_valid_config(tmp_path: Path) -> None:
    secret_file = write(tmp_path, "s3cret\n", "pw")
    text = f"""
[kafka]
bootstrap_servers = "broker:9093"
security_protocol = "SASL_SSL"
sasl_mechanism = "PLAIN"
sasl_username = "syncd"
sasl_password_file = "{secret_file}"

[topics]
internal_prefix = "x"
create = false
desired_partitions = 12

[compute]
closed_order_retention_hours = 24
velocity_window_minutes = 120

[policy]
safety = "percent"
safety_percent = 5

[channels."shopify:eu"]
base_url = "https://example.myshopify.com"
token_env = "SHOPIFY_TOKEN"
[channels."shopify:eu".policy]
max_quantity = 100

[skus."SKU-1".policy]
share = 0.5

[log]
level = "debug"
"""
    cfg = load(write(tmp_path, text), env={"SHOPIFY_TOKEN": "tok"})
    assert cfg.kafka.bootstrap_servers == ("broker:9093",)
    assert cfg.kafka.sasl_password == "s3cret"
    assert cfg.topics.desired == "x.desired"
    assert cfg.topics.create is False
    assert cfg.compute.closed_order_retention_hours == 24.0
    assert isinstance(cfg.compute.closed_order_retention_hours, float)
    assert cfg.compute.retention_ms == 24 * 3_600_000
    ch = cfg.channels["shopify:eu"]
    assert ch.settings == {"base_url": "https://example.myshopify.com", "token": "tok"}
    assert ch.policy == {"max_quantity": 100}
    assert cfg.skus == {"SKU-1": {"share": 0.5}}
    r = cfg.rules_for("shopify:eu", "SKU-1", None)
    assert (r.safety, r.safety_percent, r.max_quantity, r.share) == ("percent", 5.0, 100, 0.5)
    assert cfg.log_level == "debug"


# -- file errors ------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path / "nope.toml", env={})
    assert ei.value.key == "<file>"
    assert "nope.toml" in ei.value.reason


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load(write(tmp_path, "[kafka\nx = 1"), env={})
    assert ei.value.key == "<file>"
    assert "not valid TOML" in ei.value.reason


# -- bad values name their key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        # unknown keys, at every level
        ({"kafak": {}}, "kafak"),
        ({"kafka": {"client": "x"}}, "kafka.client"),
        ({"topics": {"stocks": "x"}}, "topics.stocks"),
        ({"compute": {"batch_size": 1}}, "compute.batch_size"),
        ({"log": {"lvl": "info"}}, "log.lvl"),
        ({"skus": {"A": {"polcy": {}}}}, "skus.A.polcy"),
        ({"policy": {"safty": "fixed"}}, "policy.safty"),
        ({"channels": {"shopee:a": {"policy": {"sharre": 1}}}}, "channels.shopee:a.policy.sharre"),
        # wrong types
        ({"kafka": "x"}, "kafka"),
        ({"log": "info"}, "log"),
        ({"kafka": {"client_id": 5}}, "kafka.client_id"),
        ({"kafka": {"sasl_mechanism": 5}}, "kafka.sasl_mechanism"),
        ({"kafka": {"bootstrap_servers": []}}, "kafka.bootstrap_servers"),
        ({"kafka": {"bootstrap_servers": ["nohostport"]}}, "kafka.bootstrap_servers"),
        ({"kafka": {"bootstrap_servers": ["h:1", 2]}}, "kafka.bootstrap_servers"),
        ({"topics": {"create": 1}}, "topics.create"),
        ({"topics": {"stock": 1}}, "topics.stock"),
        ({"topics": {"desired_partitions": 1.0}}, "topics.desired_partitions"),
        ({"topics": {"desired_partitions": True}}, "topics.desired_partitions"),
        ({"compute": {"closed_order_retention_hours": "1"}}, RETENTION),
        ({"compute": {"closed_order_retention_hours": True}}, RETENTION),
        ({"channels": {"shopee:a": 5}}, "channels.shopee:a"),
        ({"channels": {"shopee:a": {"policy": 5}}}, "channels.shopee:a.policy"),
        ({"skus": {"A": 3}}, "skus.A"),
        ({"skus": {"A": {"policy": 3}}}, "skus.A.policy"),
        ({"channels": "x"}, "channels"),
        # out of range
        ({"topics": {"desired_partitions": 0}}, "topics.desired_partitions"),
        ({"topics": {"input_partitions": 0}}, "topics.input_partitions"),
        ({"topics": {"replication_factor": 0}}, "topics.replication_factor"),
        ({"compute": {"max_record_bytes": 0}}, "compute.max_record_bytes"),
        ({"compute": {"batch_max_records": -1}}, "compute.batch_max_records"),
        ({"compute": {"velocity_bucket_minutes": 0}}, "compute.velocity_bucket_minutes"),
        ({"compute": {"velocity_window_minutes": 4}}, "compute.velocity_window_minutes"),
        ({"log": {"level": "trace"}}, "log.level"),
        ({"kafka": {"security_protocol": "TLS"}}, "kafka.security_protocol"),
        # bad account ids
        ({"channels": {"amazon:us": {}}}, "channels.amazon:us"),
        ({"channels": {"shopee": {}}}, "channels.shopee"),
        ({"channels": {"shopee:": {}}}, "channels.shopee:"),
        ({"channels": {":main": {}}}, "channels.:main"),
        ({"channels": {"Shopee:main": {}}}, "channels.Shopee:main"),
        # bad policy rules, at every layer
        ({"policy": {"share": 1.5}}, "policy.share"),
        ({"policy": {"safety": "lots"}}, "policy.safety"),
        ({"policy": {"max_quantity": -1}}, "policy.max_quantity"),
        ({"channels": {"lazada:x": {"policy": {"safety_units": -1}}}},
         "channels.lazada:x.policy.safety_units"),
        ({"skus": {"A": {"policy": {"zero_below": 0.5}}}}, "skus.A.policy.zero_below"),
        ({"skus": {"A": {"policy": {"safety_percent": 200}}}}, "skus.A.policy.safety_percent"),
    ],
)  # fmt: skip
def test_bad_value_names_its_key(raw: dict[str, Any], key: str) -> None:
    assert bad(raw).key == key


def test_unknown_key_lists_the_known_ones() -> None:
    err = bad({"topics": {"stocks": "x"}})
    assert "unknown key" in err.reason
    assert "stock" in err.reason and "orders" in err.reason


def test_bad_rule_reason_is_kept() -> None:
    err = bad({"channels": {"shopee:a": {"policy": {"share": 2}}}})
    assert err.reason == "must be a number from 0 to 1, got 2"


def test_bad_value_in_file_names_its_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[channels."wayfair:us".policy]\nsafety_percent = 101\n')
    with pytest.raises(ConfigError) as ei:
        load(p, env={})
    assert ei.value.key == "channels.wayfair:us.policy.safety_percent"


# -- secrets ----------------------------------------------------------------------------------


def test_literal_secret_is_refused() -> None:
    err = bad({"kafka": {**SASL, "sasl_password": "hunter2"}})
    assert err.key == "kafka.sasl_password"
    assert "sasl_password_env" in err.reason
    assert "hunter2" not in str(err)


def test_literal_secret_next_to_channel_reference_is_refused() -> None:
    err = bad({"channels": {"shopee:a": {"api_key": "k", "api_key_env": "K"}}}, {"K": "k"})
    assert err.key == "channels.shopee:a.api_key"


def test_missing_env_var_names_the_key() -> None:
    err = bad({"kafka": {**SASL, "sasl_password_env": "SYNCD_PW"}})
    assert err.key == "kafka.sasl_password_env"
    assert "SYNCD_PW" in err.reason
    err = bad({"channels": {"lazada:sg": {"app_secret_env": "LZ_SECRET"}}})
    assert err.key == "channels.lazada:sg.app_secret_env"


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    err = bad({"kafka": {**SASL, "sasl_password_file": str(tmp_path / "missing")}})
    assert err.key == "kafka.sasl_password_file"
    assert "missing" in err.reason
    err = bad({"channels": {"shopee:a": {"partner_key_file": str(tmp_path)}}})  # a directory
    assert err.key == "channels.shopee:a.partner_key_file"


@pytest.mark.parametrize(
    "kafka",
    [
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password_env": "PW"},
    ],
)
def test_sasl_without_credentials_names_a_sasl_key(kafka: dict[str, str]) -> None:
    err = bad({"kafka": kafka}, {"PW": "x"})
    assert err.key in ("kafka.sasl_username", "kafka.sasl_password_env", "kafka.sasl_password")
    assert "sasl_password" in err.reason


def test_sasl_without_mechanism_names_it() -> None:
    err = bad({"kafka": {"security_protocol": "SASL_SSL", "sasl_username": "u"}})
    assert err.key == "kafka.sasl_mechanism"
    err = bad({"kafka": {**SASL, "sasl_mechanism": "GSSAPI", "sasl_password_env": "P"}}, {"P": "x"})
    assert err.key == "kafka.sasl_mechanism"


def test_secret_from_env() -> None:
    cfg = parse(
        {"kafka": {**SASL, "sasl_password_env": "SYNCD_PW"}}, env={"SYNCD_PW": "pw from env"}
    )
    assert cfg.kafka.sasl_password == "pw from env"
    assert cfg.kafka.sasl_username == "u"
    assert cfg.kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_secret_from_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", "pw-os-env")
    p = write(
        tmp_path,
        '[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "u"\nsasl_password_env = "SYNCD_TEST_PW"\n',
    )
    assert load(p).kafka.sasl_password == "pw-os-env"
    monkeypatch.delenv("SYNCD_TEST_PW")
    with pytest.raises(ConfigError) as ei:
        load(p)
    assert ei.value.key == "kafka.sasl_password_env"


def test_secret_from_file_strips_trailing_newline_only(tmp_path: Path) -> None:
    f = write(tmp_path, "  pw with spaces \n\n", "pw")
    cfg = parse({"kafka": {**SASL, "sasl_password_file": str(f)}}, env={})
    assert cfg.kafka.sasl_password == "  pw with spaces "


def test_channel_secrets_from_env_and_file(tmp_path: Path) -> None:
    f = write(tmp_path, "partner-key\n", "pk")
    cfg = parse(
        {
            "channels": {
                "shopee:a": {
                    "partner_id": 1234,
                    "partner_key_file": str(f),
                    "access_token_env": "SHOPEE_TOKEN",
                }
            }
        },
        env={"SHOPEE_TOKEN": "tok"},
    )
    assert cfg.channels["shopee:a"].settings == {
        "partner_id": 1234,
        "partner_key": "partner-key",
        "access_token": "tok",
    }


def test_kafka_password_is_not_in_repr() -> None:
    cfg = parse({"kafka": {**SASL, "sasl_password_env": "P"}}, env={"P": "hunter2-secret"})
    assert cfg.kafka.sasl_password == "hunter2-secret"
    assert "hunter2-secret" not in repr(cfg.kafka)
    assert "hunter2-secret" not in repr(cfg)


def test_bootstrap_servers_string_becomes_list() -> None:
    cfg = parse({"kafka": {"bootstrap_servers": "a:1"}}, env={})
    assert cfg.kafka.bootstrap_servers == ("a:1",)
    cfg = parse({"kafka": {"bootstrap_servers": ["a:1", "b:2"]}}, env={})
    assert cfg.kafka.bootstrap_servers == ("a:1", "b:2")


def test_config_defaults_object() -> None:
    cfg = Config()
    assert cfg.source == "<defaults>"
    assert cfg.rules_for("shopee:a", "A", None) == Rules()


# -- bugs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sasl_pasword_env", "ssl_keyfile_env", "sasl_username_file"])
def test_unknown_secret_reference_in_kafka_names_its_key(key: str) -> None:
    assert bad({"kafka": {key: "X"}}, {"X": "x"}).key == f"kafka.{key}"


@pytest.mark.parametrize(
    ("kafka", "key"),
    [
        ({"sasl_password_file": 5}, "kafka.sasl_password_file"),
        ({"sasl_password_env": ["A"]}, "kafka.sasl_password_env"),
        ({"sasl_password_env": 5}, "kafka.sasl_password_env"),
    ],
)
def test_non_string_secret_reference_names_its_key(kafka: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse({"kafka": {**SASL, **kafka}}, env=os.environ)
    assert ei.value.key == key


def test_secret_file_not_utf8_names_its_key(tmp_path: Path) -> None:
    f = tmp_path / "pw.bin"
    f.write_bytes(b"\xff\xfe\x00pw")
    assert bad({"kafka": {**SASL, "sasl_password_file": str(f)}}).key == "kafka.sasl_password_file"


@pytest.mark.parametrize("value", [5, True])
def test_bootstrap_servers_of_wrong_type_names_its_key(value: object) -> None:
    assert bad({"kafka": {"bootstrap_servers": value}}).key == "kafka.bootstrap_servers"


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_bad_retention_names_its_key(value: float) -> None:
    assert bad({"compute": {"closed_order_retention_hours": value}}).key == RETENTION


@pytest.mark.parametrize("sku", ["TS  RED", " TS-RED", "TS-RED ", "TS\tRED"])
def test_bad_sku_in_overrides_names_its_key(sku: str) -> None:
    err = bad({"skus": {sku: {"policy": {"share": 0.5}}}})
    assert err.key == f"skus.{sku}"


def test_channel_secret_is_not_in_repr() -> None:
    cfg = parse({"channels": {"shopee:a": {"partner_key_env": "K"}}}, env={"K": "hunter2-secret"})
    assert cfg.channels["shopee:a"].settings["partner_key"] == "hunter2-secret"
    assert "hunter2-secret" not in repr(cfg)


@pytest.mark.parametrize("key", ["partner_key", "app_secret", "client_secret", "access_token"])
def test_channel_secret_written_in_the_file_is_refused(key: str) -> None:
    from syncd.config import parse as _parse
    from syncd.errors import ConfigError as _ConfigError

    with pytest.raises(_ConfigError) as e:
        _parse({"channels": {"shopee:a": {key: "s3cret"}}}, env={})
    assert e.value.key == f"channels.shopee:a.{key}"
    assert "s3cret" not in str(e.value)


# -- typed models, every problem at once, lines (issue 10) --------------------------------------


def test_example_is_package_data_equal_to_the_documented_copy() -> None:
    from syncd.config import example_text

    assert example_text() == EXAMPLE.read_text(encoding="utf-8")
    assert (ROOT / "syncd" / "config" / "syncd.example.toml").read_text() == example_text()


@pytest.mark.parametrize("key", ["max_attempts", "max_retry_seconds", "backoff_initial_s"])
def test_removed_publish_keys_are_refused_naming_the_key(key: str) -> None:
    err = bad({"publish": {key: 1}})
    assert err.key == f"publish.{key}"
    assert "removed" in err.reason and "error-table" in err.reason
    assert bad({"publish": {"backoff_max_s": 10.0}}).key == "publish.backoff_max_s"


def test_every_problem_is_reported_at_once() -> None:
    from syncd.config import validate

    raw = {
        "kafak": {},
        "kafka": {"client_id": 5, "sasl_password": "hunter2"},
        "topics": {"desired_partitions": 0, "stok": "x"},
        "compute": {"velocity_window_minutes": 1},
        "publish": {"max_attempts": 3, "reconcile_share": 2.0},
        "admin": {"port": 70000, "token_env": "NOT_SET_ANYWHERE"},
        "policy": {"share": 2, "safty": "fixed"},
        "channels": {"ebay:x": {}, "shopee:a": {"partner_key": "k", "policy": {"share": -1}}},
        "skus": {"A": {"polcy": {}}, " B": {}},
        "log": {"level": "trace"},
    }
    cfg, problems = validate(raw, env={})
    assert cfg is None
    assert [p.key for p in problems] == [
        "kafak",
        "kafka.sasl_password",
        "kafka.client_id",
        "topics.desired_partitions",
        "topics.stok",
        "compute.velocity_window_minutes",
        "publish.max_attempts",
        "publish.reconcile_share",
        "admin.token_env",
        "admin.port",
        "policy.share",
        "policy.safty",
        "channels.ebay:x",
        "channels.shopee:a.policy.share",
        "channels.shopee:a.partner_key",
        "skus.A.polcy",
        "skus. B",
        "log.level",
    ]
    assert all(isinstance(p, ConfigError) and p.reason for p in problems)
    assert "hunter2" not in repr([str(p) for p in problems])
    assert validate({}, env={}) == (Config(source="<dict>"), [])


def test_channel_settings_check_is_called_per_account_with_secrets_resolved() -> None:
    from syncd.config import validate

    seen: list[tuple[str, dict[str, Any]]] = []

    def check(platform: str, settings: Any) -> list[tuple[str, str]]:
        seen.append((platform, dict(settings)))
        return [("partnerid", "unknown setting")] if "partnerid" in settings else []

    raw = {
        "channels": {
            "shopee:a": {"partnerid": 1, "partner_key_env": "PK", "policy": {"share": 0.5}},
            "lazada:b": {"app_secret_env": "MISSING"},
            "wayfair:c": {"policy": {"share": 0.5}},  # policy only: no settings to check
        }
    }
    cfg, problems = validate(raw, env={"PK": "pk"}, settings_check=check)
    assert cfg is None
    assert [(p.key, p.reason) for p in problems] == [
        ("channels.shopee:a.partnerid", "unknown setting"),
        ("channels.lazada:b.app_secret_env", "environment variable MISSING is not set"),
    ]
    assert seen[0] == ("shopee", {"partnerid": 1, "partner_key": "pk"})
    assert seen[1][0] == "lazada" and seen[1][1]["app_secret"] != "pk"  # a stand-in, no value
    assert len(seen) == 2


def test_check_file_gives_each_problem_its_line(tmp_path: Path) -> None:
    from syncd.config import check_file

    text = (
        "# syncd\n"  # 1
        "[kafka]\n"  # 2
        "client_id = 5\n"  # 3
        "\n"  # 4
        '[channels."wayfair:us".policy]\n'  # 5
        "safety_percent = 101\n"  # 6
        "[publish]\n"  # 7
        "max_attempts = 5\n"  # 8
        '[skus."A".policy]\n'  # 9
        "share = 2\n"  # 10
        "[typo]\n"  # 11
    )
    checked = check_file(write(tmp_path, text), env={})
    assert checked.config is None
    got = {p.key: checked.line(p) for p in checked.problems}
    assert got == {
        "typo": 11,
        "kafka.client_id": 3,
        "publish.max_attempts": 8,
        "channels.wayfair:us.policy.safety_percent": 6,
        "skus.A.policy.share": 10,
    }
    syntax = check_file(write(tmp_path, "[kafka]\nx = = 1\n", "bad.toml"), env={})
    assert [p.key for p in syntax.problems] == ["<file>"]
    assert syntax.line(syntax.problems[0]) == 2


def test_key_line_reads_headers_dotted_and_quoted_keys() -> None:
    from syncd.config.lines import key_line

    text = (
        "[kafka]\n"
        "bootstrap_servers = [\n"
        '  "a:1",\n'
        "]\n"
        'channels."shopee:x".partner_id = 5\n'
        "[ skus . 'A.B' . policy ]  # a comment\n"
        "share = 0.5\n"
    )
    assert key_line(text, "kafka") == 1
    assert key_line(text, "kafka.bootstrap_servers") == 2
    assert key_line(text, "kafka.channels.shopee:x.partner_id") == 5
    assert key_line(text, "skus.A.B.policy.share") == 7
    assert key_line(text, "skus.A.B") == 6  # a table: its first line
    assert key_line(text, "topics.stock") is None


def test_models_are_typed_and_frozen() -> None:
    from pydantic import ValidationError

    cfg = parse({"kafka": {"bootstrap_servers": ["a:1"]}}, env={})
    with pytest.raises(ValidationError):
        cfg.kafka.client_id = "other"  # type: ignore[misc]
    assert KafkaConfig(client_id="x").client_id == "x"
    assert TopicsConfig(internal_prefix="p").desired == "p.desired"

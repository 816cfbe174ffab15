"""No secret value ever appears in logs, metrics, the operator page, the admin API or error
messages; admin mutations need the token; the Kafka SSL/SASL settings reach the clients.

The daemon runs with every kind of secret configured (channel credentials through ``_env``,
the admin token through ``_file``, a Kafka SASL password through ``_env``; the local broker
is PLAINTEXT, so that password is loaded but not used), errors are driven on purpose (a
revoked token, 5xx answers, a refused mutation), then every output is searched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from syncd import config
from syncd.errors import ConfigError
from syncd.kafka.clients import client_settings
from syncd.testing.sandbox import start
from tests.fixtures.daemon import Daemon
from tests.fixtures.kafka import ROOT, syncd_cmd
from tests.fixtures.publish_kafka import Setup, row
from tests.fixtures.publish_kafka import produce as produce_desired
from tests.fixtures.publishing import listing_for, wait_until

PASSWORD = "kafka-pw-" + secrets.token_hex(12)
TOKEN = "admin-tok-" + secrets.token_hex(12)


def kafka_cfg(**table: Any) -> config.KafkaConfig:
    raw = {"kafka": {"sasl_password_env": "SYNCD_T_SASL", **table}}
    return config.parse(raw, env={"SYNCD_T_SASL": PASSWORD}).kafka


def test_sasl_and_ssl_settings_map_to_the_client_and_hide_the_password() -> None:
    cfg = kafka_cfg(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="syncd",
        ssl_cafile=ssl.get_default_verify_paths().cafile or "",
    )
    s = client_settings(cfg)
    assert s["security_protocol"] == "SASL_SSL"
    assert (s["sasl_mechanism"], s["sasl_plain_username"]) == ("SCRAM-SHA-512", "syncd")
    assert s["sasl_plain_password"] == PASSWORD
    assert isinstance(s["ssl_context"], ssl.SSLContext)
    assert s["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert PASSWORD not in repr(cfg) and PASSWORD not in repr(config.Config(kafka=cfg))

    plain = client_settings(
        kafka_cfg(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u")
    )
    assert "ssl_context" not in plain and plain["sasl_plain_password"] == PASSWORD
    tls = client_settings(kafka_cfg(security_protocol="SSL"))
    assert isinstance(tls["ssl_context"], ssl.SSLContext) and "sasl_mechanism" not in tls
    assert client_settings(kafka_cfg())["security_protocol"] == "PLAINTEXT"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kafka": {"sasl_password": PASSWORD}}, "kafka.sasl_password"),
        ({"admin": {"token": PASSWORD}}, "admin.token"),
        ({"channels": {"shopee:x": {"partner_key": PASSWORD}}}, "channels.shopee:x.partner_key"),
    ],
)
def test_config_errors_name_the_key_never_the_secret(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(table, env={})
    assert err.value.key == key
    assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value.context)


def test_check_config_does_not_print_a_literal_secret(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[channels."lazada:x"]\napp_secret = "{PASSWORD}"\n')
    done = subprocess.run(
        syncd_cmd(path, "check-config"),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "channels.lazada:x.app_secret" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def _fetch(port: int, path: str, method: str = "GET", token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode()}"


@pytest.mark.kafka
@pytest.mark.timeout(150)
async def test_no_secret_in_logs_metrics_pages_or_answers(
    kafka_bootstrap: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    sandboxes = [await start(p) for p in ("shopee", "lazada", "wayfair", "shopify")]
    try:
        st = Setup(tmp_path, kafka_bootstrap)
        rows = []
        for sb in sandboxes:
            creds = sb.add_account("main")
            lists = [listing_for(sb.platform, i, creds) for i in range(2)]
            for lst in lists:
                sb.add_listing("main", lst, 0)
            account = st.account(sb, "main", batch_size=1)
            rows += [row(account, lst, 5 + i) for i, lst in enumerate(lists)]
        shopee, lazada, wayfair, _shopify = sandboxes
        shopee.inject("main", "token_revoked")  # refresh fails too: reconnect action
        lazada.inject("main", "http_error", status=503)  # retried, then given up
        wayfair.inject("main", "token_expired", count=1)  # refreshed with the client secret
        token_file = tmp_path / "admin-token"
        token_file.write_text(TOKEN + "\n")
        st.env["SYNCD_T_SASL"] = PASSWORD
        extra = (
            f'[admin]\nport = 0\ntoken_file = "{token_file}"\n'
            '[kafka]\nsasl_password_env = "SYNCD_T_SASL"\n'
        )
        path, _ = st.write()
        path.write_text(path.read_text().replace("[kafka]\n", extra, 1))
        await produce_desired(config.load(path, env={**os.environ, **st.env}), rows)

        d = Daemon(path, tmp_path / "syncd.log", "--stage", "publish", env=st.env)
        daemons.append(d)
        await asyncio.to_thread(d.wait_for, lambda: d.get("/readyz")[0] == 200, 60, "ready")
        await wait_until(lambda: sandboxes[3].stats("main")["requests"] >= 2, 30, "shopify")
        await asyncio.to_thread(
            d.wait_for, lambda: '"push_failed"' in d.log.read_text(), 60, "failures"
        )
        port = d.port
        outputs = {path: _fetch(port, path) for path in ("/", "/actions", "/metrics")}
        outputs |= {path: _fetch(port, path) for path in ("/healthz", "/readyz")}
        resolve = "/actions/shopee:main%2Fx/resolve"
        outputs["wrong token"] = _fetch(port, resolve, "POST", token=TOKEN[:-1])
        outputs["right token"] = _fetch(port, resolve, "POST", token=TOKEN)
        assert outputs["wrong token"].startswith("401")
        assert outputs["right token"].startswith("404")  # authorised; no such action
        assert not outputs["/metrics"].startswith("404"), "no /metrics route"
        assert d.stop() == 0
        outputs["log"] = d.log.read_text()  # stdout and stderr of the daemon
        assert '"push_failed"' in outputs["log"] and '"admin_unauthorized"' in outputs["log"]

        values = {PASSWORD, TOKEN, *st.env.values()}
        for sb in sandboxes:  # tokens refreshed during the run are secrets too
            creds = sb.credentials("main")
            values |= {str(creds[k]) for k in config.CHANNEL_SECRETS if creds.get(k)}
        assert len(values) >= 10
        for where, text in outputs.items():
            for value in values:
                assert value not in text, f"a secret appears in {where}"
    finally:
        for sb in sandboxes:
            await sb.close()

"""syncd check-config (syncd.app.checks): everything run would refuse, every problem listed
with its key and line; --connect without a broker fails in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from dev.kafka import free_port
from syncd import cli
from syncd.app import checks
from tests.fixtures.kafka import run_syncd


def problems(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in capsys.readouterr().err.strip().splitlines()]


def test_every_problem_is_listed_with_key_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "missing-table.toml"
    path = tmp_path / "bad.toml"
    path.write_text(
        "[kafka]\n"  # 1
        "bootstrap_servers = 5\n"  # 2
        "[publish]\n"  # 3
        f'error_table = "{table}"\n'  # 4
        "max_attempts = 5\n"  # 5
        "[policy]\n"  # 6
        "share = 2\n"  # 7
        '[channels."shopee:main"]\n'  # 8
        "partnerid = 2001887\n"  # 9
        "shop_id = 14701711\n"  # 10
        'partner_key_env = "SYNCD_TEST_SURELY_UNSET_PK"\n'  # 11
        'access_token_file = "/nonexistent/syncd/token"\n'  # 12
    )
    assert cli.main(["--config", str(path), "check-config"]) == 2
    got = {(p["key"], p.get("line")) for p in problems(capsys)}
    assert got >= {  # a platform's settings check may find more (a required key missing)
        ("kafka.bootstrap_servers", 2),
        ("publish.max_attempts", 5),
        ("policy.share", 7),
        ("channels.shopee:main.partnerid", 9),
        ("channels.shopee:main.partner_key_env", 11),
        ("channels.shopee:main.access_token_file", 12),
        ("publish.error_table", 4),
    }


def test_a_typo_in_channel_settings_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[channels."shopee:main"]\npartnerid = 1\nshop_id = 2\n')
    assert cli.main(["--config", str(path), "check-config"]) == 2
    found = {str(p["key"]): p for p in problems(capsys)}  # also: required keys, if checked
    p = found["channels.shopee:main.partnerid"]
    assert (p["event"], p["line"]) == ("config_invalid", 2)
    assert p["reason"]


def test_a_broken_error_table_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.toml"
    table.write_text("[[rows]]\nid = 'x'\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[publish]\nerror_table = "{table}"\n')
    assert cli.main(["--config", str(path), "check-config"]) == 2
    [p] = problems(capsys)
    assert str(p["key"]).startswith("error-table")


def test_run_reports_every_problem_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[topics]\nstok = 'x'\n[log]\nlevel = 'loud'\n")
    assert cli.main(["--config", str(path), "run", "--until-caught-up"]) == 2
    assert [(p["key"], p["line"]) for p in problems(capsys)] == [
        ("topics.stok", 2),
        ("log.level", 4),
    ]


def test_report_prints_a_bad_error_table_once(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("")
    missing = str(tmp_path / "nope.toml")
    done = run_syncd(path, "report", "--channel", "shopee:a", "--error-table", missing)
    assert done.returncode == 2
    [p] = [orjson.loads(line) for line in done.stderr.strip().splitlines()]
    assert p["key"] == "error-table" and "does not exist" in str(p["reason"])


# -- --connect (the broker checks are in tests/integration/test_check_config.py) ----------


def test_connect_to_no_broker_fails_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[kafka]\nbootstrap_servers = ["127.0.0.1:{free_port()}"]\n')
    t0 = time.monotonic()
    done = run_syncd(path, "check-config", "--connect", timeout=90)
    assert done.returncode == 1
    assert time.monotonic() - t0 < checks.CONNECT_TIMEOUT_S + 30
    out = done.stdout + done.stderr
    assert "command_failed" in out and ("cannot reach Kafka" in out or "did not answer" in out)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ('shop_id = 2\npartner_key_env = "PK"\n', "channels.shopee:main.partner_id"),  # required
        ('partner_id = 1\nshop_id = 2\npartner_key_env = "PK"\nrate_per_s = "fast"\n',
         "channels.shopee:main.rate_per_s"),
        ('partner_id = 1\nshop_id = 2\npartner_key_env = "PK"\nbatch_size = 0\n',
         "channels.shopee:main.batch_size"),
    ],
)  # fmt: skip
def test_what_only_building_the_accounts_finds_is_reported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    settings: str,
    key: str,
) -> None:
    monkeypatch.setenv("PK", "partner-key")
    path = tmp_path / "c.toml"
    path.write_text(f'[channels."shopee:main"]\n{settings}')
    assert cli.main(["--config", str(path), "check-config"]) == 2
    assert key in {p["key"] for p in problems(capsys)}
    good = tmp_path / "good.toml"
    good.write_text(
        '[channels."shopee:main"]\npartner_id = 1\nshop_id = 2\npartner_key_env = "PK"\n'
    )
    checked, found = checks.check(str(good))
    assert checked.config is not None and found == []

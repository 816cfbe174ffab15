"""The command line: check-config names the bad key; inspect explains a quantity term by term."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from dev import sample
from syncd import cli
from syncd.compute.stage import ComputeStage
from syncd.tools import views
from tests.fixtures.kafka import create_inputs, latest, produce, run_syncd, write_config


def test_check_config_ok() -> None:
    done = run_syncd(Path("config/syncd.example.toml"), "check-config")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: config/syncd.example.toml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[kafka]\nbootstrap_servers = 5\n", "kafka.bootstrap_servers"),
        ("[policy]\nshare = 2\n", "policy.share"),
        ("[topics]\nstok = 'x'\n", "topics.stok"),
        ('[channels."ebay:x"]\n', "channels.ebay:x"),
        ("[kafka\n", "<file>"),
    ],
)
def test_check_config_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main(["--config", str(path), "check-config"]) == 2
    err = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert err["event"] == "config_invalid"
    assert err["key"] == key
    assert err["reason"]


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    assert cli.main(["--config", str(tmp_path / "nope.toml"), "check-config"]) == 2


@pytest.mark.kafka
async def test_inspect_explains_the_emitted_quantity(kafka_bootstrap: str, tmp_path: Path) -> None:
    path, cfg = write_config(tmp_path, kafka_bootstrap)
    await create_inputs(cfg)
    await produce(cfg, sample.catalog(5) + list(sample.events(400, 5, seed=9)))
    await asyncio.wait_for(ComputeStage(cfg, until_caught_up=True).run(), 60)
    desired = {
        k.decode(): orjson.loads(v)["quantity"]
        for k, v in (await latest(cfg, cfg.topics.desired)).items()
    }
    view = await views.inspect(cfg, sample.sku_name(2))
    assert view["known"] and len(view["listings"]) == 3
    for lst in view["listings"]:
        terms = dict(lst["terms"])
        assert list(terms) == [
            "on_hand",
            "reserved",
            "held_by_others",
            "available",
            "buffer",
            "after_buffer",
            "threshold",
            "share",
            "shown",
            "unpaid_minimum",
            "sent",
        ]
        assert lst["quantity"] == desired[lst["key"]]
        assert terms["sent"] == f"= {lst['quantity']}"
        on_hand = int(terms["on_hand"].split()[0])
        reserved = int(terms["reserved"].split()[1])
        assert terms["available"] == f"= {on_hand - reserved}"
    # The command prints the same, as text.
    done = run_syncd(path, "inspect", sample.sku_name(2))
    assert done.returncode == 0, done.stderr
    assert "on_hand" in done.stdout and "safety stock" in done.stdout
    unknown = run_syncd(path, "inspect", "NO-SUCH-SKU")
    assert "no state yet" in unknown.stdout

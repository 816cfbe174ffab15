"""Support reports: SKU linting (``syncd lint-skus``) and failing listings (``syncd report``).

Pure tests for the row building, then one test against the real broker that writes
catalog records (one with a bad SKU, which the decoder rejects) and push-results
records, and runs both commands as processes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dev import sample
from dev.sample import Rec
from syncd.config import error_table as errortable
from syncd.tools import reports
from syncd.tools.reports import Attempt, Place
from tests.fixtures.kafka import create_inputs, produce, run_syncd, write_config

ROOT = Path(__file__).resolve().parents[3]
TABLE = errortable.load(ROOT / "syncd" / "config" / "error-table.toml")
T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z


def _linked(sku: object, ref: int = 1, channel: str = "shopee:my-main") -> bytes:
    return orjson.dumps(
        {
            "type": "listing.linked",
            "event_id": f"e-{ref}",
            "channel": channel,
            "listing": {"item_id": ref},
            "sku": sku,
        }
    )


# -- lint-skus ------------------------------------------------------------------------


def test_lint_catalog_finds_bad_skus_only_in_linked_records() -> None:
    unlinked = orjson.dumps(
        {"type": "listing.unlinked", "event_id": "u", "channel": "shopee:a", "listing_ref": "x"}
    )
    records: dict[bytes, bytes | None] = {
        b"k1": _linked("TS  RED"),
        b"k0": _linked(" TS-BLUE\t"),
        b"k2": _linked("TS-GREEN"),
        b"k3": None,
        b"k4": unlinked,
        b"k5": b"not json",
        b"k6": _linked(12),
        b"k7": b"[1, 2]",
    }
    found = reports.lint_catalog(records)
    assert found == [
        (" TS-BLUE\t", Place("catalog", "k0")),
        ("TS  RED", Place("catalog", "k1")),
    ]


def test_lint_skus_merges_places_and_gives_the_fix() -> None:
    records: dict[bytes, bytes | None] = {
        b"shopee:a/1": _linked("TS  RED"),
        b"lazada:b/2": _linked("TS  RED", 2, "lazada:b"),
        b"shopee:a/3": _linked("\t"),
    }
    defects = reports.lint_skus(records, ["TS-RED", "TS  RED"])
    assert [d.sku for d in defects] == ["\t", "TS  RED"]
    blank, red = defects
    assert blank.fix == "" and "no visible characters" in blank.problem
    assert red.fix == "TS RED"
    assert red.problem.startswith("SKU 'TS  RED' has 2 consecutive spaces at position 2")
    assert red.places == (
        Place("catalog", "lazada:b/2"),
        Place("catalog", "shopee:a/1"),
        Place("config", "skus.TS  RED"),
    )
    assert red.as_dict()["places"][2] == {"source": "config", "key": "skus.TS  RED"}
    text = reports.format_defects(defects, 5)
    assert "  fix: change it to 'TS RED'" in text
    assert "  fix: give the product's real code" in text
    assert "  in catalog record lazada:b/2" in text
    assert "  in config key skus.TS  RED" in text
    assert text.endswith("2 defective SKUs (5 checked)")


def test_lint_clean() -> None:
    assert reports.lint_skus({b"k": _linked("TS-RED M")}, ["TS-RED"]) == []
    assert reports.lint_config(["A B", "Ärmel-42"]) == []
    assert reports.format_defects([], 3).startswith("ok: no defective SKU (3 ")


# -- report ---------------------------------------------------------------------------


def _result(
    ref: str,
    ok: bool,
    *,
    account: str = "shopee:my-main",
    sku: str = "TS-RED",
    code: str | None = None,
    message: str | None = None,
    http_status: int | None = 200,
    attempt: int = 1,
) -> dict[str, Any]:
    return {
        "account": account,
        "listing_ref": ref,
        "sku": sku,
        "quantity": 5,
        "ok": ok,
        "attempt": attempt,
        "http_status": http_status,
        "code": code,
        "message": message,
        "latency_ms": 12.5,
        "source_ts": T0,
        "acked_at": T0 if ok else None,
        "final": True,
        "retriable": False,
    }


NOT_FOUND: dict[str, Any] = {"code": "product.error_item_not_found", "message": "item not found"}
BUSY: dict[str, Any] = {
    "code": "error_server",
    "message": "Too many requests, slow down",
    "http_status": 429,
}


def _history() -> list[tuple[dict[str, Any], int]]:
    """(value, Kafka timestamp) in write order."""
    return [
        (_result("A", False, **NOT_FOUND), T0),
        (_result("B", False, sku="TS-BLUE", **BUSY), T0 + 500),
        (_result("A", False, attempt=2, **NOT_FOUND), T0 + 1000),
        (_result("B", True, sku="TS-BLUE"), T0 + 2000),
        (_result("C", True, sku="TS-AAA"), T0 + 2000),
        (_result("C", False, sku="TS-AAA", **BUSY), T0 + 3000),
        (_result("A", True, account="lazada:x"), T0 + 3000),
        (_result("D", False, account="lazada:x", code="E006"), T0 + 3000),
    ]


def test_failing_rows_newest_attempt_decides() -> None:
    attempts = [Attempt(v, ts) for v, ts in _history()]
    rows = reports.failing_rows(attempts, "shopee:my-main", TABLE)
    assert rows == [
        {
            "sku": "TS-AAA",
            "listing": "C",
            "class": "retry",
            "code": "error_server",
            "last_error": "Too many requests, slow down",
            "first_seen": "2026-11-18T11:06:43.000Z",
            "last_seen": "2026-11-18T11:06:43.000Z",
            "attempts": 1,
        },
        {
            "sku": "TS-RED",
            "listing": "A",
            "class": "manual",
            "code": "product.error_item_not_found",
            "last_error": "item not found",
            "first_seen": "2026-11-18T11:06:40.000Z",
            "last_seen": "2026-11-18T11:06:41.000Z",
            "attempts": 2,
        },
    ]
    lazada = reports.failing_rows(attempts, "lazada:x", TABLE)
    assert [(r["listing"], r["class"]) for r in lazada] == [("D", "retry")]
    assert reports.failing_rows(attempts, "shopify:none", TABLE) == []
    unknown = reports.failing_rows(
        [Attempt(_result("Z", False, account="ebay:x"), T0)], "ebay:x", TABLE
    )
    assert unknown[0]["class"] == "unknown platform"


def test_attempt_reads_like_an_outcome() -> None:
    a = Attempt({"http_status": True, "code": 5, "message": None}, T0)
    assert (a.http_status, a.code, a.message, a.retry_after_s) == (None, None, None, None)
    decision = TABLE.classify("shopify", Attempt(_result("x", False, http_status=401), T0))
    assert decision.error_class == "refresh-auth"


def test_rows_to_csv_round_trips() -> None:
    rows = reports.failing_rows([Attempt(v, ts) for v, ts in _history()], "shopee:my-main", TABLE)
    rows[0]["last_error"] = 'a "quoted", multi\nline message'
    text = reports.rows_to_csv(rows)
    assert text.splitlines()[0] == ",".join(reports.REPORT_COLUMNS)
    back = list(csv.DictReader(io.StringIO(text)))
    assert back == [{k: str(v) for k, v in r.items()} for r in rows]
    assert reports.rows_to_csv([]) == ",".join(reports.REPORT_COLUMNS) + "\n"


# -- against the broker -------------------------------------------------------------


@pytest.mark.kafka
async def test_lint_skus_and_report_commands(kafka_bootstrap: str, tmp_path: Path) -> None:
    override = '[skus."TS-RED".policy]\nsafety = "fixed"\nsafety_units = 2\n'
    path, cfg = write_config(tmp_path, kafka_bootstrap, extra=override)
    await create_inputs(cfg)
    bad_key = b'shopee:my-main/{"item_id":777}'
    gone_key = b'shopee:my-main/{"item_id":778}'
    unlinked = orjson.dumps(
        {
            "type": "listing.unlinked",
            "event_id": "u-778",
            "channel": "shopee:my-main",
            "listing": {"item_id": 778},
        }
    )
    await produce(
        cfg,
        [
            *sample.catalog(3),
            Rec("catalog", bad_key, _linked("TS  RED", 777)),
            Rec("catalog", gone_key, _linked("GONE ", 778)),
            Rec("catalog", gone_key, unlinked),
        ],
    )
    done = run_syncd(path, "lint-skus")
    assert done.returncode == 1, done.stderr
    assert "SKU 'TS  RED' has 2 consecutive spaces at position 2" in done.stdout
    assert "  fix: change it to 'TS RED'" in done.stdout
    assert f"  in catalog record {bad_key.decode()}" in done.stdout
    assert "GONE" not in done.stdout  # its newest record unlinks it
    assert done.stdout.strip().endswith("1 defective SKU (12 checked)")
    as_json = run_syncd(path, "lint-skus", "--json")
    assert as_json.returncode == 1, as_json.stderr
    out = orjson.loads(as_json.stdout)
    assert out["catalog_records"] == 11 and out["config_skus"] == 1
    assert [(d["sku"], d["fix"], d["places"]) for d in out["defects"]] == [
        ("TS  RED", "TS RED", [{"source": "catalog", "key": bad_key.decode()}])
    ]

    # A clean catalog passes.
    clean_path, clean_cfg = write_config(tmp_path, kafka_bootstrap)
    await create_inputs(clean_cfg)
    await produce(clean_cfg, sample.catalog(2))
    clean = run_syncd(clean_path, "lint-skus")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.startswith("ok: no defective SKU")

    # report: push-results written as the publisher does (key <account>/<ref>).
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(cfg.topics.push_results, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value, ts in _history():
            key = f"{value['account']}/{value['listing_ref']}".encode()
            await producer.send_and_wait(
                cfg.topics.push_results, orjson.dumps(value), key=key, timestamp_ms=ts
            )
    finally:
        await producer.stop()
    expected = reports.failing_rows(
        [Attempt(v, ts) for v, ts in _history()], "shopee:my-main", TABLE
    )
    report = run_syncd(path, "report", "--channel", "shopee:my-main", "--format", "csv")
    assert report.returncode == 0, report.stderr
    assert list(csv.DictReader(io.StringIO(report.stdout))) == [
        {k: str(v) for k, v in r.items()} for r in expected
    ]
    as_json = run_syncd(path, "report", "--channel", "shopee:my-main", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert orjson.loads(as_json.stdout) == expected
    missing = run_syncd(
        path, "report", "--channel", "shopee:my-main", "--error-table", str(tmp_path / "no.toml")
    )
    assert missing.returncode == 2
    assert orjson.loads(missing.stderr.strip().splitlines()[-1])["key"] == "error-table"

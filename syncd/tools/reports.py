"""Support reports: defective SKUs (``syncd lint-skus``) and failing listings (``syncd report``).

``syncd lint-skus`` reads the compacted view of the whole catalog topic as raw
records, so it also sees the ``listing.linked`` records the decoder rejects for a
bad SKU (those never reach the catalog table), and the SKU overrides of the
configuration (``[skus."<SKU>"]``; :func:`syncd.config.load` already refuses a
defective one, so they are checked here only for completeness). Each defective SKU
is listed once with every place it appears and the exact fix
(:func:`syncd.core.skus.suggest_fix`).

``syncd report --channel ACCOUNT`` reads every record of the push-results topic
(one per attempt, :func:`syncd.publish.pusher.push_result`) and gives one row per listing
of that account whose newest attempt failed: the SKU, the listing ref, the class
the error table gives the newest failure, its code and message, when the current
run of failures started and when it was last seen (ISO 8601 UTC, from the records'
Kafka timestamps) and how many failed attempts that run holds. What a support
ticket to a platform needs.

The row building (:func:`lint_catalog`, :func:`lint_config`, :func:`failing_rows`)
is pure; :func:`read_catalog_raw` and :func:`read_push_results` are the only I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from syncd.config import Config
from syncd.core.errortable import ErrorTable
from syncd.core.skus import sku_problem, suggest_fix
from syncd.kafka.clients import client_settings
from syncd.kafka.reading import read_to_end
from syncd.tools import views

__all__ = [
    "REPORT_COLUMNS",
    "Attempt",
    "Place",
    "SkuDefect",
    "failing_rows",
    "format_defects",
    "lint_catalog",
    "lint_config",
    "lint_skus",
    "merge_defects",
    "read_catalog_raw",
    "read_push_results",
    "rows_to_csv",
]

REPORT_COLUMNS = (
    "sku",
    "listing",
    "class",
    "code",
    "last_error",
    "first_seen",
    "last_seen",
    "attempts",
)


# -- SKU hygiene -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    """Where a SKU appears: ``source`` is ``catalog`` (key: the record key) or
    ``config`` (key: the configuration key, ``skus.<SKU>``)."""

    source: str
    key: str


@dataclass(frozen=True, slots=True)
class SkuDefect:
    """One defective SKU, what is wrong with it, the fix and every place it appears."""

    sku: str
    problem: str
    fix: str
    """The likely intended code; empty when the SKU has no visible characters."""
    places: tuple[Place, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "problem": self.problem,
            "fix": self.fix,
            "places": [{"source": p.source, "key": p.key} for p in self.places],
        }


def _catalog_sku(value: bytes | None) -> str | None:
    """The SKU of a ``listing.linked`` record value, else None (tombstones, unlinks,
    undecodable values and non-string SKUs are other dead-letter reasons)."""
    if value is None:
        return None
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(d, dict) or d.get("type") != "listing.linked":
        return None
    sku = d.get("sku")
    return sku if isinstance(sku, str) else None


def lint_catalog(records: Mapping[bytes, bytes | None]) -> list[tuple[str, Place]]:
    """The defective SKUs of a compacted catalog view (record key -> newest value),
    each with its place, in record-key order."""
    out = []
    for key in sorted(records):
        sku = _catalog_sku(records[key])
        if sku is not None and sku_problem(sku) is not None:
            out.append((sku, Place("catalog", key.decode(errors="replace"))))
    return out


def lint_config(skus: Iterable[str]) -> list[tuple[str, Place]]:
    """The defective SKUs among the configuration's SKU overrides."""
    return [(s, Place("config", f"skus.{s}")) for s in skus if sku_problem(s) is not None]


def merge_defects(found: Iterable[tuple[str, Place]]) -> list[SkuDefect]:
    """One :class:`SkuDefect` per SKU (sorted by SKU), its places in the order found."""
    places: dict[str, list[Place]] = {}
    for sku, place in found:
        places.setdefault(sku, []).append(place)
    out = []
    for sku in sorted(places):
        problem = sku_problem(sku)
        assert problem is not None
        out.append(SkuDefect(sku, problem, suggest_fix(sku), tuple(places[sku])))
    return out


def lint_skus(catalog: Mapping[bytes, bytes | None], config_skus: Iterable[str]) -> list[SkuDefect]:
    """Every defective SKU of the catalog view and of the configuration."""
    return merge_defects([*lint_catalog(catalog), *lint_config(config_skus)])


def format_defects(defects: Sequence[SkuDefect], checked: int) -> str:
    """The text ``syncd lint-skus`` prints (``checked``: catalog records and config
    SKUs looked at)."""
    if not defects:
        return f"ok: no defective SKU ({checked} catalog records and configured SKUs checked)"
    lines = []
    for d in defects:
        lines.append(d.problem)
        fix = f"change it to {d.fix!r}" if d.fix else "give the product's real code"
        lines.append(f"  fix: {fix}")
        for p in d.places:
            where = "catalog record" if p.source == "catalog" else "config key"
            lines.append(f"  in {where} {p.key}")
    n = len(defects)
    lines.append(f"{n} defective SKU{'s' if n != 1 else ''} ({checked} checked)")
    return "\n".join(lines)


async def read_catalog_raw(cfg: Config) -> dict[bytes, bytes | None]:
    """The compacted view of the whole catalog topic, undecoded."""
    n = await views.partition_count(cfg, cfg.topics.catalog)
    return await views.read_latest(cfg, cfg.topics.catalog, list(range(n)))


# -- failing listings -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One push-results record: its value (``push_result``) and its Kafka timestamp.

    Also the outcome-like object :meth:`ErrorTable.classify` reads."""

    value: Mapping[str, Any]
    at_ms: int

    @property
    def http_status(self) -> int | None:
        s = self.value.get("http_status")
        return s if isinstance(s, int) and not isinstance(s, bool) else None

    @property
    def code(self) -> str | None:
        c = self.value.get("code")
        return c if isinstance(c, str) else None

    @property
    def message(self) -> str | None:
        m = self.value.get("message")
        return m if isinstance(m, str) else None

    @property
    def retry_after_s(self) -> float | None:
        return None


def _iso(ms: int) -> str:
    """``2026-11-18T11:06:40.000Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def failing_rows(
    attempts: Iterable[Attempt], account: str, table: ErrorTable
) -> list[dict[str, Any]]:
    """One row (:data:`REPORT_COLUMNS`) per listing of ``account`` whose newest attempt
    failed, sorted by SKU then listing.

    ``attempts`` come in each listing's write order (a listing's records share one
    partition). ``first_seen`` is the first failure after the listing's last success,
    ``attempts`` the failures since then; ``class`` is the error table's class of the
    newest failure (``unknown platform`` when the account's platform is not known)."""
    per_listing: dict[str, list[Attempt]] = {}
    for a in attempts:
        ref = a.value.get("listing_ref")
        if a.value.get("account") != account or not isinstance(ref, str):
            continue
        run = per_listing.setdefault(ref, [])
        if a.value.get("ok") is True:
            run.clear()
        else:
            run.append(a)
    platform = account.split(":", 1)[0]
    rows = []
    for ref, run in per_listing.items():
        if not run:
            continue
        last = run[-1]
        sku = last.value.get("sku")
        sku = sku if isinstance(sku, str) else ""
        try:
            cls: str = table.classify(
                platform, last, sku=sku, listing=ref, account=account
            ).error_class
        except ValueError:
            cls = "unknown platform"
        rows.append(
            {
                "sku": sku,
                "listing": ref,
                "class": cls,
                "code": last.code or "",
                "last_error": last.message or "",
                "first_seen": _iso(run[0].at_ms),
                "last_seen": _iso(last.at_ms),
                "attempts": len(run),
            }
        )
    return sorted(rows, key=lambda r: (r["sku"], r["listing"]))


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV with a header line (:data:`REPORT_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


async def read_push_results(cfg: Config) -> list[Attempt]:
    """Every record of the push-results topic, each partition in offset order
    (undecodable values are skipped)."""
    topic = cfg.topics.push_results
    n = await views.partition_count(cfg, topic)
    consumer = AIOKafkaConsumer(**client_settings(cfg.kafka), enable_auto_commit=False)
    await consumer.start()
    out = []
    try:
        tps = [TopicPartition(topic, p) for p in range(n)]
        async for rec in read_to_end(consumer, tps):
            if rec.value is None:
                continue
            try:
                value = orjson.loads(rec.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(Attempt(value, int(rec.timestamp)))
    finally:
        await consumer.stop()
    return out

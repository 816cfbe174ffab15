"""The ``syncd`` command line.

| command | what it does |
|---|---|
| ``syncd run`` | run the daemon (``--stage``, ``--until-caught-up``, ``--max-events N``) |
| ``syncd check-config`` | check all ``run`` would: 0 ok, 2 invalid (``--connect``: topics too) |
| ``syncd inspect SKU`` | a SKU's state and each listing's quantity, term by term |
| ``syncd listings`` | every listing's desired and acknowledged quantity |
| ``syncd sandbox`` | run local marketplace sandboxes (``--sandbox-config FILE``) |
| ``syncd lint-skus`` | defective SKUs in the catalog and config, with the fix (exit 1 if any) |
| ``syncd report`` | failing listings of ``--channel ACCOUNT`` (``--format csv`` or ``json``) |

The configuration file is ``--config PATH``, else ``$SYNCD_CONFIG``, else
``/etc/syncd/syncd.toml``. Exit codes: 0 ok, 1 runtime failure, 2 bad
configuration or usage. A bad configuration is reported on stderr, one JSON line per
problem (``config_invalid`` with ``key``, ``reason`` and, when known, ``line``).

This module parses arguments and dispatches; the daemon is :mod:`syncd.app.daemon`,
the checks of ``check-config`` are :mod:`syncd.app.checks`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

import orjson
import structlog

from syncd import __version__, config
from syncd.errors import ConfigError, SyncdError
from syncd.obs import logs

log = structlog.get_logger("syncd.cli")

COMMANDS = ("run", "check-config", "inspect", "listings", "sandbox", "lint-skus", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", help="configuration file (TOML)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once every input partition is read to its end",
    )
    run.add_argument("--max-events", type=int, help="stop after this many input events")
    run.add_argument(
        "--stage",
        choices=("all", "compute", "publish"),
        default="all",
        help="run both stages (default) or one, to scale them on their own",
    )
    chk = sub.add_parser("check-config", help="check everything run would, and exit")
    chk.add_argument(
        "--connect",
        action="store_true",
        help="also reach the broker: does each of syncd's topics exist, rightly partitioned?",
    )
    insp = sub.add_parser("inspect", help="explain a SKU's quantities term by term")
    insp.add_argument("sku")
    insp.add_argument("--json", action="store_true", help="print JSON instead of text")
    lst = sub.add_parser("listings", help="desired and acknowledged quantity of every listing")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sb = sub.add_parser("sandbox", help="run local marketplace sandboxes (for demos and tests)")
    sb.add_argument("--sandbox-config", required=True, help="sandbox TOML file")
    lint = sub.add_parser("lint-skus", help="list defective SKUs (catalog, config) with the fix")
    lint.add_argument("--json", action="store_true", help="print JSON instead of text")
    rep = sub.add_parser("report", help="failing listings of one channel account")
    rep.add_argument("--channel", required=True, help="channel account, <platform>:<name>")
    rep.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    rep.add_argument(
        "--error-table",
        default="",
        help="error table file (default: the shipped table)",
    )
    return parser


def _config_path(arg: str | None) -> str:
    return arg or os.environ.get("SYNCD_CONFIG") or "/etc/syncd/syncd.toml"


def report_invalid(
    problems: Sequence[ConfigError], line: Callable[[ConfigError], int | None] | None = None
) -> int:
    """Print each problem as a ``config_invalid`` JSON line on stderr; the exit code (2)."""
    for e in problems:
        event: dict[str, object] = {
            "level": "error",
            "event": "config_invalid",
            "key": e.key,
            "reason": e.reason,
        }
        at = line(e) if line is not None else None
        if at is not None:
            event["line"] = at
        print(orjson.dumps(event).decode(), file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":  # needs no syncd configuration
        from syncd.testing.sandbox.__main__ import main as sandbox_main

        return sandbox_main(["--config", args.sandbox_config])
    if args.command == "check-config":
        return _check_config(_config_path(args.config), args.connect)
    checked = config.check_file(_config_path(args.config))
    if checked.config is None:
        return report_invalid(checked.problems, checked.line)
    cfg = checked.config
    logs.configure(cfg.log_level)
    try:
        if args.command == "run":
            from syncd.app import daemon

            return asyncio.run(daemon.run(cfg, args.stage, args.until_caught_up, args.max_events))
        if args.command == "inspect":
            from syncd.tools import views

            view = asyncio.run(views.inspect(cfg, args.sku))
            print(orjson.dumps(view).decode() if args.json else views.format_inspect(view))
            return 0
        if args.command == "listings":
            from syncd.tools import views

            rows = asyncio.run(views.listings(cfg))
            if args.json:
                print(orjson.dumps(rows).decode())
            else:
                print(f"{'ACCOUNT':<22} {'DESIRED':>7} {'ACKED':>7}  {'SKU':<16} LISTING")
                for r in rows:
                    acked = "-" if r["acked"] is None else r["acked"]
                    print(
                        f"{r['account']:<22} {r['desired']:>7} {acked:>7}  {r['sku']:<16}"
                        f" {r['listing']}"
                    )
            return 0
        if args.command == "lint-skus":
            from syncd.tools import reports

            raw = asyncio.run(reports.read_catalog_raw(cfg))
            defects = reports.lint_skus(raw, cfg.skus)
            if args.json:
                out = {
                    "defects": [d.as_dict() for d in defects],
                    "catalog_records": len(raw),
                    "config_skus": len(cfg.skus),
                }
                print(orjson.dumps(out).decode())
            else:
                print(reports.format_defects(defects, len(raw) + len(cfg.skus)))
            return 1 if defects else 0
        if args.command == "report":
            from syncd.config import error_table as errortable
            from syncd.tools import reports

            try:
                table = errortable.load(args.error_table)
            except ConfigError as e:
                return report_invalid([e])
            attempts = asyncio.run(reports.read_push_results(cfg))
            rows = reports.failing_rows(attempts, args.channel, table)
            if args.format == "json":
                print(orjson.dumps(rows).decode())
            else:
                sys.stdout.write(reports.rows_to_csv(rows))
            return 0
    except SyncdError as e:
        log.error("command_failed", command=args.command, code=e.code, error=e.message)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands


def _check_config(path: str, connect: bool) -> int:
    from syncd.app import checks

    checked, problems = checks.check(path)
    if problems or checked.config is None:
        return report_invalid(problems, checked.line)
    cfg = checked.config
    logs.configure(cfg.log_level)
    print(
        f"ok: {cfg.source}: {len(cfg.channels)} channel accounts,"
        f" {len(cfg.skus)} SKU overrides, kafka {','.join(cfg.kafka.bootstrap_servers)}"
    )
    if not connect:
        return 0
    try:
        topics = asyncio.run(checks.check_topics(cfg))
    except SyncdError as e:
        log.error("command_failed", command="check-config", code=e.code, error=e.message)
        return 1
    for t in topics:
        print(t.line())
    return 1 if any(t.problem for t in topics) else 0


if __name__ == "__main__":
    sys.exit(main())

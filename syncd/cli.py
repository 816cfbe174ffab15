"""The ``syncd`` command line.

| command | what it does |
|---|---|
| ``syncd run`` | run the daemon (``--stage``, ``--until-caught-up``, ``--max-events N``) |
| ``syncd check-config`` | validate the configuration and exit (0 ok, 2 invalid) |
| ``syncd inspect SKU`` | a SKU's state and each listing's quantity, term by term |
| ``syncd listings`` | every listing's desired and acknowledged quantity |
| ``syncd sandbox`` | run local marketplace sandboxes (``--sandbox-config FILE``) |
| ``syncd lint-skus`` | defective SKUs in the catalog and config, with the fix (exit 1 if any) |
| ``syncd report`` | failing listings of ``--channel ACCOUNT`` (``--format csv`` or ``json``) |

The configuration file is ``--config PATH``, else ``$SYNCD_CONFIG``, else
``/etc/syncd/syncd.toml``. Exit codes: 0 ok, 1 runtime failure, 2 bad
configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

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
    sub.add_parser("check-config", help="validate the configuration and exit")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":  # needs no syncd configuration
        from syncd.testing.sandbox.__main__ import main as sandbox_main

        return sandbox_main(["--config", args.sandbox_config])
    try:
        cfg = config.load(_config_path(args.config))
    except ConfigError as e:
        print(
            orjson.dumps(
                {"level": "error", "event": "config_invalid", "key": e.key, "reason": e.reason}
            ).decode(),
            file=sys.stderr,
        )
        return 2
    logs.configure(cfg.log_level)
    try:
        if args.command == "check-config":
            print(
                f"ok: {cfg.source}: {len(cfg.channels)} channel accounts,"
                f" {len(cfg.skus)} SKU overrides, kafka {','.join(cfg.kafka.bootstrap_servers)}"
            )
            return 0
        if args.command == "run":
            return asyncio.run(_run(cfg, args.stage, args.until_caught_up, args.max_events))
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
                print(
                    orjson.dumps(
                        {
                            "level": "error",
                            "event": "config_invalid",
                            "key": e.key,
                            "reason": e.reason,
                        }
                    ).decode(),
                    file=sys.stderr,
                )
                return 2
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


async def _run(
    cfg: config.Config, stage: str, until_caught_up: bool, max_events: int | None
) -> int:
    """Run the stages. Bounded runs go stage by stage: compute to its end, then publish.

    Unbounded runs also serve the admin server (health, metrics, actions) and talk to
    systemd (syncd.obs.notify). SIGTERM/SIGINT stop the stages in order (docs/operations.md);
    SIGHUP reloads the configuration and the error table.
    """
    from syncd.compute.stage import ComputeService
    from syncd.obs.health import Health
    from syncd.obs.notify import Notifier
    from syncd.publish.stage import PublishService

    bounded = until_caught_up or max_events is not None
    health = Health()
    stages: list[ComputeService | PublishService] = []
    if stage in ("all", "compute"):
        stages.append(
            ComputeService(
                cfg,
                until_caught_up=until_caught_up,
                max_events=max_events,
                health=health.stage("compute"),
            )
        )
    if stage in ("all", "publish"):
        stages.append(
            PublishService(
                cfg,
                until_caught_up=until_caught_up,
                max_records=max_events,
                health=health.stage("publish"),
            )
        )
    publishers = [s for s in stages if isinstance(s, PublishService)]
    notifier = Notifier.from_env() if not bounded else Notifier(None)
    admin = None

    def stop(sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name, stop_deadline_s=cfg.publish.stop_deadline_s)
        health.stopping = True
        notifier.send(STOPPING="1", STATUS="stopping")
        for s in stages:
            s.request_stop()

    def reload() -> None:
        nonlocal cfg
        try:
            new = config.load(cfg.source)
        except ConfigError as e:  # keep running on the old configuration
            log.error("config_reload_failed", config=cfg.source, key=e.key, reason=e.reason)
        else:
            cfg, live, restart = config.reload_plan(cfg, new)
            logs.set_level(cfg.log_level)
            for s in stages:
                if isinstance(s, ComputeService):
                    s.use_rules(cfg)
                else:
                    s.cfg = cfg
                    s.table_path = cfg.publish.error_table
            if admin is not None:
                admin.cfg = cfg.admin
            log.info("config_reloaded", config=cfg.source, live=live, needs_restart=restart)
        for p in publishers:  # a broken table keeps the old one and logs why
            p.reload_table()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("syncd_starting", version=__version__, config=cfg.source, stage=stage)
    if bounded:  # batch jobs: no admin server, no systemd
        for s in stages:
            await s.run()
        return 0
    from syncd.app.admin import Admin

    admin = Admin(cfg.admin, publishers, health)
    await admin.start()
    tasks = [asyncio.create_task(s.run(), name=f"stage-{s.health.name}") for s in stages]
    for s, task in zip(stages, tasks, strict=True):
        s.health.task = task
    notify = asyncio.create_task(notifier.run(lambda: health.ready()[0], lambda: health.alive()[0]))
    try:
        _, running = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if running:  # a stage failed: stop the others in order before failing
            for s in stages:
                s.request_stop()
            await asyncio.wait(running)
        for task in tasks:
            task.result()
    finally:
        notify.cancel()
        notifier.send(STOPPING="1", STATUS="stopped")
        notifier.close()
        await admin.stop()
    log.info("syncd_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

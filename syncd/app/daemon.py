"""The daemon supervisor behind ``syncd run``: stages, signals, reload, admin, systemd.

Owns the process lifecycle: building the compute and publish stages, stopping them in
order on SIGTERM/SIGINT (docs/operations.md), reloading the configuration and the
error table on SIGHUP (:mod:`syncd.config.reload` says what changes live), serving the
admin server and talking to systemd (:mod:`syncd.obs.notify`).
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from syncd import __version__, config
from syncd.obs import logs

log = structlog.get_logger("syncd.app.daemon")


async def run(cfg: config.Config, stage: str, until_caught_up: bool, max_events: int | None) -> int:
    """Run the stages. Bounded runs go stage by stage: compute to its end, then publish.

    Unbounded runs also serve the admin server (health, metrics, actions) and talk to
    systemd (syncd.obs.notify). SIGTERM/SIGINT stop the stages in order (docs/operations.md);
    SIGHUP reloads the configuration and the error table.
    """
    from syncd.compute.stage import ComputeStage
    from syncd.obs.health import Health
    from syncd.obs.notify import Notifier
    from syncd.publish.stage import PublishService

    bounded = until_caught_up or max_events is not None
    health = Health()
    stages: list[ComputeStage | PublishService] = []
    if stage in ("all", "compute"):
        stages.append(
            ComputeStage(
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
        checked = config.check_file(cfg.source)
        new = checked.config
        if new is None:  # keep running on the old configuration
            first = checked.problems[0]
            log.error(
                "config_reload_failed",
                config=cfg.source,
                key=first.key,
                reason=first.reason,
                line=checked.line(first),
                problems=[p.key for p in checked.problems],
            )
        else:
            cfg, live, restart = config.reload_plan(cfg, new)
            logs.set_level(cfg.log_level)
            for s in stages:
                if isinstance(s, ComputeStage):
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

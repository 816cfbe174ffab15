"""Run the configured marketplace sandboxes until SIGINT/SIGTERM.

Owns the command line ``python -m syncd.testing.sandbox --config FILE.toml``: reads
the TOML (see ``config/sandbox.example.toml``), starts one sandbox per
platform table, creates its accounts and listings, prints one JSON line per
started sandbox on stdout (``{"platform", "base_url", "control_url",
"accounts": {name: credentials}}``) and logs (structlog JSON) on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import orjson
import structlog

from syncd.testing.sandbox import PLATFORMS, Sandbox, start

SERVER_KEYS = (
    "host",
    "port",
    "rate_per_s",
    "burst",
    "token_ttl_s",
    "refresh_ttl_s",
    "bucket_size",
    "restore_rate",
    "apply_delay_s",
)


def _configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def start_from_config(config: dict[str, Any]) -> list[Sandbox]:
    """Start every platform table of ``config``; returns the running sandboxes."""
    unknown = sorted(set(config) - set(PLATFORMS))
    if unknown:
        raise ValueError(f"unknown platform table(s): {', '.join(unknown)}")
    started: list[Sandbox] = []
    try:
        for platform in PLATFORMS:
            table = config.get(platform)
            if table is None:
                continue
            server = {k: table[k] for k in SERVER_KEYS if k in table}
            sb = await start(platform, **server)
            started.append(sb)
            for acc in table.get("accounts", []):
                acc = dict(acc)
                name = str(acc.pop("name"))
                listings = acc.pop("listings", [])
                sb.add_account(name, **acc)
                for row in listings:
                    sb.add_listing(name, row["listing"], int(row.get("stock", 0)))
    except BaseException:
        for sb in started:
            await sb.close()
        raise
    return started


async def run(config: dict[str, Any]) -> None:
    sandboxes = await start_from_config(config)
    for sb in sandboxes:
        line = {
            "platform": sb.platform,
            "base_url": sb.base_url,
            "control_url": sb.control_url,
            "accounts": {name: sb.credentials(name) for name in sb.accounts},
        }
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sb in sandboxes:
            await sb.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.testing.sandbox", description="Run local marketplace sandboxes."
    )
    parser.add_argument("--config", required=True, type=Path, help="sandbox TOML file")
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        config = tomllib.loads(args.config.read_text())
        asyncio.run(run(config))
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as e:
        structlog.get_logger("syncd.testing.sandbox").error("sandbox_config_failed", error=str(e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a reload (SIGHUP) may change in a running daemon, and what needs a restart.

Live: ``log.level``, the policy layers (``[policy]``, ``[skus]``, each channel account's
``policy``), ``publish.error_table`` and ``admin.token``. Everything else (Kafka, topics,
compute, the other publish and admin keys, channel accounts and their settings) is read
at start: a change is logged as needing a restart and the running value is kept.
"""

from __future__ import annotations

from typing import Any

from syncd.config.model import Config

LIVE_KEYS = {"publish": "error_table", "admin": "token"}
"""The one key of these sections a reload applies."""


def reload_plan(old: Config, new: Config) -> tuple[Config, list[str], list[str]]:
    """What a reload of ``new`` over the running ``old`` does: the configuration to run
    with (``old`` with the live keys taken from ``new``), the changed keys applied live
    and the changed keys that need a restart (key names only, never values)."""
    live: list[str] = []
    restart: list[str] = []

    def diff(key: str, a: Any, b: Any, is_live: bool) -> None:
        if a != b:
            (live if is_live else restart).append(key)

    diff("log.level", old.log_level, new.log_level, True)
    diff("policy", old.policy, new.policy, True)
    diff("skus", old.skus, new.skus, True)
    for name in ("kafka", "topics", "compute"):
        diff(name, getattr(old, name), getattr(new, name), False)
    for section, live_key in LIVE_KEYS.items():
        was_s, now_s = getattr(old, section), getattr(new, section)
        for name in type(was_s).model_fields:
            key = f"{section}.{name}"
            diff(key, getattr(was_s, name), getattr(now_s, name), name == live_key)
    channels = dict(old.channels)
    for account in sorted({*old.channels, *new.channels}):
        was, now = old.channels.get(account), new.channels.get(account)
        if was is None or now is None:  # a publisher is built per account at start
            restart.append(f"channels.{account}")
            continue
        diff(f"channels.{account}.policy", was.policy, now.policy, True)
        diff(f"channels.{account}", was.settings, now.settings, False)
        channels[account] = was.model_copy(update={"policy": now.policy})
    applied = old.model_copy(
        update={
            "log_level": new.log_level,
            "policy": new.policy,
            "skus": new.skus,
            "channels": channels,
            "publish": old.publish.model_copy(update={"error_table": new.publish.error_table}),
            "admin": old.admin.model_copy(update={"token": new.admin.token}),
        }
    )
    return applied, live, restart

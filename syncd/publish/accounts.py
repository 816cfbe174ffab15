"""The publish stage's channel accounts and their pushers.

Owns :class:`Accounts`: for every configured account with settings, its channel client
(:func:`syncd.channels.base.make_channel`), limits and limiter (:mod:`syncd.publish.limits`)
and read-back settings (:class:`syncd.core.reconcile.Settings`); the error table
(``[publish] error_table``, loaded at start: a broken table stops the stage; swapped by
:meth:`Accounts.reload_table`); and the pushers running for the accounts of the
assigned partitions (:meth:`Accounts.pusher` creates and starts one with its restored
state).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection

import structlog

from syncd.channels import make_channel
from syncd.channels.base import Channel, TokenStore
from syncd.channels.tokens import JsonFileTokenStore, MemoryTokenStore
from syncd.config import Config
from syncd.config.error_table import load, load_or_keep
from syncd.core.errortable import ErrorTable
from syncd.core.reconcile import Settings
from syncd.errors import ConfigError
from syncd.publish.limits import TAKEOVER_HOLD_S, AccountLimits, Limiter, make_limiter
from syncd.publish.pusher import AccountPusher
from syncd.publish.restore import Restorer
from syncd.publish.results import KafkaResults

log = structlog.get_logger("syncd.publish.stage")


class Accounts:
    """The stage's accounts, error table and pushers; see the module docstring."""

    def __init__(self, cfg: Config, token_store: TokenStore | None = None) -> None:
        pub = cfg.publish
        if token_store is None:
            token_store = (
                JsonFileTokenStore(pub.token_store) if pub.token_store else MemoryTokenStore()
            )
        self.table_path = pub.error_table
        self.table: ErrorTable = load(self.table_path)
        self.channels: dict[str, Channel] = {}
        self.limits: dict[str, AccountLimits] = {}
        self.limiters: dict[str, Limiter] = {}
        self.reconcile: dict[str, Settings] = {}
        self.unconfigured: set[str] = set()
        """Accounts with a policy only: nothing to publish to."""
        self.pushers: dict[str, AccountPusher] = {}
        for account, ch in cfg.channels.items():
            if not ch.settings:
                self.unconfigured.add(account)
                log.warning("publish_account_unconfigured", account=account)
                continue
            self.limits[account] = AccountLimits.from_settings(
                account, ch.platform, ch.settings, pub
            )
            self.channels[account] = make_channel(ch.platform, account, ch.settings, token_store)
            self.limiters[account] = make_limiter(self.limits[account])
            self.reconcile[account] = Settings.build(
                account,
                ch.platform,
                ch.settings,
                self.limits[account].rate_per_s,
                interval_s=pub.reconcile_interval_s,
                share=pub.reconcile_share,
                persist_s=pub.drift_persist_s,
            )

    def pusher(
        self,
        account: str,
        partition: int,
        results: KafkaResults,
        restore: Restorer,
        retry_pass_s: float,
    ) -> AccountPusher:
        """The account's running pusher; a new one starts with its restored state."""
        pusher = self.pushers.get(account)
        if pusher is None:
            acked, actions, desired, holds = restore.take(account, partition)
            pusher = AccountPusher(
                account,
                partition,
                self.channels[account],
                self.limiters[account],
                self.limits[account],
                None,  # the table's rows give the retry bounds
                results,
                acked=acked,
                retry_pass_s=retry_pass_s,
                table=self.table,
                actions=results.write_actions,
                reconcile=self.reconcile[account],
            )
            pusher.restore(actions, desired)
            pusher.campaign_holds.update(holds)
            self.limiters[account].hold(TAKEOVER_HOLD_S)  # the previous owner's second
            pusher.start()
            self.pushers[account] = pusher
        return pusher

    async def stop(self, counts: Counter[str], partitions: Collection[int] | None = None) -> None:
        """Cancel the pushers of ``partitions`` (None: all), adding up their counts."""
        stopping = [
            p for p in self.pushers.values() if partitions is None or p.partition in partitions
        ]
        await asyncio.gather(*(p.stop() for p in stopping))
        for p in stopping:
            counts.update(p.counts)
            del self.pushers[p.account]

    async def drain(self, counts: Counter[str], drain_s: float) -> None:
        """Stop every pusher: on an orderly stop (``drain_s`` > 0) only calls in flight go
        on, for up to ``drain_s`` seconds; queued updates are dropped unsent, so their
        offsets stay uncommitted and the next owner sends them."""
        if drain_s:
            held = sum(p.drop_queued() for p in self.pushers.values())
            in_flight = sum(len(p.inflight) for p in self.pushers.values())
            log.info("publish_stopping", in_flight=in_flight, held_back=held, deadline_s=drain_s)
        await asyncio.gather(*(p.stop(drain_s) for p in self.pushers.values()))
        for p in self.pushers.values():
            counts.update(p.counts)
        self.pushers.clear()

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()

    def reload_table(self) -> ConfigError | None:
        """Re-read the error table (for SIGHUP): a broken file keeps the current table and
        returns why."""
        table, error = load_or_keep(self.table_path, self.table)
        if error is not None:
            log.error(
                "error_table_reload_failed", path=self.table_path or "shipped", error=str(error)
            )
            return error
        self.table = table
        for pusher in self.pushers.values():
            pusher.use_table(table)
        log.info("error_table_reloaded", path=self.table_path or "shipped", rows=len(table.rows))
        return None

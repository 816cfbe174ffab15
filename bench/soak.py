"""Fault soak (issue 6, item 2): syncd under load while everything around it fails.

    python bench/soak.py [--seed 1] [--minutes 10] [--bootstrap HOST:PORT]

A bounded run of the process harness (dev/harness.py): its own local broker
(``dev.kafka.start``), the marketplace sandboxes in this process, three ``syncd run``
processes in one consumer group. For the first 60% of ``--minutes`` input events are
produced at a steady rate (with producer duplicates, stale snapshots and every kind of
broken record from ``dev.sample.bad_records``) while the harness

- SIGKILLs a random syncd process at random moments (seeded; every 30 s on average) and
  starts it again a few seconds later; a process that exits by itself is started again too;
- restarts the broker once, half-way (skipped with ``--bootstrap``: that broker is not
  ours to restart);
- makes a random sandbox account answer with a 5xx page, a hang past the client
  timeout, or its throttling answer, at a set rate.

Then the faults stop and syncd gets the rest of ``--minutes`` (at least 90 s, which
covers the 60 s slow-down after the last throttling answer) to converge. Checked and
printed: every sandbox listing shows exactly the quantity the input implies (the
harness's own model), the per-SKU state in the changelog equals the model (no event
lost or applied twice), the newest desired records too, every broken record is in
the dead-letter topic and no good one, and the most calls any account saw in one
second. ``run()`` returns the figures as a dict (``"ok"``: all checks hold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dev import kafka, sample  # noqa: E402
from dev.harness import Cluster, Load, spread_accounts  # noqa: E402

PROCESSES = 3
PARTITIONS = 6
SKUS = 50
EVENTS_PER_S = 100
TICK_S = 0.5
KILL_EVERY_S = 30.0
"""Mean seconds between SIGKILLs (uniform over 0.5-1.5 times it); at most a third of the
load phase, so a short soak kills too."""
RESPAWN_AFTER_S = (1.0, 5.0)
FAULTS_PER_S = 0.5
"""Faults injected per second over all accounts (each fires on one request)."""
RATE_PER_S = 10.0
CLIENT_TIMEOUT_S = 2.0
MIN_CONVERGE_S = 90.0


class Soak:
    def __init__(self, seed: int, minutes: float, bootstrap: str | None) -> None:
        self.rng = random.Random(seed)
        self.seed, self.total_s, self.bootstrap = seed, minutes * 60, bootstrap
        self.load_s = self.total_s * 0.6
        self.broker: kafka.Broker | None = None
        self.lock = asyncio.Lock()
        """Held while producing and while the broker restarts."""
        self.faults: Counter[str] = Counter()
        self.kills = 0
        self.respawns = 0
        self.broker_restart_s: float | None = None
        self.produced = 0
        self.timeline: list[tuple[float, str]] = []
        """(seconds since the start, what the harness did)."""
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> dict[str, Any]:
        if self.bootstrap is None:
            self.broker = await asyncio.to_thread(kafka.start, die_with_parent=True)
            self.bootstrap = self.broker.bootstrap
        accounts = spread_accounts(("shopee", "lazada", "wayfair"), 2, PARTITIONS)
        self.load = Load(SKUS, accounts, seed=self.seed)
        work = Path(tempfile.mkdtemp(prefix="syncd-soak-"))
        cluster = Cluster(
            work,
            self.bootstrap,
            self.load,
            partitions=PARTITIONS,
            rate_per_s=RATE_PER_S,
            timeout_s=CLIENT_TIMEOUT_S,
        )
        self.cluster = cluster
        self.started = started = time.monotonic()
        try:
            await cluster.start()
            self.produced += await cluster.produce(self.load.initial())
            for i in range(PROCESSES):
                await cluster.spawn(i)
            end = time.monotonic() + self.load_s
            supervisor = asyncio.create_task(self._supervise())
            self.tasks.append(supervisor)
            await asyncio.gather(
                self._produce(end), self._kill(end), self._inject(end), self._restart_broker()
            )
            self._note("load and faults end")
            for sb in cluster.sandboxes.values():  # faults not fired yet
                for account in list(sb.accounts):
                    sb.clear(account)
            budget = max(MIN_CONVERGE_S, self.total_s - (time.monotonic() - started))
            converge_s, left = await cluster.converge(within=budget)
            figures = await self._figures(work, converge_s, left)
            figures["codes_at_stop"] = await cluster.stop()
        finally:
            for task in self.tasks:
                task.cancel()
            await cluster.close()
            if self.broker is not None:
                await asyncio.to_thread(self.broker.stop)
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures

    # -- the load and the faults -------------------------------------------------------
    async def _produce(self, end: float) -> None:
        bad = sample.bad_records()
        ticks = int(self.load_s / TICK_S)
        at = {self.rng.randrange(ticks): b for b in bad}  # one chunk each (collisions: fewer)
        for extra in bad:  # every broken record goes in once, whatever the draw
            if extra not in at.values():
                at[self.rng.randrange(ticks)] = extra
        self.bad = list(at.values())
        tick = 0
        while time.monotonic() < end:
            recs = self.load.events(int(EVENTS_PER_S * TICK_S))
            if tick in at:
                recs.insert(self.rng.randrange(len(recs) + 1), at[tick])
            async with self.lock:
                self.produced += await self.cluster.produce(recs)
            tick += 1
            await asyncio.sleep(TICK_S)
        missing = [b for t, b in at.items() if t >= tick]
        if missing:
            async with self.lock:
                self.produced += await self.cluster.produce(missing)

    async def _kill(self, end: float) -> None:
        while True:
            every = min(KILL_EVERY_S, self.load_s / 3)
            await asyncio.sleep(min(self.rng.uniform(0.5, 1.5) * every, end - time.monotonic()))
            if time.monotonic() >= end:
                return
            alive = self.cluster.alive()
            if not alive:
                continue
            victim = self.rng.choice(alive)
            await self.cluster.kill(victim)
            self.kills += 1
            self._note(f"SIGKILL syncd {victim}")
            await asyncio.sleep(self.rng.uniform(*RESPAWN_AFTER_S))
            await self.cluster.spawn(victim)
            self._note(f"start syncd {victim}")

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            n = await self.cluster.respawn_exited()
            if n:
                self.respawns += n
                self._note(f"start {n} exited syncd")

    async def _inject(self, end: float) -> None:
        kinds = ("http_error", "timeout", "throttle")
        while True:
            await asyncio.sleep(self.rng.expovariate(FAULTS_PER_S))
            if time.monotonic() >= end:
                return
            account = self.rng.choice(self.load.accounts)
            platform, name = account.split(":", 1)
            kind = self.rng.choice(kinds)
            params: dict[str, dict[str, Any]] = {
                "http_error": {"status": self.rng.choice([500, 502, 503])},
                "timeout": {"seconds": CLIENT_TIMEOUT_S + 1},
                "throttle": {"retry_after_s": 1},
            }
            self.cluster.sandboxes[platform].inject(name, kind, count=1, **params[kind])
            self.faults[kind] += 1

    async def _restart_broker(self) -> None:
        if self.broker is None:
            return
        await asyncio.sleep(self.load_s / 2)
        broker = self.broker
        async with self.lock:
            t0 = time.monotonic()
            self._note("broker restart")
            await asyncio.to_thread(broker.restart)
            self.broker_restart_s = round(time.monotonic() - t0, 1)
            self._note("broker up")

    def _note(self, what: str) -> None:
        self.timeline.append((round(time.monotonic() - self.started, 1), what))

    # -- the end -------------------------------------------------------------------
    async def _figures(self, work: Path, converge_s: float, left: int) -> dict[str, Any]:
        c = self.cluster
        state = await c.state_mismatches()
        desired = await c.desired_mismatches()
        dead = await c.dead_letters(self.bad)
        rates = c.rates()
        worst = max(r["api_max_in_1s"] for r in rates.values())
        figures: dict[str, Any] = {
            "seed": self.seed,
            "minutes": self.total_s / 60,
            "events": sum(self.load.counts.values()),
            "events_by_kind": dict(sorted(self.load.counts.items())),
            "records_produced": self.produced,
            "skus": SKUS,
            "listings": SKUS * len(self.load.accounts),
            "processes": PROCESSES,
            "kills": self.kills,
            "unexpected_exits": sum(len(s.exits) for s in c.slots),
            "respawns_after_exit": self.respawns,
            "broker_restarts": 0 if self.broker_restart_s is None else 1,
            "broker_restart_seconds": self.broker_restart_s,
            "faults_injected": dict(sorted(self.faults.items())),
            "converge_seconds": round(converge_s, 1),
            "listing_mismatches": left,
            "state_mismatches": len(state),
            "desired_mismatches": len(desired),
            **dead,
            "sandbox_requests": sum(r["requests"] for r in rates.values()),
            "throttled_answers": sum(r["throttled"] for r in rates.values()),
            "max_requests_in_1s": max(r["max_in_1s"] for r in rates.values()),
            "max_api_calls_in_1s": worst,
            "rate_bound": c.rate_bound,
            "rate_within_bound": worst <= c.rate_bound,
            "work_dir": str(work),
        }
        excess = []
        for account in self.load.accounts:
            calls, at = c.worst_second(account)
            if calls > c.rate_bound:
                at_s = round(at - self.started, 1)
                near = [f"{t}s {what}" for t, what in self.timeline if abs(t - at_s) <= 15]
                paths = Counter(p for t, p in c.calls[account] if at <= t < at + 1.0)
                excess.append(
                    {
                        "account": account,
                        "calls": calls,
                        "at_s": at_s,
                        "paths": dict(paths),
                        "near": near,
                    }
                )
        figures["rate_excess"] = excess
        figures["timeline"] = [f"{t}s {what}" for t, what in self.timeline]
        if left:
            figures["listing_mismatch_sample"] = [
                f"{a}/{s}: shows {got}, implied {want}"
                for (a, s), (got, want) in sorted(c.mismatches().items())[:10]
            ]
        if state:
            figures["state_mismatch_sample"] = {k: repr(v) for k, v in list(state.items())[:3]}
        figures["ok"] = (
            left == 0
            and not state
            and not desired
            and dead["bad_missing"] == 0
            and dead["unexpected"] == 0
        )
        return figures


def run(*, seed: int, minutes: float, bootstrap: str | None = None) -> dict[str, Any]:
    """One bounded soak; the figures, with ``"ok"`` True when every check holds."""
    return asyncio.run(Soak(seed, minutes, bootstrap).run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--bootstrap", help="use a running broker (no broker restart then)")
    args = parser.parse_args()
    # The sandboxes run in this process: their logs go to stderr, warnings and worse only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    figures = run(seed=args.seed, minutes=args.minutes, bootstrap=args.bootstrap)
    print(json.dumps(figures, indent=2))
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()

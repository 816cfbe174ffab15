"""Scale-out (issue 5, item 7): three ``syncd run`` processes in one consumer group, one
SIGKILLed under load, against the real broker and rate-limited marketplace sandboxes.

Shown: the processes share the partitions; the killed one's partitions move to the
others, which restore their state from the changelog; every sandbox listing ends at the
quantity the input implies (dev/harness.py models it independently of syncd); the
per-SKU state equals the model (nothing lost, nothing counted twice: on-hand,
reservations, units ordered, orders seen); every broken record is dead-lettered and no
good one; no account saw more than rate + burst calls in any one-second window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dev import sample
from dev.harness import Cluster, Load, spread_accounts
from syncd.kafka.partitioning import partition_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(180)]

PARTITIONS = 6
ALL = set(range(PARTITIONS))


async def _until(cluster: Cluster, cond: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not cond():
        crashed = cluster.crashed()
        assert crashed is None, crashed
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_three_processes_share_partitions_and_survive_a_sigkill(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    accounts = spread_accounts(("shopee", "lazada", "wayfair"), 2, PARTITIONS)
    load = Load(40, accounts, seed=17)
    cluster = Cluster(tmp_path, kafka_bootstrap, load, partitions=PARTITIONS, rate_per_s=10)
    try:
        await cluster.start()
        await cluster.produce(load.initial())
        for i in range(3):
            await cluster.spawn(i)

        def shared(members: list[int], stage: str) -> bool:
            parts = [cluster.assigned(i, stage) for i in members]
            return all(parts) and set().union(*parts) == ALL and sum(map(len, parts)) == 6

        await _until(cluster, lambda: shared([0, 1, 2], "compute"), 90, "3 compute members")
        await _until(cluster, lambda: shared([0, 1, 2], "publish"), 30, "3 publish members")
        victim, survivors = 1, [0, 2]
        moved_compute = cluster.assigned(victim, "compute")
        moved_publish = cluster.assigned(victim, "publish")
        assert moved_compute and moved_publish

        bad = sample.bad_records()
        killed_at, kill_stamp = 0.0, ""
        for n in range(10):
            await cluster.produce(load.events(300) + bad[n : n + 1])
            if n == 4:  # mid-load: the victim is busy with the chunks before
                await cluster.kill(victim)
                killed_at = time.monotonic()
                kill_stamp = datetime.now(UTC).isoformat()[:26]  # as the log's timestamps
            await asyncio.sleep(0.3)
        assert cluster.alive() == survivors

        # Its partitions move (after the session timeout) and their state is restored.
        await _until(cluster, lambda: shared(survivors, "compute"), 60, "2 compute members")
        await _until(cluster, lambda: shared(survivors, "publish"), 30, "2 publish members")

        def restored() -> set[int]:
            return {
                int(p.rsplit("/", 1)[1])
                for i in survivors
                for rec in cluster.log_events(i, "state_restored")
                if rec["timestamp"] > kill_stamp
                for p in rec["partitions"]
                if p.rsplit("/", 1)[0] == cluster.config.topics.sku_state
            }

        await _until(cluster, lambda: moved_compute <= restored(), 30, "state restored")

        waited, left = await cluster.converge(within=60)
        print(
            f"converged {time.monotonic() - killed_at:.1f}s after the kill (waited {waited:.1f}s)"
        )
        assert left == 0, sorted(cluster.mismatches().items())[:10]
        assert await cluster.desired_mismatches() == {}
        assert await cluster.state_mismatches() == {}
        dead = await cluster.dead_letters(bad)
        assert dead["bad_missing"] == 0 and dead["unexpected"] == 0, dead

        # The killed process's accounts were sent to by their new owners.
        for account in accounts:
            if partition_for(account, PARTITIONS) in moved_publish:
                platform, name = account.split(":", 1)
                times = cluster.sandboxes[platform].request_times(name)
                assert any(t > killed_at for t in times), account
        rates = cluster.rates()
        print("rates", rates)
        for account, r in rates.items():
            assert r["requests"] > 0, account
            assert r["api_max_in_1s"] <= cluster.rate_bound, (account, r)
            assert r["throttled"] == 0, (account, r)
        assert sum(load.counts.values()) >= 3000 and load.counts["duplicate"] > 0
        assert await cluster.stop() == [0, 0]
    finally:
        await cluster.close()

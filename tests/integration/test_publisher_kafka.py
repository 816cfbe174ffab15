"""The publish stage against the real broker and the marketplace sandboxes.

Desired records are written straight to ``<p>.desired`` (the compute stage is
tested elsewhere), the sandboxes run in the test's event loop on 127.0.0.1,
and the publisher runs either in-process (:class:`PublishService`) or as real
processes (``python -m syncd --config FILE run --stage publish``) in one consumer group.

- end to end: newest quantities reach every platform, push-results and the
  acked topic are written, skipped records are counted and committed;
- commits only after acknowledgement, and a stop with a call in flight leaves
  the record to be sent again by the next run;
- the two-process test: two publishers share the accounts (one process per
  account) and no sandbox account ever sees more than its rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from syncd.channels.base import listing_ref
from syncd.kafka.clients import ensure_topics
from syncd.kafka.partitioning import partition_for
from syncd.publish.stage import PublishService
from syncd.testing.sandbox import Sandbox, start
from tests.fixtures.kafka import latest, read_topic
from tests.fixtures.publish_kafka import Setup, committed, desired_value, end_offsets, produce, row
from tests.fixtures.publishing import listing_for, tap, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]


# -- end to end ------------------------------------------------------------------------


async def test_end_to_end_newest_quantities_results_acked_and_commits(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    shopee = await start("shopee")
    lazada = await start("lazada")
    shopify = await start("shopify")
    try:
        st = Setup(tmp_path, kafka_bootstrap)
        lists: dict[str, list[dict[str, Any]]] = {}
        accounts = {}
        for sb in (shopee, lazada, shopify):
            creds = sb.add_account("main")
            lists[sb.platform] = [listing_for(sb.platform, i, creds) for i in range(5)]
            for lst in lists[sb.platform]:
                sb.add_listing("main", lst, 1)
            accounts[sb.platform] = st.account(sb, "main", batch_size=2)
        _, cfg = st.write('[channels."wayfair:us".policy]\nsafety = "fixed"\n')
        await ensure_topics(cfg)
        laz = accounts["lazada"]
        # lazada listing 0 was acknowledged at 7 by an earlier run: 7 again is not sent
        acked0 = orjson.dumps({"quantity": 7, "at": 1})
        await produce(
            cfg,
            [(laz, f"{laz}/{listing_ref(lists['lazada'][0])}".encode(), acked0, None)],
            topic=cfg.topics.acked,
        )
        rows = []
        for platform, account in accounts.items():
            for q in (5, 9, 3):
                rows += [row(account, lst, q + i) for i, lst in enumerate(lists[platform])]
        rows.append(row(laz, lists["lazada"][0], 7))
        rows.append(row(laz, lists["lazada"][4], None))  # unlinked: nothing is sent for it
        rows.append(row("shopee:nobody", {"item_id": 1}, 3))
        rows.append(row("wayfair:us", {"supplier_part_number": "X"}, 3))
        rows.append((laz, f"{laz}/broken".encode(), b"not json", None))
        await produce(cfg, rows)

        svc = PublishService(cfg, until_caught_up=True)
        counts = await asyncio.wait_for(svc.run(), 30)

        assert counts["unknown_account"] == 1
        assert counts["unconfigured_account"] == 1
        assert counts["invalid"] == 1
        assert counts["unlinked"] == 1
        newest = {i: 3 + i for i in range(5)}
        for sb in (shopee, shopify):
            assert [sb.stock("main", lst) for lst in lists[sb.platform]] == list(newest.values())
        assert [lazada.stock("main", lst) for lst in lists["lazada"]] == [1, 4, 5, 6, 1]
        results = [orjson.loads(r.value) for r in await read_topic(cfg, cfg.topics.push_results)]
        assert all(r["ok"] and r["final"] and r["attempt"] == 1 for r in results)
        assert len(results) == 5 + 5 + 3  # lazada: 0 unchanged, 4 unlinked
        assert set(results[0]) == {
            "account",
            "listing_ref",
            "sku",
            "quantity",
            "ok",
            "attempt",
            "http_status",
            "code",
            "message",
            "latency_ms",
            "source_ts",
            "acked_at",
            "final",
            "retriable",
        }
        acked = {
            k.decode(): orjson.loads(v)["quantity"]
            for k, v in (await latest(cfg, cfg.topics.acked)).items()
        }
        for platform, account in accounts.items():
            for i, lst in enumerate(lists[platform]):
                key = f"{account}/{listing_ref(lst)}"
                if platform == "lazada" and i == 4:
                    assert key not in acked  # tombstoned with the listing
                elif platform == "lazada" and i == 0:
                    assert acked[key] == 7
                else:
                    assert acked[key] == newest[i]
        assert await committed(cfg) == await end_offsets(cfg)
    finally:
        for sb in (shopee, lazada, shopify):
            await sb.close()


async def test_commits_wait_for_every_earlier_record_and_a_stop_leaves_it_for_the_next_run(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lazada = await start("lazada")
    try:
        creds = lazada.add_account("main")
        x, y = (listing_for("lazada", i, creds) for i in range(2))
        lazada.add_listing("main", x, 0)
        lazada.add_listing("main", y, 0)
        st = Setup(tmp_path, kafka_bootstrap, publish={"stop_deadline_s": 0.0})
        acct = st.account(lazada, "main", batch_size=1, max_in_flight=2, rate_per_s=50)
        _, cfg = st.write()
        p = partition_for(acct, cfg.topics.desired_partitions)
        lazada.inject("main", "slow", listing=x, delay_s=2.0, count=1)
        seen = tap(lazada, "main")
        await produce(cfg, [row(acct, x, 5), row(acct, y, 6)])  # offsets 0 and 1

        svc = PublishService(cfg)
        task = asyncio.create_task(svc.run())
        await wait_until(lambda: lazada.listing_state("main", y)["stock"] == 6, 20, "y sent")
        await asyncio.sleep(0.5)  # several commit intervals while x is still in flight
        assert (await committed(cfg)).get(p, 0) == 0
        await wait_until(lambda: lazada.listing_state("main", x)["stock"] == 5, 20, "x sent")
        desired_p = TopicPartition(cfg.topics.desired, p)
        await wait_until(lambda: svc.committed(desired_p) == 2, 10, "commit after x")
        assert (await committed(cfg))[p] == 2

        # A stop while a call is in flight: the record is not committed...
        lazada.inject("main", "slow", listing=x, delay_s=5.0, count=1)
        await produce(cfg, [row(acct, x, 11)])  # offset 2
        x_key = f"{acct}/{listing_ref(x)}"
        await wait_until(
            lambda: acct in svc.pushers and x_key in svc.pushers[acct].inflight, 20, "x in flight"
        )
        svc.request_stop()
        await asyncio.wait_for(task, 10)
        assert (await committed(cfg))[p] == 2
        assert lazada.listing_state("main", x)["stock"] == 5
        # ... so the next run sends it.
        again = PublishService(cfg, until_caught_up=True)
        await asyncio.wait_for(again.run(), 30)
        assert lazada.listing_state("main", x)["stock"] == 11
        assert (await committed(cfg))[p] == 3
        assert [q for k, q in seen if k == lazada.listing_key(lazada.accounts["main"], x)][-1] == 11
    finally:
        await lazada.close()


# -- two processes -----------------------------------------------------------------------


def _names(prefix: str, n: int, partitions: int, platform: str) -> list[str]:
    """Account names whose accounts land in distinct partitions (murmur2)."""
    out: list[str] = []
    used: set[int] = set()
    i = 0
    while len(out) < n:
        p = partition_for(f"{platform}:{prefix}{i}", partitions)
        if p not in used:
            used.add(p)
            out.append(f"{prefix}{i}")
        i += 1
    return out


async def test_two_processes_share_the_accounts_and_never_exceed_a_rate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rate, n_listings, partitions = 10, 50, 4
    shopee = await start("shopee", rate_per_s=rate)  # the sandbox's own bucket: burst 10
    lazada = await start("lazada", rate_per_s=rate)
    procs: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []
    try:
        st = Setup(tmp_path, kafka_bootstrap, partitions=partitions)
        # 2 shopee + 2 lazada accounts, one per partition of the desired topic
        names: list[tuple[Sandbox, str]] = []
        taken: set[int] = set()
        for sb in (shopee, lazada):
            for name in _names(f"{sb.platform[:2]}-", partitions, partitions, sb.platform):
                p = partition_for(f"{sb.platform}:{name}", partitions)
                if p not in taken and len([x for x in names if x[0] is sb]) < 2:
                    taken.add(p)
                    names.append((sb, name))
        assert len(names) == 4
        plan: dict[tuple[Sandbox, str], list[dict[str, Any]]] = {}
        Row = tuple[str, bytes, bytes | None, int | None]
        rows: list[Row] = []
        last: list[Row] = []  # the newest quantities, sent once both processes run
        for sb, name in names:
            creds = sb.add_account(name)
            lists = [listing_for(sb.platform, i, creds) for i in range(n_listings)]
            for lst in lists:
                sb.add_listing(name, lst, 0)
            plan[sb, name] = lists
            account = st.account(sb, name, batch_size=1, rate_per_s=rate, burst=1, max_in_flight=3)
            for q in (4, 9):
                rows += [row(account, lst, q + i) for i, lst in enumerate(lists)]
            last += [row(account, lst, 2 + i) for i, lst in enumerate(lists)]
        path, cfg = st.write()
        await produce(cfg, rows)

        env = {**os.environ, **st.env, "PYTHONPATH": str(ROOT)}

        async def spawn(i: int) -> None:
            log = tmp_path / f"publisher-{i}.log"
            logs.append(log)
            out = log.open("wb")
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "syncd",
                    "--config",
                    str(path),
                    "run",
                    "--stage",
                    "publish",
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=ROOT,
                )
            )
            out.close()  # the child has its own descriptor

        def requests() -> int:
            return sum(sb.stats(name)["requests"] for sb, name in names)

        def owns_partitions(log: Path) -> bool:
            text = log.read_text()
            return any(
                json.loads(line)["partitions"]
                for line in text.splitlines()
                if '"partitions_assigned"' in line
            )

        await spawn(1)
        await wait_until(lambda: requests() >= 8, 30, "first process sending")
        await spawn(2)
        # The second process has joined and owns partitions (so its signal handlers are
        # installed) before the newest quantities arrive: under load the first backlog can
        # drain before it joins, and then it would have nothing to send.
        await wait_until(lambda: owns_partitions(logs[1]), 60, "second process assigned")
        await produce(cfg, last)

        def done() -> bool:
            return all(
                sb.stock(name, lst) == 2 + i
                for (sb, name), lists in plan.items()
                for i, lst in enumerate(lists)
            )

        await wait_until(done, 60, "every listing at its newest quantity")
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(proc.wait(), 20) for proc in procs]
        assert codes == [0, 0]

        for sb, name in names:
            stats = sb.stats(name)
            print("rate_check", name, {k: stats[k] for k in ("requests", "max_in_1s", "throttled")})
            assert stats["throttled"] == 0, (name, stats["throttled"])
            assert stats["max_in_1s"] <= rate + 1, (name, stats["max_in_1s"])
        outputs = [log.read_text() for log in logs]
        stopped = [
            json.loads(line)
            for out in outputs
            for line in out.splitlines()
            if '"publish_stopped"' in line
        ]
        assert len(stopped) == 2 and all(s.get("acked", 0) > 0 for s in stopped), stopped
        assignments = [
            [
                json.loads(line)["partitions"]
                for line in out.splitlines()
                if '"partitions_assigned"' in line
            ]
            for out in outputs
        ]
        assert all(any(a) for a in assignments)  # both processes owned partitions
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await shopee.close()
        await lazada.close()


async def test_records_of_an_account_in_another_partition_are_skipped(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lazada = await start("lazada")
    try:
        creds = lazada.add_account("main")
        lst = listing_for("lazada", 0, creds)
        lazada.add_listing("main", lst, 0)
        st = Setup(tmp_path, kafka_bootstrap)
        acct = st.account(lazada, "main")
        _, cfg = st.write()
        right = partition_for(acct, cfg.topics.desired_partitions)
        wrong = (right + 1) % cfg.topics.desired_partitions
        key = f"{acct}/{listing_ref(lst)}".encode()
        await produce(
            cfg,
            [
                (acct, key, desired_value(acct, lst, 4), wrong),
                (acct, key, desired_value(acct, lst, 8), right),
            ],
        )
        counts = await asyncio.wait_for(PublishService(cfg, until_caught_up=True).run(), 30)
        assert counts["wrong_partition"] == 1
        assert lazada.stock("main", lst) == 8
        assert await committed(cfg) == await end_offsets(cfg)  # both partitions
    finally:
        await lazada.close()

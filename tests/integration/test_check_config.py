"""syncd check-config --connect says how the broker holds each of syncd's topics: exists,
partition count, cleanup policy (syncd.app.checks against the real broker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from syncd.app import checks
from syncd.kafka.clients import ensure_topics
from tests.fixtures.kafka import run_syncd, write_config


@pytest.mark.kafka
async def test_connect_says_how_each_topic_is_held(kafka_bootstrap: str, tmp_path: Path) -> None:
    path, cfg = write_config(tmp_path, kafka_bootstrap)
    before = await checks.check_topics(cfg)
    assert len(before) == 12
    assert all(t.partitions is None and t.problem is None for t in before)
    assert {t.topic for t in before} >= {cfg.topics.desired, cfg.topics.holds, cfg.topics.stock}
    done = run_syncd(path, "check-config", "--connect")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("missing: created at start") == 12

    counts = await ensure_topics(cfg)
    for _ in range(50):  # a topic just created may take a moment to show in the metadata
        after = {t.topic: t for t in await checks.check_topics(cfg)}
        if all(t.partitions for t in after.values()):
            break
        await asyncio.sleep(0.2)
    assert all(t.problem is None for t in after.values())
    assert {t: c.partitions for t, c in after.items()} == counts
    assert after[cfg.topics.desired].cleanup == "compact"
    assert after[cfg.topics.actions].cleanup == "compact"
    assert after[cfg.topics.order_lines].cleanup == "delete"
    done = run_syncd(path, "check-config", "--connect")
    assert done.returncode == 0, done.stderr
    assert f"topic {cfg.topics.desired} [internal]: ok (3 partitions, cleanup.policy=compact)" in (
        done.stdout
    )


@pytest.mark.kafka
async def test_connect_finds_wrong_partitions_and_cleanup(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    path, cfg = write_config(tmp_path, kafka_bootstrap)
    t = cfg.topics
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(t.stock, 3, 1),
                NewTopic(t.sku_state, 2, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(t.acked, 3, 1),  # needs compaction
            ]
        )
    finally:
        await admin.close()
    found = {c.topic: c for c in await checks.check_topics(cfg)}
    assert found[t.sku_state].problem == "needs 3 partitions"
    assert found[t.acked].problem == "needs cleanup.policy=compact"
    assert found[t.stock].problem is None
    done = run_syncd(path, "check-config", "--connect")
    assert done.returncode == 1
    assert f"topic {t.acked} [internal]: PROBLEM: needs cleanup.policy=compact" in done.stdout

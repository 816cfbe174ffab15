"""Liveness and readiness: the rules of syncd.obs.health, the admin routes, and a running daemon
whose broker goes away and comes back (GET /healthz, GET /readyz)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from dev.kafka import Broker
from syncd.app.admin import Admin
from syncd.config import AdminConfig
from syncd.obs.health import KAFKA_STALE_S, Health, StageHealth, watch_kafka
from syncd.testing.fakes import ManualClock
from tests.fixtures.daemon import Daemon
from tests.fixtures.kafka import write_config


def test_a_stage_is_ready_once_assigned_restored_and_the_broker_answers() -> None:
    clock = ManualClock(100.0)
    health = Health(clock)
    assert health.ready()[1]["reason"] == "daemon: no stage is running"
    st = health.stage("compute")

    def reason() -> str | None:
        ok, body = health.ready()
        assert ok == ("reason" not in body)
        return body.get("reason")

    assert reason() == "compute: partitions not assigned yet"
    st.assigned = True
    assert reason() == "compute: restoring state"
    st.restoring = False
    assert reason() == "compute: kafka has not answered recently"
    st.kafka_ok()
    assert reason() is None
    assert health.ready()[1]["stages"]["compute"]["kafka_ok_s_ago"] == 0.0
    clock.now += KAFKA_STALE_S + 0.1
    assert reason() == "compute: kafka has not answered recently"
    st.kafka_ok()
    st.kafka_failed("KafkaConnectionError")
    assert reason() == "compute: kafka unreachable (KafkaConnectionError)"
    st.kafka_ok()
    assert reason() is None
    health.stopping = True
    assert reason() == "daemon: stopping"


async def test_a_finished_stage_task_is_not_alive_nor_ready() -> None:
    health = Health()
    a, b = health.stage("compute"), health.stage("publish")
    for st in (a, b):
        st.assigned, st.restoring = True, False
        st.kafka_ok()
    a.task = asyncio.create_task(asyncio.sleep(30))
    b.task = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    assert health.alive() == (
        False,
        {"alive": False, "stages": {"compute": True, "publish": False}},
    )
    assert health.ready()[1]["reason"] == "publish: stage stopped"
    a.task.cancel()


async def test_admin_routes_answer_200_or_503_with_the_reason() -> None:
    health = Health()
    st = health.stage("compute")  # a compute-only run: no publisher source
    assert AdminConfig().host == "127.0.0.1"  # loopback unless configured otherwise
    admin = Admin(AdminConfig(port=0), [], health)
    async with TestClient(TestServer(admin.app())) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        assert (await r.json())["reason"] == "compute: partitions not assigned yet"
        assert (await client.get("/healthz")).status == 200
        st.assigned, st.restoring = True, False
        st.kafka_ok()
        r = await client.get("/readyz")
        assert r.status == 200 and (await r.json())["ready"] is True
        st.task = asyncio.create_task(asyncio.sleep(0))
        await st.task
        r = await client.get("/healthz")
        assert r.status == 503 and (await r.json())["stages"] == {"compute": False}


@pytest.mark.kafka
async def test_the_probe_reports_a_reachable_broker(kafka_bootstrap: str) -> None:
    st = StageHealth("compute")
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    probe = asyncio.create_task(watch_kafka(st, consumer))
    try:
        await asyncio.sleep(0.5)  # the first probe goes out at once
        assert st.kafka_ok_at is not None
        assert st.kafka_error is None
    finally:
        probe.cancel()
        await consumer.stop()


# -- a running daemon (tests/fixtures/daemon.py) -------------------------------------------


@pytest.mark.kafka
@pytest.mark.timeout(150)
def test_not_ready_while_the_broker_is_down_and_ready_again_after(
    kafka_broker: Broker, tmp_path: Path, daemons: list[Daemon]
) -> None:
    path, _ = write_config(tmp_path, kafka_broker.bootstrap, extra="[admin]\nport = 0\n")
    d = Daemon(path, tmp_path / "syncd.log", "--stage", "compute")
    daemons.append(d)
    status, body = d.get("/readyz")
    assert status == 503 and body["ready"] is False  # still joining and restoring
    d.wait_for(lambda: d.get("/readyz")[0] == 200, what="ready")
    assert d.events("state_restored")  # ready came after the restore
    assert d.get("/healthz") == (200, {"alive": True, "stages": {"compute": True}})

    kafka_broker.stop()
    down = d.wait_for(lambda: (r := d.get("/readyz"))[0] == 503 and r[1], 40, "not ready")
    assert "kafka" in down["reason"], down
    assert d.get("/healthz")[0] == 200  # alive: waiting for the broker is not a crash
    kafka_broker.restart()
    d.wait_for(lambda: d.get("/readyz")[0] == 200, 60, "ready again")
    assert d.stop() == 0

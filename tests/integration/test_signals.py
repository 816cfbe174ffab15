"""Signals of ``syncd run``: SIGTERM under load (the acceptance test of issue 5), SIGINT in
the compute stage, SIGHUP reloading the configuration.

SIGTERM: sandboxes made slow keep pushes in flight; the daemon stops fetching, lets the
calls in flight finish (``stop_deadline_s``), commits exactly what was acknowledged, leaves
the consumer group and exits 0; a second, bounded run sends what was left, so every listing
ends at its newest desired quantity.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dev import sample
from dev.kafka import free_port
from syncd import config
from syncd.channels.base import listing_ref
from syncd.testing.sandbox import Sandbox, start
from tests.fixtures.daemon import Daemon
from tests.fixtures.kafka import ROOT, create_inputs, produce, read_topic, syncd_cmd, write_config
from tests.fixtures.publish_kafka import Setup, committed, row
from tests.fixtures.publish_kafka import produce as produce_desired
from tests.fixtures.publishing import listing_for, tap, wait_until

pytestmark = [pytest.mark.kafka]


async def group_state(cfg: config.Config, group: str) -> tuple[str, int]:
    """The consumer group's state and member count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=list(cfg.kafka.bootstrap_servers))
    await admin.start()
    try:
        (resp,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    _error, _group, state, _ptype, _protocol, members, *_ = resp.groups[0]
    return state, len(members)


async def committed_group(cfg: config.Config, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=list(cfg.kafka.bootstrap_servers))
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in got.items()}


def spawn(cfg_path: Path, log: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            syncd_cmd(cfg_path, "run", *args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )


def covered(recs: list[Any], i: int, ok: set[tuple[str, str, int]]) -> bool:
    """Whether record ``i``'s listing has an acknowledged quantity of it or of a newer record."""
    r = orjson.loads(recs[i].value)
    later = {orjson.loads(x.value)["quantity"] for x in recs[i:] if x.key == recs[i].key}
    return any((r["account"], r["listing_ref"], q) in ok for q in later)


def events(log: Path) -> list[str]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            out.append(str(json.loads(line).get("event")))
    return out


@pytest.mark.timeout(150)
async def test_sigterm_under_load_finishes_in_flight_pushes_and_commits_exactly_the_acked(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deadline_s, delay_s, n = 6.0, 0.4, 12
    shopee, lazada = await start("shopee"), await start("lazada")
    proc: subprocess.Popen[bytes] | None = None
    try:
        st = Setup(tmp_path, kafka_bootstrap, publish={"stop_deadline_s": deadline_s})
        plan: dict[str, tuple[Sandbox, list[dict[str, Any]], list[tuple[str, int]]]] = {}
        for sb in (shopee, lazada):
            creds = sb.add_account("main")
            lists = [listing_for(sb.platform, i, creds) for i in range(n)]
            for lst in lists:
                sb.add_listing("main", lst, 0)
            account = st.account(sb, "main", batch_size=1, max_in_flight=2, rate_per_s=100)
            sb.inject("main", "slow", delay_s=delay_s)  # every call takes 0.4 s
            plan[account] = (sb, lists, tap(sb, "main"))
        path, cfg = st.write()

        def wave(r: int) -> list[Any]:  # quantities unique per listing: round * 100 + i
            return [
                row(account, lst, r * 100 + i)
                for account, (_sb, lists, _seen) in plan.items()
                for i, lst in enumerate(lists)
            ]

        await produce_desired(cfg, wave(1) + wave(2))
        log = tmp_path / "syncd.log"
        proc = spawn(path, log, "--stage", "publish", env=st.env)

        def acked_calls() -> int:
            return sum(len(seen) for _sb, _lists, seen in plan.values())

        await wait_until(lambda: acked_calls() >= 4, 60, "the first pushes")
        await produce_desired(cfg, wave(3))  # more load while pushes are in flight
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = await asyncio.to_thread(proc.wait, deadline_s + 20)
        took = time.monotonic() - t0
        assert code == 0, log.read_text()[-3000:]
        assert took < deadline_s + 10, took
        names = events(log)
        for ev in ("stop_requested", "publish_stopping", "publish_stopped"):
            assert ev in names, ev
        stopping = next(
            json.loads(line) for line in log.read_text().splitlines() if "publish_stopping" in line
        )
        assert stopping["in_flight"] > 0 and stopping["held_back"] > 0, stopping  # under load
        group = f"{cfg.kafka.group_id}-publish"
        assert await group_state(cfg, group) == ("Empty", 0)  # left the group

        # No in-flight push lost: every call a platform got has its successful result.
        results = [orjson.loads(r.value) for r in await read_topic(cfg, cfg.topics.push_results)]
        ok = {(r["account"], r["listing_ref"], r["quantity"]) for r in results if r["ok"]}
        for account, (sb, lists, seen) in plan.items():
            keys = {sb.listing_key(sb.accounts["main"], lst): listing_ref(lst) for lst in lists}
            for key, qty in seen:
                assert (account, keys[key], qty) in ok, (account, key, qty)

        # The committed offsets cover exactly what was acknowledged.
        records = await read_topic(cfg, cfg.topics.desired)
        by_part: dict[int, list[Any]] = defaultdict(list)
        for rec in records:
            by_part[rec.partition].append(rec)  # type: ignore[attr-defined]
        done = await committed(cfg)
        left = 0
        for p, recs in by_part.items():
            recs.sort(key=lambda r: r.offset)
            c = done.get(p, 0)

            assert all(covered(recs, i, ok) for i in range(c)), (p, c)
            if c < len(recs):
                assert not covered(recs, c, ok), (p, c)
                left += len(recs) - c
        assert left > 0 and sum(done.values()) > 0, (done, left)  # some done, some left

        # Nothing lost: the next (bounded) run sends the rest.
        again = await asyncio.to_thread(
            subprocess.run,
            syncd_cmd(path, "run", "--stage", "publish", "--until-caught-up"),
            capture_output=True,
            env={**os.environ, **st.env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            timeout=90,
            check=False,
        )
        assert again.returncode == 0, again.stdout[-3000:]
        for sb, lists, _seen in plan.values():
            assert [sb.stock("main", lst) for lst in lists] == [300 + i for i in range(n)]
        assert await committed(cfg) == {p: len(recs) for p, recs in by_part.items()}
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        await shopee.close()
        await lazada.close()


@pytest.mark.timeout(120)
async def test_sigint_mid_stream_commits_and_leaves_the_group(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    path, cfg = write_config(tmp_path, kafka_bootstrap, extra="[admin]\nport = 0\n")
    await create_inputs(cfg, partitions=3)
    await produce(cfg, sample.catalog(50) + list(sample.events(30000, 50, seed=3)))
    log = tmp_path / "syncd.log"
    proc = spawn(path, log, "--stage", "compute", env={})
    try:
        t = cfg.topics
        inputs = (t.stock, t.orders, t.catalog)

        async def progress() -> int:
            got = await committed_group(cfg, cfg.kafka.group_id)
            return sum(max(o, 0) for (topic, _p), o in got.items() if topic in inputs)

        deadline = time.monotonic() + 60
        while await progress() == 0:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    names = events(log)
    assert names.index("stop_requested") < names.index("compute_stopped")
    assert await group_state(cfg, cfg.kafka.group_id) == ("Empty", 0)
    stopped = next(json.loads(x) for x in log.read_text().splitlines() if "compute_stopped" in x)
    total = 30000
    assert 0 < await progress() <= total
    assert stopped["events"] < total  # stopped mid-stream, not at the end
    # what was read was written and committed: the committed input offsets are those read
    assert await progress() == stopped["events"]


@pytest.mark.timeout(120)
def test_sighup_reloads_the_configuration_and_keeps_it_when_broken(
    kafka_bootstrap: str,
    tmp_path: Path,
    daemons: list[Daemon],
) -> None:
    token = tmp_path / "admin-token"
    token.write_text("first-token\n")
    port = free_port()  # admin_started is an info line: not logged at level warning
    path, _ = write_config(
        tmp_path,
        kafka_bootstrap,
        extra=f'[admin]\nport = {port}\ntoken_file = "{token}"\n[log]\nlevel = "warning"\n',
    )
    cfg = config.load(path)
    asyncio.run(create_inputs(cfg, partitions=3))
    snapshot = {"type": "stock.snapshot", "event_id": "s1", "sku": sample.sku_name(0)}
    snapshot |= {"warehouse": "WH-1", "on_hand": 40, "as_of": "2026-11-23T10:00:00.000Z"}
    stock = sample.Rec("stock", sample.sku_name(0).encode(), orjson.dumps(snapshot))
    asyncio.run(produce(cfg, [*sample.catalog(1, ["shopee:my-main"]), stock]))

    def desired() -> list[int]:
        recs = asyncio.run(read_topic(cfg, cfg.topics.desired))
        return [orjson.loads(r.value)["quantity"] for r in recs]  # type: ignore[attr-defined]

    d = Daemon(path, tmp_path / "syncd.log", "--stage", "compute")
    d._port = port
    daemons.append(d)
    d.wait_for(lambda: d.get("/readyz")[0] == 200, what="ready")
    assert d.wait_for(desired, 30, "the first desired quantity") == [39]  # 40 - 1 safety
    assert not d.events("syncd_starting")  # info lines are off at level warning

    text = path.read_text()
    path.write_text(
        text.replace('level = "warning"', 'level = "info"')
        .replace("safety_units = 1", "safety_units = 3")
        .replace('group_id = "', 'group_id = "other-')
    )
    token.write_text("second-token\n")
    d.proc.send_signal(signal.SIGHUP)
    reloaded = d.wait_for(lambda: d.events("config_reloaded"), 20, "config_reloaded")[0]
    assert reloaded["live"] == ["log.level", "policy", "admin.token"]
    assert reloaded["needs_restart"] == ["kafka"]
    assert "second-token" not in d.log.read_text() and "first-token" not in d.log.read_text()
    assert _post(d.port, "second-token") == 404  # the new token passes auth (no such action)
    assert _post(d.port, "first-token") == 401
    assert d.wait_for(lambda: desired()[1:], 30, "recomputed") == [37]  # the new rules: 3

    path.write_text(text.replace("[policy]", "[policy]\nbogus = 1"))
    d.proc.send_signal(signal.SIGHUP)
    failed = d.wait_for(lambda: d.events("config_reload_failed"), 20, "reload failure")[0]
    assert failed["key"] == "policy.bogus" and failed["reason"]
    assert failed["problems"] == ["policy.bogus"] and isinstance(failed["line"], int)
    assert d.proc.poll() is None and d.get("/readyz")[0] == 200  # still running, old config
    assert _post(d.port, "second-token") == 404
    assert d.stop() == 0


def _post(port: int, token: str) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/actions/x:y%2Fz/resolve",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_reload_plan_applies_only_the_live_keys() -> None:
    def cfg(group: str, safety: int, url: str, extra: dict[str, Any]) -> config.Config:
        raw = {
            "kafka": {"group_id": group},
            "publish": {"error_table": f"/t/{safety}.toml", "max_in_flight": safety},
            "channels": {
                "wayfair:us": {"base_url": url, "policy": {"safety_units": safety}},
                **extra,
            },
            "skus": {"SKU-1": {"policy": {"safety_units": safety}}},
        }
        return config.parse(raw, env={})

    old = cfg("g1", 1, "http://a", {"shopify:x": {}})
    new = cfg("g2", 2, "http://b", {"lazada:y": {}})
    applied, live, restart = config.reload_plan(old, new)
    assert live == ["skus", "publish.error_table", "channels.wayfair:us.policy"]
    assert restart == [
        "kafka",
        "publish.max_in_flight",
        "channels.lazada:y",
        "channels.shopify:x",
        "channels.wayfair:us",
    ]
    assert applied.kafka == old.kafka and applied.publish.max_in_flight == 1
    assert applied.publish.error_table == "/t/2.toml" and applied.skus == new.skus
    assert applied.channels["wayfair:us"].policy == {"safety_units": 2}
    assert applied.channels["wayfair:us"].settings == {"base_url": "http://a"}
    assert set(applied.channels) == {"wayfair:us", "shopify:x"}
    assert config.reload_plan(old, old)[1:] == ([], [])

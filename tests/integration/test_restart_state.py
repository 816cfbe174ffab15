"""Open actions and parked accounts / held listings survive a restart (real broker).

A :class:`~syncd.publish.stage.PublishService` runs against the shared broker and the
marketplace sandboxes; it parks an account (Shopee vacation) or holds a listing
(Wayfair's Confirm Stock Status, found by reconciliation), then stops. A new service
restores the open actions from the compacted ``topics.actions`` on assignment, starts
with the account parked and probing (the listing held) without any new record, and
once the fault is cleared flushes the newest quantities and resolves the action.

The shipped error table is used with its probe intervals shortened (written to a file:
the service loads ``[publish] error_table``).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from syncd.channels.base import listing_ref
from syncd.config.error_table import shipped_text
from syncd.publish.stage import PublishService
from tests.fixtures.kafka import latest
from tests.fixtures.publish_kafka import Setup, produce, row
from tests.fixtures.publishing import SandboxFactory, listing_for, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

PROBE_S = 0.3


def fast_table(tmp: Path) -> str:
    """The shipped error table with every probe interval set to ``PROBE_S``."""
    text = shipped_text()
    path = tmp / "error-table.toml"
    path.write_text(re.sub(r"(?m)^probe_every_s = \d+$", f"probe_every_s = {PROBE_S}", text))
    return str(path)


async def actions(cfg: Any) -> dict[str, dict[str, Any]]:
    """The newest record of each action (what compaction keeps)."""
    return {k.decode(): orjson.loads(v) for k, v in (await latest(cfg, cfg.topics.actions)).items()}


class Running:
    """A publish service running in a task of the test's loop."""

    def __init__(self, cfg: Any) -> None:
        self.svc = PublishService(cfg)
        self.task = asyncio.create_task(self.svc.run())

    async def stop(self) -> None:
        self.svc.request_stop()
        await asyncio.wait_for(self.task, 20)


async def test_a_parked_account_comes_back_parked_probing_and_flushes_after_restart(
    kafka_bootstrap: str, tmp_path: Path, sandbox: SandboxFactory
) -> None:
    sb = await sandbox("shopee")
    creds = sb.add_account("main")
    lists = [listing_for("shopee", i, creds) for i in range(3)]
    for lst in lists:
        sb.add_listing("main", lst, 0)
    st = Setup(tmp_path, kafka_bootstrap, publish={"error_table": fast_table(tmp_path)})
    acct = st.account(sb, "main", batch_size=1)
    _, cfg = st.write()
    action_id = f"{acct}/end-holiday-mode"
    sb.inject("main", "vacation")
    await produce(cfg, [row(acct, lst, 4 + i) for i, lst in enumerate(lists)])

    first = Running(cfg)
    await wait_until(
        lambda: acct in first.svc.pushers and first.svc.pushers[acct].account_park is not None,
        20,
        "parked",
    )
    await produce(cfg, [row(acct, lst, 20 + i) for i, lst in enumerate(lists)])  # newer, kept
    await wait_until(lambda: len(first.svc.pushers[acct].pending) == 3, 20, "kept")
    await first.stop()
    assert (await actions(cfg))[action_id]["state"] == "open"
    assert [sb.stock("main", lst) for lst in lists] == [0, 0, 0]

    second = Running(cfg)  # no new record: the restore alone brings the account back
    await wait_until(lambda: acct in second.svc.pushers, 20, "restored")
    pusher = second.svc.pushers[acct]
    assert pusher.account_park is not None and pusher.account_park.decision.action == (
        "end-holiday-mode"
    )
    assert [a.id for a in pusher.book.open_actions()] == [action_id]
    assert len(pusher.pending) == 3  # the newest quantities, for the flush
    refused = sb.stats("main")["requests"]
    await wait_until(lambda: sb.stats("main")["requests"] >= refused + 2, 10, "probes")
    assert [sb.stock("main", lst) for lst in lists] == [0, 0, 0]  # only probes, refused
    sb.clear("main", "vacation")
    await wait_until(
        lambda: [sb.stock("main", lst) for lst in lists] == [20, 21, 22], 20, "flushed"
    )
    await wait_until(lambda: pusher.account_park is None and pusher.idle, 10, "unparked")
    await second.stop()
    assert (await actions(cfg))[action_id]["state"] == "resolved"


async def test_a_held_listing_from_reconciliation_stays_held_after_restart(
    kafka_bootstrap: str, tmp_path: Path, sandbox: SandboxFactory
) -> None:
    sb = await sandbox("wayfair")
    creds = sb.add_account("main")
    lists = [listing_for("wayfair", i, creds) for i in range(2)]
    for lst in lists:
        sb.add_listing("main", lst, 0)
    publish = {
        "error_table": fast_table(tmp_path),
        "reconcile_interval_s": 0.2,
        "reconcile_share": 0.5,
        "drift_persist_s": 0.3,
    }
    st = Setup(tmp_path, kafka_bootstrap, publish=publish)
    acct = st.account(sb, "main", propagation_delay_s=0)
    _, cfg = st.write()
    action_id = f"{acct}/confirm-stock-status"
    x_key = f"{acct}/{listing_ref(lists[0])}"
    await produce(cfg, [row(acct, lst, 5 + i) for i, lst in enumerate(lists)])

    first = Running(cfg)
    await wait_until(lambda: [sb.stock("main", lst) for lst in lists] == [5, 6], 20, "sent")
    sb.inject("main", "forced_zero", listing=lists[0])  # a Confirm Stock Status alert
    await wait_until(lambda: x_key in first.svc.pushers[acct].held, 20, "held by read-back")
    await produce(cfg, [row(acct, lists[0], 9)])  # newer while held
    held = first.svc.pushers[acct].held
    await wait_until(lambda: getattr(held[x_key].desired, "quantity", 0) == 9, 20, "kept")
    await first.stop()
    record = (await actions(cfg))[action_id]
    assert record["state"] == "open" and record["listings"] == [listing_ref(lists[0])]
    assert "Confirm Stock Status" in record["hint"]

    second = Running(cfg)
    await wait_until(lambda: acct in second.svc.pushers, 20, "restored")
    pusher = second.svc.pushers[acct]
    kept = pusher.held[x_key].desired
    assert kept is not None and kept.quantity == 9
    assert [a.id for a in pusher.book.open_actions()] == [action_id]
    await asyncio.sleep(1.0)  # probes and read-backs: the alert is still there
    assert (await actions(cfg))[action_id]["state"] == "open"
    sb.clear("main", "forced_zero")
    await wait_until(lambda: sb.stock("main", lists[0]) == 9, 20, "the newest applied")
    await wait_until(lambda: not pusher.book.open_actions(), 20, "resolved by read-back")
    await second.stop()
    assert (await actions(cfg))[action_id]["state"] == "resolved"
    assert pusher.counts["reconcile_reads"] > 0

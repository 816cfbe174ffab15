"""The process harness of the scale-out test and the fault soak: syncd as real processes.

Owns:

- :class:`Load`: a seeded stream of input events (snapshots, stale snapshots, adjustments,
  orders placed then shipped or cancelled, producer duplicates) together with its own
  model of the outcome, in plain Python: per SKU the on-hand per warehouse, the units
  reserved, the units ever ordered and the orders seen, and so the quantity every
  listing must show. The configuration the harness writes uses ``safety = "none"``, so
  that quantity is exact and independent of timing: ``max(0, on_hand - reserved)``.
- :class:`Cluster`: the marketplace sandboxes (in this process, one account per
  channel account, each listing starting at :data:`SENTINEL`), a configuration file
  whose channel tables point at them, ``syncd run`` processes in one consumer group
  (spawn, SIGKILL, respawn, stop), producing input records, and reading the end state
  back: what every sandbox shows, the ``<p>.sku-state`` changelog, the desired topic,
  the dead-letter topic, the calls per one-second window per account.

Used by ``tests/integration/test_scale_out.py`` and ``bench/soak.py``; docs/scale-out.md says what
they show.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dev import sample
from dev.kafka import _die_with_parent_preexec
from dev.kafkaio import channel_settings, config_head, create_inputs, latest, produce, read_topic
from syncd import config
from syncd.core.ledger import SkuState
from syncd.kafka.partitioning import partition_for
from syncd.testing.sandbox import Sandbox, start

ROOT = Path(__file__).resolve().parent.parent
TOKEN_PATH = re.compile(r"/auth/|/oauth/")
"""Token endpoints of the sandboxes (grants and refreshes)."""
SENTINEL = 7777
"""Every sandbox listing starts at this quantity, which no input implies: a listing syncd
never pushed is seen as wrong."""


# -- the load and its model ----------------------------------------------------------


@dataclass
class _Order:
    lines: list[tuple[str, str, int]]
    """(sku, warehouse, units)"""
    closed: tuple[str, int] | None = None
    """("shipped" | "cancelled", at)"""


class Load:
    """A seeded input stream and the state it implies (independent of syncd's code).

    Event times rise strictly, every SKU starts with a snapshot per warehouse (an
    unknown stock is not zero), orders ship or cancel whole. Modelled contract rules: a
    snapshot older than the newest one is stale; an adjustment counts after the newest
    snapshot, on-hand never going below 0; a shipped order stays reserved until a
    snapshot of its warehouse at or after the ship time; a repeated record changes
    nothing.
    """

    def __init__(
        self,
        n_skus: int,
        accounts: Sequence[str],
        *,
        seed: int,
        duplicate_rate: float = 0.02,
        stale_rate: float = 0.05,
    ) -> None:
        self.skus = [sample.sku_name(i) for i in range(n_skus)]
        self.accounts = list(accounts)
        self.rng = random.Random(seed)
        self.seed = seed
        self.duplicate_rate = duplicate_rate
        self.stale_rate = stale_rate
        self.now = sample.T0
        self.snaps: dict[tuple[str, str], tuple[int, int]] = {}
        self.adjustments: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self.orders: dict[str, _Order] = {}
        self.open: list[str] = []
        self.recent: list[sample.Rec] = []
        self.counts: Counter[str] = Counter()
        self._n = 0

    # -- generating -----------------------------------------------------------
    def _tick(self) -> int:
        self.now += self.rng.randint(1, 40)
        return self.now

    def _id(self) -> str:
        self._n += 1
        return f"h{self.seed}-{self._n}"

    def _snapshot(self, sku: str, wh: str, qty: int, at: int) -> sample.Rec:
        if at >= self.snaps.get((sku, wh), (0, -1))[1]:
            self.snaps[sku, wh] = (qty, at)
        ev = {
            "type": "stock.snapshot",
            "event_id": self._id(),
            "sku": sku,
            "warehouse": wh,
            "on_hand": qty,
            "as_of": sample.rfc3339(at),
        }
        return sample.Rec("stock", sku.encode(), orjson.dumps(ev))

    def initial(self) -> list[sample.Rec]:
        """The catalog and a first snapshot of every SKU in every warehouse."""
        recs = sample.catalog(len(self.skus), self.accounts)
        for sku in self.skus:
            for wh in sample.WAREHOUSES:
                recs.append(self._snapshot(sku, wh, self.rng.randint(5, 60), self._tick()))
        self.counts["snapshot"] += len(self.skus) * len(sample.WAREHOUSES)
        return recs

    def events(self, n: int) -> list[sample.Rec]:
        return [self._one() for _ in range(n)]

    def _one(self) -> sample.Rec:
        rng = self.rng
        now = self._tick()
        if self.recent and rng.random() < self.duplicate_rate:
            self.counts["duplicate"] += 1
            return rng.choice(self.recent)  # a producer retry
        r = rng.random()
        sku, wh = rng.choice(self.skus), rng.choice(sample.WAREHOUSES)
        if r < 0.3:
            newest = self.snaps[sku, wh][1]
            if rng.random() < self.stale_rate:
                self.counts["stale_snapshot"] += 1
                rec = self._snapshot(sku, wh, rng.randint(0, 60), newest - rng.randint(1, 5000))
            else:
                self.counts["snapshot"] += 1
                rec = self._snapshot(sku, wh, rng.randint(0, 60), now)
        elif r < 0.45:
            delta = rng.choice([-3, -2, -1, 1, 2, 5, 10])
            self.adjustments.setdefault((sku, wh), []).append((now, delta))
            self.counts["adjustment"] += 1
            ev: dict[str, object] = {
                "type": "stock.adjusted",
                "event_id": self._id(),
                "sku": sku,
                "warehouse": wh,
                "delta": delta,
                "as_of": sample.rfc3339(now),
                "reason": "count correction",
            }
            rec = sample.Rec("stock", sku.encode(), orjson.dumps(ev))
        elif self.open and (len(self.open) > 3 * len(self.skus) or rng.random() < 0.45):
            oid = self.open.pop(rng.randrange(len(self.open)))
            kind = "order.shipped" if rng.random() < 0.8 else "order.cancelled"
            self.orders[oid].closed = (kind.split(".")[1], now)
            self.counts[kind] += 1
            at = "shipped_at" if kind == "order.shipped" else "cancelled_at"
            ev = {"type": kind, "event_id": self._id(), "order_id": oid, at: sample.rfc3339(now)}
            rec = sample.Rec("orders", oid.encode(), orjson.dumps(ev))
        else:
            oid = f"O-{self._id()}"
            skus = rng.sample(self.skus, 1 if rng.random() < 0.8 or len(self.skus) < 2 else 2)
            lines = [(s, rng.choice(sample.WAREHOUSES), rng.randint(1, 3)) for s in skus]
            self.orders[oid] = _Order(lines)
            self.open.append(oid)
            self.counts["order.placed"] += 1
            ev = {
                "type": "order.placed",
                "event_id": self._id(),
                "order_id": oid,
                "channel": rng.choice(self.accounts),
                "placed_at": sample.rfc3339(now),
                "lines": [{"sku": s, "qty": q, "warehouse": w} for s, w, q in lines],
            }
            rec = sample.Rec("orders", oid.encode(), orjson.dumps(ev))
        self.recent.append(rec)
        if len(self.recent) > 50:
            self.recent.pop(0)
        return rec

    # -- the model ----------------------------------------------------------------
    def on_hand(self, sku: str, wh: str) -> int:
        qty, at = self.snaps[sku, wh]
        for adj_at, delta in sorted(self.adjustments.get((sku, wh), [])):
            if adj_at > at:
                qty = max(0, qty + delta)
        return qty

    def reserved(self, sku: str) -> int:
        total = 0
        for order in self.orders.values():
            for s, wh, units in order.lines:
                if s != sku:
                    continue
                closed = order.closed
                # open, or shipped and not yet counted by a snapshot of its warehouse
                if closed is None or (closed[0] == "shipped" and self.snaps[s, wh][1] < closed[1]):
                    total += units
        return total

    def quantity(self, sku: str) -> int:
        """The quantity every listing of ``sku`` must show (``safety = "none"``)."""
        return max(0, sum(self.on_hand(sku, w) for w in sample.WAREHOUSES) - self.reserved(sku))

    def expected_state(self) -> dict[str, dict[str, Any]]:
        """Per SKU: on-hand per warehouse, reserved units, units ever ordered, order ids."""
        out: dict[str, dict[str, Any]] = {
            sku: {
                "on_hand": {w: self.on_hand(sku, w) for w in sample.WAREHOUSES},
                "reserved": self.reserved(sku),
                "ordered": 0,
                "orders": set(),
            }
            for sku in self.skus
        }
        for oid, order in self.orders.items():
            for s, _, units in order.lines:
                out[s]["ordered"] += units
                out[s]["orders"].add(oid)
        return out


def state_of(raw: bytes, sku: str) -> dict[str, Any]:
    """The same summary read from a ``<p>.sku-state`` changelog record."""
    s = SkuState.from_bytes(sku, raw)
    return {
        "on_hand": {w: s.on_hand([w]) for w in sample.WAREHOUSES},
        "reserved": s.reserved(),
        "ordered": sum(s.sales.values()),
        "orders": set(s.orders),
    }


# -- accounts and sandboxes ----------------------------------------------------------


def spread_accounts(platforms: Sequence[str], per_platform: int, partitions: int) -> list[str]:
    """Account ids whose desired records land in as many distinct partitions as possible."""
    out: list[str] = []
    used: set[int] = set()
    for platform in platforms:
        i = 0
        for _ in range(per_platform):
            while True:
                account = f"{platform}:s{i}"
                i += 1
                p = partition_for(account, partitions)
                if p not in used or len(used) >= partitions:
                    break
            used.add(p)
            out.append(account)
    return out


@dataclass
class Slot:
    """One ``syncd run`` process of the group and its history."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    logs: list[Path] = field(default_factory=list)
    kills: int = 0
    exits: list[int] = field(default_factory=list)
    """Exit codes of launches that ended by themselves."""


class Cluster:
    """Sandboxes, a config, and ``syncd run`` processes in one consumer group."""

    def __init__(
        self,
        work: Path,
        bootstrap: str,
        load: Load,
        *,
        partitions: int = 6,
        rate_per_s: float = 10.0,
        timeout_s: float = 2.0,
        extra: str = "",
    ) -> None:
        self.work, self.bootstrap, self.load = work, bootstrap, load
        self.partitions, self.rate_per_s, self.timeout_s = partitions, rate_per_s, timeout_s
        self.extra = extra
        self.burst = 1
        self.prefix = f"h{uuid.uuid4().hex[:8]}"
        self.env: dict[str, str] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.slots: list[Slot] = []
        self.calls: dict[str, list[tuple[float, str]]] = {}
        """Per account, (monotonic time, path) of every request its sandbox saw."""
        self.path = work / f"{self.prefix}.toml"
        self.cfg: config.Config | None = None

    # -- set-up --------------------------------------------------------------------
    async def start(self) -> config.Config:
        """Start the sandboxes, write the config, create the input topics.

        The sandboxes serve in this process's event loop and stamp each request when the
        loop reaches it, so a pause of this process bunches arrivals that syncd spaced
        evenly. Inside a test session the heap is large and a full garbage collection
        pauses for long: the objects that exist now are frozen (left out of collections)
        until :meth:`close`."""
        gc.collect()
        gc.freeze()
        tables = []
        for account in self.load.accounts:
            platform, name = account.split(":", 1)
            if platform not in self.sandboxes:
                self.sandboxes[platform] = await start(platform, rate_per_s=self.rate_per_s)
            sb = self.sandboxes[platform]
            creds = sb.add_account(name)
            self._tap(sb, name, account)
            for i in range(len(self.load.skus)):
                sb.add_listing(name, sample.listing_for(account, i), SENTINEL)
            settings = {
                **creds,
                "rate_per_s": self.rate_per_s,
                "burst": self.burst,
                "timeout_s": self.timeout_s,
            }
            tables.append(f'[channels."{account}"]\n{channel_settings(settings, self.env)}')
        head = config_head(
            self.bootstrap,
            self.prefix,
            input_partitions=self.partitions,
            desired_partitions=self.partitions,
        )
        self.path.write_text(
            head
            + f"""
[compute]
batch_max_records = 500
velocity_window_minutes = 10080
[policy]
safety = "none"
[publish]
retry_pass_s = 2.0
stop_deadline_s = 1.0
commit_interval_ms = 100
[admin]
port = 0
{self.extra}
"""
            + "\n\n".join(tables)
            + "\n"
        )
        self.cfg = config.load(self.path, env={**os.environ, **self.env})
        await create_inputs(self.cfg, partitions=self.partitions)
        return self.cfg

    @property
    def config(self) -> config.Config:
        assert self.cfg is not None, "Cluster.start() first"
        return self.cfg

    async def produce(self, recs: Iterable[sample.Rec]) -> int:
        return await produce(self.config, recs)

    # -- processes -------------------------------------------------------------------
    async def spawn(self, index: int) -> Slot:
        """Start ``syncd run`` in slot ``index`` (a new slot when it is the next index)."""
        while len(self.slots) <= index:
            self.slots.append(Slot(len(self.slots)))
        slot = self.slots[index]
        log = self.work / f"{self.prefix}-syncd{index}-{len(slot.logs)}.log"
        slot.logs.append(log)
        with log.open("wb") as out:
            slot.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "syncd",
                "--config",
                str(self.path),
                "run",
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                preexec_fn=_die_with_parent_preexec(),  # no syncd outlives its harness
            )
        return slot

    def alive(self) -> list[int]:
        return [s.index for s in self.slots if s.proc is not None and s.proc.returncode is None]

    def crashed(self) -> str | None:
        """The first slot whose process ended by itself, with the tail of its log."""
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is not None:
                tail = slot.logs[-1].read_text(errors="replace")[-3000:]
                return f"syncd {slot.index} exited with {slot.proc.returncode}:\n{tail}"
        return None

    async def kill(self, index: int) -> None:
        """SIGKILL the process of a slot: no clean shutdown, no leaving the group."""
        slot = self.slots[index]
        assert slot.proc is not None and slot.proc.returncode is None
        slot.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(slot.proc.wait(), 30)
        slot.kills += 1
        slot.proc = None

    async def respawn_exited(self) -> int:
        """Start again every slot whose process ended by itself (a supervisor's job)."""
        n = 0
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is not None:
                slot.exits.append(slot.proc.returncode)
                await self.spawn(slot.index)
                n += 1
        return n

    async def stop(self, within: float = 20.0) -> list[int | None]:
        """SIGTERM every running process, SIGKILL what is still up after ``within`` s."""
        procs = [s.proc for s in self.slots if s.proc is not None and s.proc.returncode is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in procs:
            try:
                codes.append(await asyncio.wait_for(p.wait(), within))
            except TimeoutError:
                p.kill()
                await p.wait()
                codes.append(None)
        return codes

    async def close(self) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                slot.proc.kill()
                await slot.proc.wait()
        for sb in self.sandboxes.values():
            await sb.close()
        gc.unfreeze()

    def log_events(self, index: int, event: str, launch: int = -1) -> list[dict[str, Any]]:
        """The JSON log lines named ``event`` of one launch of a slot (default: the last)."""
        out = []
        path = self.slots[index].logs[launch]
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("event") == event:
                    out.append(rec)
        return out

    def assigned(self, index: int, stage: str) -> set[int]:
        """A slot's current partitions (its last launch's newest assignment): ``compute``
        gives the stock-topic partitions, ``publish`` the desired-topic ones."""
        t = self.config.topics
        for rec in reversed(self.log_events(index, "partitions_assigned")):
            if stage == "publish" and rec.get("topic") == t.desired:
                return set(rec["partitions"])
            if stage == "compute" and "topic" not in rec:
                names = [p.rsplit("/", 1) for p in rec["partitions"]]
                return {int(p) for topic, p in names if topic == t.stock}
        return set()

    # -- the end state -------------------------------------------------------------
    def shown(self) -> dict[tuple[str, str], int]:
        """What every sandbox listing shows now: (account, sku) -> quantity."""
        out = {}
        for account in self.load.accounts:
            platform, name = account.split(":", 1)
            sb = self.sandboxes[platform]
            for i, sku in enumerate(self.load.skus):
                out[account, sku] = sb.stock(name, sample.listing_for(account, i))
        return out

    def mismatches(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Listings not showing the quantity the input implies: key -> (shown, expected)."""
        want = {sku: self.load.quantity(sku) for sku in self.load.skus}
        return {k: (q, want[k[1]]) for k, q in self.shown().items() if q != want[k[1]]}

    async def converge(self, within: float, poll: float = 0.5) -> tuple[float, int]:
        """Wait until every listing shows its quantity; (seconds waited, mismatches left)."""
        started = time.monotonic()
        want = {sku: self.load.quantity(sku) for sku in self.load.skus}
        while True:
            bad = sum(1 for k, q in self.shown().items() if q != want[k[1]])
            waited = time.monotonic() - started
            if bad == 0 or waited >= within:
                return waited, bad
            await asyncio.sleep(poll)

    async def state_mismatches(self) -> dict[str, tuple[Any, Any]]:
        """SKUs whose changelog state differs from the model: sku -> (got, expected).

        Units ever ordered and the set of orders catch an event counted twice or lost;
        on-hand and reservations catch a wrong replay.
        """
        raw = await latest(self.config, self.config.topics.sku_state)
        out: dict[str, tuple[Any, Any]] = {}
        for sku, want in self.load.expected_state().items():
            rec = raw.get(sku.encode())
            got = None if rec is None else state_of(rec, sku)
            if got != want:
                out[sku] = (got, want)
        return out

    async def desired_mismatches(self) -> dict[str, tuple[int | None, int]]:
        """Listings whose newest desired record is not the implied quantity."""
        raw = await latest(self.config, self.config.topics.desired)
        got = {}
        for value in raw.values():
            d = orjson.loads(value)
            got[d["account"], d["sku"]] = d["quantity"]
        out = {}
        for account in self.load.accounts:
            for sku in self.load.skus:
                want = self.load.quantity(sku)
                if got.get((account, sku)) != want:
                    out[f"{account}/{sku}"] = (got.get((account, sku)), want)
        return out

    async def dead_letters(self, bad: Sequence[sample.Rec]) -> dict[str, int]:
        """Dead-letter figures: records, bad inputs found / missing, good inputs in it."""
        dead = await read_topic(self.config, self.config.topics.dead_letter)
        values = {r.value for r in dead}  # type: ignore[attr-defined]
        bad_values = {b.value for b in bad}
        return {
            "dead_letters": len(dead),
            "bad_records": len(bad_values),
            "bad_found": len(bad_values & values),
            "bad_missing": len(bad_values - values),
            "unexpected": len(values - bad_values),
        }

    def _tap(self, sb: Sandbox, name: str, account: str) -> None:
        """Keep (time, path) of every request the sandbox attributes to the account."""
        acc = sb.accounts[name]
        calls = self.calls.setdefault(account, [])
        original = acc.record

        def record(path: str) -> None:
            calls.append((time.monotonic(), path))
            original(path)

        acc.record = record  # type: ignore[method-assign]

    def worst_second(self, account: str) -> tuple[int, float]:
        """The most stock API calls (token requests left out: syncd's limiter does not pace
        them) the account saw in any one-second window, and when that window began."""
        times = [t for t, path in self.calls[account] if not TOKEN_PATH.search(path)]
        best, start, lo = 0, 0.0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= 1.0:
                lo += 1
            if hi - lo + 1 > best:
                best, start = hi - lo + 1, times[lo]
        return best, start

    def rates(self) -> dict[str, dict[str, int]]:
        """Per account at its sandbox: requests, the most in any one-second window (all
        requests; ``api_max_in_1s``: stock API calls only), throttling answers."""
        out = {}
        for account in self.load.accounts:
            platform, name = account.split(":", 1)
            st = self.sandboxes[platform].stats(name)
            out[account] = {k: st[k] for k in ("requests", "max_in_1s", "throttled")}
            out[account]["api_max_in_1s"] = self.worst_second(account)[0]
        return out

    @property
    def rate_bound(self) -> float:
        """Most calls syncd may start in any one-second window: rate + burst."""
        return self.rate_per_s + self.burst

"""Closed-loop flash-sale simulation: oversold units and lost sales per strategy.

    python bench/flash_sale.py [--bootstrap HOST:PORT] [--seed 7] [--scenario NAME ...]
                               [--scale X] [--speed Y]

Owns the shopper model, the accounting of a sale (pure: :class:`Books`), the
periodic-full-sync strategy (pure, simulated without Kafka) and the live
harness that puts syncd in the loop. Shoppers arrive for a SKU on a channel
(Poisson, fixed seed); a shopper sees what the channel shows now (for syncd:
the marketplace sandbox's read-back, in this process) and buys one unit if it
shows one; the platform decrements its shown quantity itself. Every sale (and
every warehouse restock) reaches the order system's consumers after the
order-feed delay: for syncd an ``order.placed`` / ``stock.adjusted`` record on
Kafka, stamped with the simulated time; syncd (compute and publish stages, as
processes) recomputes and pushes the new quantities to the sandboxes over HTTP.

Strategies, run on the same shoppers (same seed):

- ``syncd velocity``: syncd, safety stock from sales velocity;
- ``syncd none``: syncd, no safety stock (both in one syncd run: each SKU has a
  twin listed with ``rules = {safety = "none"}``, the same shoppers buy both);
- ``periodic 10 min``: every 10 simulated minutes every channel is set to
  on-hand minus open orders as the order feed knows them, nothing in between.

Accounting: a sale when the warehouse has no unsold unit left is an oversold
unit; it is counted as *syncd's* when the order feed had already told that the
stock was gone (so only syncd's own latency let the channel show it). A shopper
who finds 0 while unsold units exist is *turned away*; *lost sales* are the
turned-away shoppers of a SKU up to the units it still had unsold at the end
(a unit another shopper bought later was not lost). Both are per 10,000 orders.

Time is compressed (``compression`` simulated seconds per real second, per
scenario): syncd's real latencies count as compressed time too, which is
pessimistic for syncd. The order-feed delay is in simulated seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.publish import Bench  # noqa: E402
from dev import sample  # noqa: E402
from dev.kafkaio import create_inputs, produce  # noqa: E402
from syncd.channels.base import listing_ref  # noqa: E402
from syncd.kafka.clients import ensure_topics  # noqa: E402
from syncd.obs import logs  # noqa: E402

CHANNELS = ("shopee", "lazada", "wayfair")
PERIOD_S = 600.0
"""The periodic full sync's interval (simulated seconds)."""
WAREHOUSE = "WH-1"
ACCOUNT = "sim"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    skus: int
    stock: tuple[int, int]
    """Initial units per SKU (uniform, inclusive)."""
    shoppers: int
    """Shoppers over the whole run (all SKUs, all channels)."""
    minutes: float
    """Simulated length."""
    compression: float
    """Simulated seconds per real second."""
    react_minutes: float
    """syncd's velocity policy: the time it needs to react, in simulated minutes. Set to
    about 3 x (order-feed delay + syncd's p99 event-to-channel latency, ~0.1 s real in
    bench/publish.py, x compression): the margin covers bursts of Poisson arrivals and the
    velocity window's lag behind a sale that has just started."""
    zipf: bool = False
    """SKU popularity 1/(rank+1) instead of flat."""
    channel_share: tuple[float, ...] = (0.5, 0.3, 0.2)
    restocks_per_sku: float = 0.0
    restock_units: tuple[int, int] = (5, 20)
    outage: tuple[int, float, float] | None = None
    """(channel index, start minute, end minute): the channel's API answers 503."""
    feed_delay_s: float = 2.0
    velocity_window_minutes: int = 10
    velocity_bucket_minutes: int = 1

    def scaled(self, x: float) -> Scenario:
        """Fewer SKUs and shoppers (same shape), for smoke runs."""
        return replace(
            self, skus=max(1, round(self.skus * x)), shoppers=max(1, round(self.shoppers * x))
        )


FLASH = Scenario(
    "flash",
    "flash sale: a few hot SKUs on 3 channels, demand 3x stock over 20 min",
    skus=8,
    stock=(100, 140),
    shoppers=8 * 360,
    minutes=20,
    compression=10,
    react_minutes=0.25,
)

SCENARIOS = {
    s.name: s
    for s in (
        FLASH,
        Scenario(
            "steady",
            "steady day: many SKUs (Zipf popularity), restocks, 6 h of trading",
            skus=300,
            stock=(2, 20),
            shoppers=6000,
            minutes=360,
            compression=180,
            react_minutes=1.5,
            zipf=True,
            restocks_per_sku=1.0,
        ),
        replace(
            FLASH,
            name="outage",
            title="flash sale with lazada answering 503 from minute 4 to 12",
            outage=(1, 4.0, 12.0),
        ),
    )
}


# -- the shoppers ------------------------------------------------------------------------


class Shopper(NamedTuple):
    t: float
    sku: int
    channel: int


class Restock(NamedTuple):
    t: float
    sku: int
    units: int


def initial_stock(sc: Scenario, seed: int) -> list[int]:
    rng = random.Random(f"{seed}-stock")
    return [rng.randint(*sc.stock) for _ in range(sc.skus)]


def timeline(sc: Scenario, seed: int) -> list[Shopper | Restock]:
    """Every shopper and restock of a run, in time order (deterministic for a seed)."""
    rng = random.Random(f"{seed}-{sc.name}")
    span = sc.minutes * 60
    weights = [1 / (i + 1) if sc.zipf else 1.0 for i in range(sc.skus)]
    total = sum(weights)
    out: list[Shopper | Restock] = []
    for sku, w in enumerate(weights):
        for ch, share in enumerate(sc.channel_share):
            out += [
                Shopper(t, sku, ch) for t in _poisson(rng, sc.shoppers * w / total * share, span)
            ]
        out += [
            Restock(t, sku, rng.randint(*sc.restock_units))
            for t in _poisson(rng, sc.restocks_per_sku, span)
        ]
    out.sort(key=lambda e: (e.t, e.sku))
    return out


def _poisson(rng: random.Random, expected: float, span: float) -> list[float]:
    if expected <= 0:
        return []
    times, t = [], rng.expovariate(expected / span)
    while t < span:
        times.append(t)
        t += rng.expovariate(expected / span)
    return times


# -- the accounting (pure) ------------------------------------------------------------------


@dataclass
class Books:
    """One strategy's sale: what the warehouse really has, what the order feed has told."""

    unsold: list[int]
    """Physical units not sold yet, per SKU (negative: oversold)."""
    known: list[int] = field(default_factory=list)
    """Unsold units as the order feed has told so far (on hand minus open orders)."""
    shoppers: int = 0
    orders: int = 0
    oversold: int = 0
    oversold_known: int = 0
    turned_away: Counter[int] = field(default_factory=Counter)
    oversold_on: Counter[int] = field(default_factory=Counter)
    """Oversold units per channel."""

    def __post_init__(self) -> None:
        self.known = self.known or list(self.unsold)

    def shop(self, sku: int, shown: int, channel: int = 0) -> bool:
        """A shopper for ``sku`` on ``channel`` showing ``shown``; True if they bought one."""
        self.shoppers += 1
        if shown <= 0:
            if self.unsold[sku] > 0:
                self.turned_away[sku] += 1
            return False
        self.orders += 1
        if self.unsold[sku] <= 0:
            self.oversold += 1
            self.oversold_on[channel] += 1
            self.oversold_known += self.known[sku] <= 0
        self.unsold[sku] -= 1
        return True

    def restock(self, sku: int, units: int) -> None:
        self.unsold[sku] += units

    def told(self, sku: int, delta: int) -> None:
        """The order feed delivered a change of ``delta`` unsold units (-1 a sale)."""
        self.known[sku] += delta

    def lost_sales(self) -> int:
        return sum(min(n, max(0, self.unsold[sku])) for sku, n in self.turned_away.items())

    def figures(self) -> dict[str, Any]:
        per = 10_000 / max(self.orders, 1)
        turned = sum(self.turned_away.values())
        lost = self.lost_sales()
        return {
            "shoppers": self.shoppers,
            "orders": self.orders,
            "oversold": self.oversold,
            "oversold_known": self.oversold_known,
            "turned_away": turned,
            "lost": lost,
            "oversold_by_channel": {CHANNELS[c]: n for c, n in sorted(self.oversold_on.items())},
            "oversold_per_10k": self.oversold * per,
            "oversold_known_per_10k": self.oversold_known * per,
            "turned_away_per_10k": turned * per,
            "lost_per_10k": lost * per,
        }


# -- the loop ------------------------------------------------------------------------------


class Lane(Protocol):
    """One strategy's channels: what they show, and how they hear of sales and restocks."""

    books: Books

    def shown(self, channel: int, sku: int) -> int: ...

    def take(self, channel: int, sku: int) -> None: ...

    async def deliver(self, t: float, sku: int, delta: int, channel: int | None) -> None: ...


class World(Protocol):
    lanes: Sequence[Lane]

    async def advance(self, t: float) -> None: ...


async def drive(world: World, events: Iterable[Shopper | Restock], feed_delay_s: float) -> None:
    """Run the shoppers and restocks; feed messages arrive ``feed_delay_s`` after the fact."""
    feed: list[tuple[float, int, int, int, int, int | None]] = []  # due, seq, lane, sku, delta, ch
    seq = 0

    async def flush(until: float) -> None:
        while feed and feed[0][0] <= until:
            due, _, i, sku, delta, ch = heapq.heappop(feed)
            await world.advance(due)
            lane = world.lanes[i]
            lane.books.told(sku, delta)
            await lane.deliver(due - feed_delay_s, sku, delta, ch)

    for ev in events:
        await flush(ev.t)
        await world.advance(ev.t)
        for i, lane in enumerate(world.lanes):
            if isinstance(ev, Restock):
                lane.books.restock(ev.sku, ev.units)
                delta, ch = ev.units, None
            elif lane.books.shop(ev.sku, lane.shown(ev.channel, ev.sku), ev.channel):
                lane.take(ev.channel, ev.sku)
                delta, ch = -1, ev.channel
            else:
                continue
            seq += 1
            heapq.heappush(feed, (ev.t + feed_delay_s, seq, i, ev.sku, delta, ch))
    await flush(math.inf)


def in_outage(sc: Scenario, channel: int, t: float) -> bool:
    return (
        sc.outage is not None
        and sc.outage[0] == channel
        and (sc.outage[1] * 60 <= t < sc.outage[2] * 60)
    )


class Periodic:
    """The periodic full sync: a World with one Lane, channel quantities in memory."""

    def __init__(self, sc: Scenario, stock: list[int], period_s: float = PERIOD_S) -> None:
        self.sc, self.period_s = sc, period_s
        self.books = Books(list(stock))
        self.lanes = [self]
        self.shelf = [[0] * sc.skus for _ in sc.channel_share]
        self.next_sync = 0.0

    async def advance(self, t: float) -> None:
        while self.next_sync <= t:
            for ch, row in enumerate(self.shelf):
                if not in_outage(self.sc, ch, self.next_sync):
                    row[:] = [max(0, k) for k in self.books.known]
            self.next_sync += self.period_s

    def shown(self, channel: int, sku: int) -> int:
        return self.shelf[channel][sku]

    def take(self, channel: int, sku: int) -> None:
        self.shelf[channel][sku] -= 1

    async def deliver(self, t: float, sku: int, delta: int, channel: int | None) -> None:
        pass


async def run_periodic(sc: Scenario, seed: int) -> dict[str, Any]:
    world = Periodic(sc, initial_stock(sc, seed))
    await drive(world, timeline(sc, seed), sc.feed_delay_s)
    return world.books.figures()


# -- syncd in the loop -----------------------------------------------------------------------


def sku_name(variant: str, i: int) -> str:
    return f"SKU-{variant}{i:05d}"


class LiveLane:
    """One syncd-driven variant: its SKUs' listings on the sandboxes, its feed to Kafka."""

    def __init__(self, live: Live, variant: str, offset: int, stock: list[int]) -> None:
        self.live, self.variant, self.offset = live, variant, offset
        self.books = Books(list(stock))

    def _where(self, channel: int, sku: int) -> tuple[Any, dict[str, Any]]:
        sb, lists = self.live.accounts[self.live.names[channel]]
        return sb, lists[self.offset + sku]

    def shown(self, channel: int, sku: int) -> int:
        sb, lst = self._where(channel, sku)
        return int(sb.stock(ACCOUNT, lst))

    def take(self, channel: int, sku: int) -> None:
        sb, lst = self._where(channel, sku)
        sb.set_stock(ACCOUNT, lst, sb.stock(ACCOUNT, lst) - 1)

    async def deliver(self, t: float, sku: int, delta: int, channel: int | None) -> None:
        name = sku_name(self.variant, sku)
        at = sample.rfc3339(sample.T0 + int(t * 1000))
        self.live.seq += 1
        eid = f"{self.variant}{self.live.seq}"
        if channel is None:
            ev: dict[str, Any] = {
                "type": "stock.adjusted",
                "event_id": eid,
                "sku": name,
                "warehouse": WAREHOUSE,
                "delta": delta,
                "as_of": at,
                "reason": "restock",
            }
            await self.live.send(self.live.cfg.topics.stock, name, ev)
            return
        ev = {
            "type": "order.placed",
            "event_id": eid,
            "order_id": f"O-{eid}",
            "channel": self.live.names[channel],
            "placed_at": at,
            "lines": [{"sku": name, "qty": -delta, "warehouse": WAREHOUSE}],
        }
        await self.live.send(self.live.cfg.topics.orders, ev["order_id"], ev)


class Live:
    """syncd (compute + publish processes) between the order feed and the sandboxes."""

    def __init__(self, bench: Bench, sc: Scenario, stock: list[int]) -> None:
        self.bench, self.sc = bench, sc
        self.seq = 0
        self.accounts = bench.accounts(
            ACCOUNT,
            2 * sc.skus,
            models=1,
            sandbox_limits={},
            settings={p: {"rate_per_s": 1000, "burst": 50} for p in CHANNELS},
        )
        self.names = [f"{p}:{ACCOUNT}" for p in CHANNELS]
        self.lanes = [LiveLane(self, "V", 0, stock), LiveLane(self, "N", sc.skus, stock)]
        self.t0 = 0.0
        self.lag = 0.0
        self.outage_on = False
        self.producer: AIOKafkaProducer | None = None
        self.cfg: Any = None
        self.sent: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: str, ev: dict[str, Any]) -> None:
        assert self.producer is not None
        self.sent.append(await self.producer.send(topic, orjson.dumps(ev), key=key.encode()))

    def catalog_and_stock(self, stock: list[int]) -> list[sample.Rec]:
        recs = []
        for lane in self.lanes:
            rules = {"safety": "none"} if lane.variant == "N" else None
            for account in self.names:
                _, lists = self.accounts[account]
                for i in range(self.sc.skus):
                    lst = lists[lane.offset + i]
                    ev: dict[str, Any] = {
                        "type": "listing.linked",
                        "event_id": f"cat-{account}-{lane.variant}{i}",
                        "channel": account,
                        "listing": lst,
                        "sku": sku_name(lane.variant, i),
                    }
                    if rules:
                        ev["rules"] = rules
                    key = f"{account}/{listing_ref(lst)}".encode()
                    recs.append(sample.Rec("catalog", key, orjson.dumps(ev)))
            for i, units in enumerate(stock):
                name = sku_name(lane.variant, i)
                snap = {
                    "type": "stock.snapshot",
                    "event_id": f"snap-{name}",
                    "sku": name,
                    "warehouse": WAREHOUSE,
                    "on_hand": units,
                    "as_of": sample.rfc3339(sample.T0),
                }
                recs.append(sample.Rec("stock", name.encode(), orjson.dumps(snap)))
        return recs

    async def advance(self, t: float) -> None:
        if self.sc.outage is not None:
            ch, start, end = self.sc.outage
            on = start * 60 <= t < end * 60
            if on != self.outage_on:
                sb, _ = self.accounts[self.names[ch]]
                if on:
                    sb.inject(ACCOUNT, "http_error", status=503)
                else:
                    sb.clear(ACCOUNT, "http_error")
                self.outage_on = on
        ahead = self.t0 + t / self.sc.compression - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        else:
            self.lag = max(self.lag, -ahead)


async def run_live(bench: Bench, sc: Scenario, seed: int) -> dict[str, Any]:
    """Both syncd variants of one scenario in one syncd run; figures per variant."""
    stock = initial_stock(sc, seed)
    live = Live(bench, sc, stock)
    prefix = f"sim{sc.name}{uuid.uuid4().hex[:6]}"
    path, cfg = bench.write_config(
        prefix,
        live.names,
        compute=f"velocity_bucket_minutes = {sc.velocity_bucket_minutes}\n"
        f"velocity_window_minutes = {sc.velocity_window_minutes}\n",
        extra="[admin]\nport = 0\n" + f'[policy]\nsafety = "velocity"\nsafety_units = 1\n'
        f"react_minutes = {sc.react_minutes}\n",
    )
    live.cfg = cfg
    await create_inputs(cfg, 3)
    await ensure_topics(cfg)
    await produce(cfg, live.catalog_and_stock(stock))
    procs = [
        await bench.run(
            "-m",
            "syncd",
            "--config",
            str(path),
            "run",
            "--stage",
            "compute",
            log_name=f"{prefix}-c.log",
        ),
        await bench.run(
            "-m",
            "syncd",
            "--config",
            str(path),
            "run",
            "--stage",
            "publish",
            log_name=f"{prefix}-p.log",
        ),
    ]
    try:
        await warm_up(live, stock, procs, bench.work)
        live.producer = AIOKafkaProducer(
            bootstrap_servers=[bench.bootstrap], acks="all", linger_ms=0
        )
        await live.producer.start()
        live.t0 = time.monotonic()
        await drive(live, timeline(sc, seed), sc.feed_delay_s)
        real = time.monotonic() - live.t0
        await asyncio.gather(*live.sent)
        await live.producer.stop()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await proc.wait()
    return {
        "velocity": live.lanes[0].books.figures(),
        "none": live.lanes[1].books.figures(),
        "real_seconds": real,
        "max_lag_s": live.lag,
    }


async def warm_up(live: Live, stock: list[int], procs: list[Any], work: Path) -> None:
    """Until every listing shows its starting quantity (velocity lane: stock - 1)."""
    deadline = time.monotonic() + 120
    want = [
        (ln, ch, i, s - (ln.variant == "V"))
        for ln in live.lanes
        for ch in range(3)
        for i, s in enumerate(stock)
    ]
    while any(ln.shown(ch, i) != q for ln, ch, i, q in want):
        if time.monotonic() > deadline or any(p.returncode is not None for p in procs):
            sys.exit(f"simulation warm-up did not finish (logs in {work})")
        await asyncio.sleep(0.2)


# -- the command -----------------------------------------------------------------------------

STRATEGIES = ("velocity", "none", "periodic")
LABELS = {
    "velocity": "syncd, velocity safety stock",
    "none": "syncd, no safety stock",
    "periodic": "periodic full sync every 10 min",
}


async def amain(
    bootstrap: str, names: Sequence[str], seed: int, scale: float, speed: float, work: Path
) -> dict[str, Any]:
    bench = Bench(bootstrap, work)
    await bench.start(CHANNELS)
    out: dict[str, Any] = {}
    try:
        for name in names:
            sc = SCENARIOS[name].scaled(scale) if scale != 1 else SCENARIOS[name]
            sc = replace(sc, compression=sc.compression * speed)
            t0 = time.monotonic()
            res = await run_live(bench, sc, seed)
            res["periodic"] = await run_periodic(sc, seed)
            res["scenario"] = scenario_facts(sc)
            res["wall_seconds"] = time.monotonic() - t0
            out[name] = res
            print_table(name, res)
    finally:
        await bench.close()
    return out


def scenario_facts(sc: Scenario) -> dict[str, Any]:
    return {
        "title": sc.title,
        "skus": sc.skus,
        "shoppers": sc.shoppers,
        "minutes": sc.minutes,
        "compression": sc.compression,
        "feed_delay_s": sc.feed_delay_s,
        "react_minutes": sc.react_minutes,
        "velocity_window_minutes": sc.velocity_window_minutes,
        "velocity_bucket_minutes": sc.velocity_bucket_minutes,
        "outage": None
        if sc.outage is None
        else f"{CHANNELS[sc.outage[0]]} 503 from minute {sc.outage[1]:g} to {sc.outage[2]:g}",
    }


def print_table(name: str, res: dict[str, Any]) -> None:
    f = res["scenario"]
    print(
        f"\n{name}: {f['title']}; {f['compression']:g} simulated s per real s"
        f" (real {res['real_seconds']:.0f}s, max lag {res['max_lag_s']:.2f}s real),"
        f" order feed {f['feed_delay_s']:g}s simulated"
    )
    cols = ("orders", "oversold", "oversold_known", "turned_away", "lost")
    print(
        f"  {'strategy':34}"
        + "".join(f"{c:>15}" for c in cols)
        + "   per 10k orders: oversold, lost"
    )
    for s in STRATEGIES:
        r = res[s]
        print(
            f"  {LABELS[s]:34}"
            + "".join(f"{r[c]:>15,}" for c in cols)
            + f"   {r['oversold_per_10k']:>8.1f} {r['lost_per_10k']:>8.1f}"
        )


def run(
    *,
    seed: int = 7,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    scale: float = 1.0,
    speed: float = 1.0,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """Run the scenarios (starting a broker unless ``bootstrap`` is given); figures per scenario.

    ``scale`` shrinks SKUs and shoppers, ``speed`` multiplies the compression (smoke runs).
    """
    from dev import kafka

    logs.configure("error")
    broker = None if bootstrap else kafka.start(heap="1g")
    try:
        work = Path(tempfile.mkdtemp(prefix="syncd-sim-"))
        return asyncio.run(
            amain(bootstrap or broker.bootstrap, scenarios, seed, scale, speed, work)
        )  # type: ignore[union-attr]
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--scale", type=float, default=1.0, help="share of SKUs and shoppers")
    ap.add_argument("--speed", type=float, default=1.0, help="multiplies every compression")
    args = ap.parse_args()
    run(
        seed=args.seed,
        scenarios=args.scenario or tuple(SCENARIOS),
        scale=args.scale,
        speed=args.speed,
        bootstrap=args.bootstrap,
    )


if __name__ == "__main__":
    main()

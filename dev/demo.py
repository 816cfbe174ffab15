"""The main job, end to end on this machine: ``make demo``.

Starts a local Kafka broker, runs syncd on the example configuration (topic
names and broker address adjusted to the local broker), feeds it a sample
stream of orders and stock changes (and a few broken records), and shows the
resulting per-listing quantities, one SKU explained term by term, and the
dead-letter topic. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dev import kafka, sample  # noqa: E402
from dev.kafkaio import create_inputs, produce, read_topic  # noqa: E402
from syncd import config  # noqa: E402


async def _produce(cfg: config.Config, recs: list[sample.Rec]) -> None:
    await create_inputs(cfg, partitions=3)
    await produce(cfg, recs)


async def _dead_letters(cfg: config.Config) -> list[tuple[str, str]]:
    out = []
    for rec in await read_topic(cfg, cfg.topics.dead_letter):
        h = dict(rec.headers)  # type: ignore[attr-defined]
        out.append((h["syncd.error.code"].decode(), h["syncd.error.reason"].decode()))
    return out


def _syncd(cfg_path: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(cfg_path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"syncd {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=12)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--bootstrap", help="use a running broker instead of starting one")
    args = parser.parse_args()

    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        print("starting a local Kafka broker ...", flush=True)
        broker = kafka.start()
        bootstrap = broker.bootstrap
    try:
        work = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
        text = (ROOT / "config" / "syncd.example.toml").read_text()
        text = re.sub(r"bootstrap_servers = \[.*\]", f'bootstrap_servers = ["{bootstrap}"]', text)
        text = text.replace("input_partitions = 6", "input_partitions = 3")
        cfg_path = work / "syncd.toml"
        cfg_path.write_text(text)
        cfg = config.load(cfg_path)

        recs = (
            sample.catalog(args.skus)
            + list(sample.events(args.events, args.skus, seed=1))
            + sample.bad_records()
        )
        print(
            f"producing {len(recs)} records (catalog, orders, stock, {len(sample.bad_records())}"
            f" broken) to {bootstrap} ...",
            flush=True,
        )
        asyncio.run(_produce(cfg, recs))

        print("running syncd until it has caught up ...", flush=True)
        log = _syncd(cfg_path, "run", "--until-caught-up")
        (work / "syncd.log").write_text(log)
        print(f"  (syncd's JSON log: {work / 'syncd.log'})\n")

        print("Quantity each listing should show:\n")
        print(_syncd(cfg_path, "listings"))
        print("One SKU explained:\n")
        print(_syncd(cfg_path, "inspect", sample.sku_name(1)))
        print("Dead-letter topic (records that could not be used, with the reason):\n")
        for code, reason in asyncio.run(_dead_letters(cfg)):
            print(f"  {code:<14} {reason[:110]}")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()

"""The main job, end to end on this machine: ``make demo``.

Starts a local Kafka broker and the marketplace sandboxes (``syncd sandbox``),
runs syncd on the example configuration (broker address adjusted, channel
accounts pointed at the sandboxes, their secrets passed through environment
variables), feeds it a sample stream of orders and stock changes (and a few
broken records), and shows what a seller would check: each listing's desired
quantity, what the channel acknowledged and what the marketplace now shows;
one SKU explained term by term; and the dead-letter topic. Everything stops
by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dev import kafka, sample  # noqa: E402
from dev.kafkaio import channel_settings, create_inputs, produce, read_topic  # noqa: E402
from syncd import config  # noqa: E402

ENV: dict[str, str] = {}
"""Secrets handed to syncd through its environment, as in production."""


def start_sandboxes(work: Path, n_skus: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Run ``syncd sandbox`` with every sample listing; returns the process and its accounts."""
    lines = []
    for account in sample.ACCOUNTS:
        platform = account.split(":", 1)[0]
        lines += [f"[{platform}]", "port = 0", f"[[{platform}.accounts]]", f'name = "{account}"']
        for i in range(n_skus):
            lines += [
                f"[[{platform}.accounts.listings]]",
                f"listing = {json.dumps(sample.listing_for(account, i))}",
                "stock = 0",
            ]
    text = "\n".join(lines).replace('{"', "{ ").replace('": ', " = ").replace(', "', ", ")
    path = work / "sandbox.toml"
    path.write_text(text + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "--sandbox-config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    accounts: dict[str, Any] = {}
    assert proc.stdout is not None
    while len(accounts) < len(sample.ACCOUNTS):
        line = proc.stdout.readline()
        if not line:
            sys.exit("the sandboxes did not start")
        started = json.loads(line)
        for name, creds in started["accounts"].items():
            accounts[name] = {**creds, "control_url": started["control_url"]}
    return proc, accounts


def marketplace_stock(accounts: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, int]:
    """What each marketplace sandbox shows now for each listing (its control API)."""
    shown = {}
    for r in rows:
        creds = accounts[r["account"]]
        req = urllib.request.Request(
            f"{creds['control_url']}/accounts/{r['account']}/stock/get",
            data=json.dumps({"listing": json.loads(r["listing"])}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            shown[r["key"]] = json.loads(resp.read())["shown"]
    return shown


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
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
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
    sandboxes = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        print("starting a local Kafka broker ...", flush=True)
        broker = kafka.start()
        bootstrap = broker.bootstrap
    try:
        work = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
        print("starting the marketplace sandboxes ...", flush=True)
        sandboxes, accounts = start_sandboxes(work, args.skus)
        text = (ROOT / "config" / "syncd.example.toml").read_text()
        for account, creds in accounts.items():
            settings = channel_settings(
                {k: v for k, v in creds.items() if k != "control_url"}, ENV, tag="DEMO"
            )
            header = f'\n[channels."{account}"]\n'  # a real table, not the commented example
            text = text.replace(header, header + settings + "\n", 1)
        text = re.sub(r"bootstrap_servers = \[.*\]", f'bootstrap_servers = ["{bootstrap}"]', text)
        text = text.replace("input_partitions = 6", "input_partitions = 3")
        cfg_path = work / "syncd.toml"
        cfg_path.write_text(text)
        cfg = config.load(cfg_path, env={**os.environ, **ENV})

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

        print(
            "running syncd (compute, then publish to the sandboxes) until caught up ...", flush=True
        )
        log = _syncd(cfg_path, "run", "--until-caught-up")
        (work / "syncd.log").write_text(log)
        print(f"  (syncd's JSON log: {work / 'syncd.log'})\n")

        print("Each listing: desired, acknowledged by the channel, shown by the marketplace:\n")
        rows = json.loads(_syncd(cfg_path, "listings", "--json"))
        shown = marketplace_stock(accounts, rows)
        print(f"{'ACCOUNT':<16} {'DESIRED':>7} {'ACKED':>6} {'SHOWN':>6}  LISTING")
        for r in rows:
            acked = "-" if r["acked"] is None else r["acked"]
            print(
                f"{r['account']:<16} {r['desired']:>7} {acked:>6} {shown.get(r['key'], '-'):>6}"
                f"  {r['listing']}"
            )
        agree = sum(1 for r in rows if shown.get(r["key"]) == r["desired"] == r["acked"])
        print(f"\n{agree} of {len(rows)} listings show exactly the desired quantity.\n")
        print("One SKU explained:\n")
        print(_syncd(cfg_path, "inspect", sample.sku_name(1)))
        print("Dead-letter topic (records that could not be used, with the reason):\n")
        for code, reason in asyncio.run(_dead_letters(cfg)):
            print(f"  {code:<14} {reason[:110]}")
    finally:
        if sandboxes is not None:
            sandboxes.terminate()
            sandboxes.wait(timeout=10)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()

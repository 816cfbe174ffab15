"""Campaign reservations count everywhere (issue 4, point 3), against the real broker.

A Lazada listing is locked for a campaign (the sandbox's ``reserved`` fault: Lazada refuses
a SellableQuantity below the campaign's locked units). The publish stage learns the held
units from the refusal, sends at least them, and hands the hold to the compute stage
through ``<p>.holds``; every other channel's available stock for the SKU drops by the held
units. When the platform accepts a quantity below the hold again, the hold has ended and
the other channels get the units back.

The stages run in their bounded modes, one after the other (compute, publish, compute,
publish), so the real loops are driven without sleeps.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from dev.kafkaio import channel_settings, config_head, create_inputs, produce
from dev.sample import Rec, rfc3339
from syncd import config
from syncd.channels.base import listing_ref
from syncd.compute.stage import ComputeStage
from syncd.core.ledger import SkuState
from syncd.publish.stage import PublishService
from syncd.testing.sandbox import Sandbox, start
from tests.fixtures.kafka import latest, read_topic
from tests.fixtures.publishing import listing_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SKU = "CAMP-1"
T0 = 1_795_000_000_000


def _catalog(account: str, listing: dict[str, Any]) -> Rec:
    ref = listing_ref(listing)
    ev = {
        "type": "listing.linked",
        "event_id": f"cat-{account}",
        "channel": account,
        "listing": listing,
        "sku": SKU,
    }
    return Rec("catalog", f"{account}/{ref}".encode(), orjson.dumps(ev))


def _snapshot(n: int, on_hand: int) -> Rec:
    ev = {
        "type": "stock.snapshot",
        "event_id": f"snap-{n}",
        "sku": SKU,
        "warehouse": "WH-1",
        "on_hand": on_hand,
        "as_of": rfc3339(T0 + n * 1000),
    }
    return Rec("stock", SKU.encode(), orjson.dumps(ev))


async def _round(cfg: config.Config) -> None:
    """One bounded pass of each stage: compute to its end, then publish to its end."""
    await ComputeStage(cfg, until_caught_up=True).run()
    await PublishService(cfg, until_caught_up=True).run()


async def test_units_a_campaign_holds_on_one_channel_leave_every_other_channel(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lazada: Sandbox = await start("lazada")
    shopify: Sandbox = await start("shopify")
    try:
        env: dict[str, str] = {}
        tables = []
        lists: dict[str, dict[str, Any]] = {}
        for sb in (lazada, shopify):
            creds = sb.add_account("shop")
            lists[sb.platform] = listing_for(sb.platform, 1, creds)
            sb.add_listing("shop", lists[sb.platform], 0)
            tables.append(f'[channels."{sb.platform}:shop"]\n' + channel_settings(creds, env))
        prefix = f"c{uuid.uuid4().hex[:8]}"
        # Lazada shows at most 2 (its own cap), so its pushes go below the campaign's 6.
        text = (
            config_head(kafka_bootstrap, prefix, input_partitions=1, desired_partitions=1)
            + '\n[policy]\nsafety = "none"\n'
            + '[channels."lazada:shop".policy]\nmax_quantity = 2\n'
            + "\n"
            + "\n\n".join(tables)
            + "\n"
        )
        path = tmp_path / "campaign.toml"
        path.write_text(text)
        cfg = config.load(path, env={**os.environ, **env})
        lazada.inject("shop", "reserved", listing=lists["lazada"], quantity=6)
        await create_inputs(cfg, partitions=1)

        await produce(
            cfg,
            [
                _catalog("lazada:shop", lists["lazada"]),
                _catalog("shopify:shop", lists["shopify"]),
                _snapshot(1, 20),
            ],
        )
        await _round(cfg)
        # Lazada refused 2 (locked 6) and was sent the 6 it holds; Shopify got 20 before
        # the hold was known.
        assert lazada.stock("shop", lists["lazada"]) == 6
        assert shopify.stock("shop", lists["shopify"]) == 20
        holds = [orjson.loads(r.value) for r in await read_topic(cfg, cfg.topics.holds)]  # type: ignore[attr-defined]
        assert [(h["account"], h["sku"], h["held"]) for h in holds] == [("lazada:shop", SKU, 6)]

        await _round(cfg)  # compute takes the hold: Shopify's available drops by 6
        assert shopify.stock("shop", lists["shopify"]) == 20 - 6
        state = SkuState.from_bytes(SKU, (await latest(cfg, cfg.topics.sku_state))[SKU.encode()])
        assert state.holds == {"lazada:shop": 6}

        # The campaign ends: Lazada accepts a quantity below 6 again, the hold is released.
        lazada.clear("shop")
        await produce(cfg, [_snapshot(2, 7)])
        # compute: Shopify 7 - 6 = 1, Lazada 2 (unchanged, acknowledged: not sent again)
        await _round(cfg)
        assert shopify.stock("shop", lists["shopify"]) == 1
        await produce(cfg, [_snapshot(3, 1)])
        await _round(cfg)  # Lazada 1 is accepted (below 6): the hold has ended
        assert lazada.stock("shop", lists["lazada"]) == 1
        assert shopify.stock("shop", lists["shopify"]) == 0  # 1 - 6, the hold still counted
        await _round(cfg)  # compute takes the end of the hold: Shopify gets the unit back
        assert shopify.stock("shop", lists["shopify"]) == 1
        state = SkuState.from_bytes(SKU, (await latest(cfg, cfg.topics.sku_state))[SKU.encode()])
        assert state.holds == {}
    finally:
        await lazada.close()
        await shopify.close()

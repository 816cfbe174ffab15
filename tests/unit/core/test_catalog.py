"""The listing catalog (syncd.core.catalog): which channel listing sells which SKU."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from syncd.contract import decode_listing
from syncd.core.catalog import Catalog, Listing
from syncd.core.events import ListingLinked, ListingTombstone, ListingUnlinked
from syncd.core.keys import listing_key
from syncd.errors import InvalidRecord

SHOPEE = "shopee:my-main"
LAZADA = "lazada:sg-main"
ITEM = {"item_id": 123, "model_id": 456}
ITEM2 = {"item_id": 123, "model_id": 789}


def ref(listing: dict[str, Any]) -> str:
    return orjson.dumps(listing, option=orjson.OPT_SORT_KEYS).decode()


def rkey(channel: str, listing: dict[str, Any]) -> str:
    return f"{channel}/{ref(listing)}"


def link(
    sku: str,
    channel: str = SHOPEE,
    listing: dict[str, Any] | None = None,
    *,
    eid: str = "e",
    warehouses: tuple[str, ...] | None = None,
    rules: dict[str, Any] | None = None,
) -> ListingLinked:
    listing = ITEM if listing is None else listing
    return ListingLinked(eid, channel, listing, ref(listing), sku, warehouses, rules)


def unlink(channel: str = SHOPEE, listing: dict[str, Any] | None = None) -> ListingUnlinked:
    listing = ITEM if listing is None else listing
    return ListingUnlinked("u", channel, listing, ref(listing))


def apply_link(cat: Catalog, ev: ListingLinked) -> set[str]:
    return cat.apply(rkey(ev.channel, ev.listing), ev)


def test_empty_catalog() -> None:
    cat = Catalog()
    assert len(cat) == 0
    assert cat.listings_for("A") == []
    assert cat.skus() == []
    assert cat.all() == []
    assert cat.get(rkey(SHOPEE, ITEM)) is None


def test_link_adds_listing_for_its_sku() -> None:
    cat = Catalog()
    ev = link("A", warehouses=("W1",), rules={"share": 0.5})
    assert apply_link(cat, ev) == {"A"}
    [lst] = cat.listings_for("A")
    assert lst == Listing(SHOPEE, ITEM, ref(ITEM), "A", ("W1",), {"share": 0.5})
    assert lst.key == f"{SHOPEE}/{ref(ITEM)}" == listing_key(SHOPEE, ref(ITEM))
    assert lst.key == 'shopee:my-main/{"item_id":123,"model_id":456}'
    assert lst.platform == "shopee"
    assert cat.get(lst.key) == lst
    assert len(cat) == 1
    assert cat.skus() == ["A"]
    assert cat.listings_for("B") == []


def test_several_listings_of_one_sku_and_channels() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    apply_link(cat, link("A", listing=ITEM2))
    apply_link(cat, link("A", channel=LAZADA, listing={"seller_sku": "A"}))
    apply_link(cat, link("B", channel=LAZADA, listing={"seller_sku": "B"}))
    assert len(cat) == 4
    assert sorted(x.key for x in cat.listings_for("A")) == sorted(
        [rkey(SHOPEE, ITEM), rkey(SHOPEE, ITEM2), rkey(LAZADA, {"seller_sku": "A"})]
    )
    assert [x.key for x in cat.listings_for("B")] == [rkey(LAZADA, {"seller_sku": "B"})]
    assert sorted(cat.skus()) == ["A", "B"]
    assert {x.platform for x in cat.all()} == {"shopee", "lazada"}


def test_same_listing_ref_on_two_accounts_is_two_listings() -> None:
    cat = Catalog()
    apply_link(cat, link("A", channel="shopee:one"))
    apply_link(cat, link("B", channel="shopee:two"))
    assert len(cat) == 2
    assert [x.channel for x in cat.listings_for("A")] == ["shopee:one"]
    assert [x.channel for x in cat.listings_for("B")] == ["shopee:two"]


def test_relink_to_another_sku_affects_both() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    apply_link(cat, link("A", listing=ITEM2))
    assert apply_link(cat, link("B")) == {"A", "B"}
    assert [x.key for x in cat.listings_for("A")] == [rkey(SHOPEE, ITEM2)]
    assert [x.sku for x in cat.listings_for("B")] == ["B"]
    assert len(cat) == 2
    assert cat.get(rkey(SHOPEE, ITEM)).sku == "B"  # type: ignore[union-attr]


def test_relink_of_only_listing_removes_old_sku() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    assert apply_link(cat, link("B")) == {"A", "B"}
    assert cat.listings_for("A") == []
    assert cat.skus() == ["B"]


def test_relink_to_same_sku_updates_rules_and_warehouses() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    assert apply_link(cat, link("A", warehouses=("W2",), rules={"max_quantity": 3})) == {"A"}
    [lst] = cat.listings_for("A")
    assert (lst.warehouses, lst.rules) == (("W2",), {"max_quantity": 3})
    assert len(cat) == 1


def test_unlink_removes_listing() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    apply_link(cat, link("A", listing=ITEM2))
    assert cat.apply(rkey(SHOPEE, ITEM), unlink()) == {"A"}
    assert [x.key for x in cat.listings_for("A")] == [rkey(SHOPEE, ITEM2)]
    assert cat.get(rkey(SHOPEE, ITEM)) is None
    assert cat.apply(rkey(SHOPEE, ITEM2), unlink(listing=ITEM2)) == {"A"}
    assert cat.listings_for("A") == []
    assert cat.skus() == []
    assert len(cat) == 0


def test_unlink_unknown_listing_affects_nothing() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    assert cat.apply(rkey(SHOPEE, ITEM2), unlink(listing=ITEM2)) == set()
    assert cat.apply(rkey(LAZADA, ITEM), unlink(channel=LAZADA)) == set()
    assert len(cat) == 1
    # Unlinking twice: the second does nothing.
    assert cat.apply(rkey(SHOPEE, ITEM), unlink()) == {"A"}
    assert cat.apply(rkey(SHOPEE, ITEM), unlink()) == set()


def test_tombstone_by_record_key_unlinks() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    apply_link(cat, link("A", listing=ITEM2))
    assert cat.apply(rkey(SHOPEE, ITEM), ListingTombstone(rkey(SHOPEE, ITEM))) == {"A"}
    assert [x.key for x in cat.listings_for("A")] == [rkey(SHOPEE, ITEM2)]
    # A second tombstone, or one for a key never seen, affects nothing.
    assert cat.apply(rkey(SHOPEE, ITEM), ListingTombstone(rkey(SHOPEE, ITEM))) == set()
    assert cat.apply("nope", ListingTombstone("nope")) == set()
    assert len(cat) == 1


def test_tombstone_uses_the_record_key_as_written() -> None:
    """The record key need not be the canonical listing key: the tombstone names only it."""
    cat = Catalog()
    raw_key = 'shopee:my-main/{"model_id": 456, "item_id": 123}'
    assert cat.apply(raw_key, link("A")) == {"A"}
    assert cat.apply(raw_key, ListingTombstone(raw_key)) == {"A"}
    assert cat.listings_for("A") == []


def test_tombstone_after_relink_removes_current_link() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    apply_link(cat, link("B"))
    assert cat.apply(rkey(SHOPEE, ITEM), ListingTombstone(rkey(SHOPEE, ITEM))) == {"B"}
    assert cat.listings_for("A") == cat.listings_for("B") == []


def test_tombstone_after_unlink_affects_nothing() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    cat.apply(rkey(SHOPEE, ITEM), unlink())
    assert cat.apply(rkey(SHOPEE, ITEM), ListingTombstone(rkey(SHOPEE, ITEM))) == set()


def test_link_after_unlink_and_tombstone_links_again() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    cat.apply(rkey(SHOPEE, ITEM), ListingTombstone(rkey(SHOPEE, ITEM)))
    assert apply_link(cat, link("C")) == {"C"}
    assert [x.sku for x in cat.listings_for("C")] == ["C"]


def test_listings_for_returns_a_copy() -> None:
    cat = Catalog()
    apply_link(cat, link("A"))
    got = cat.listings_for("A")
    got.clear()
    assert len(cat.listings_for("A")) == 1


@pytest.mark.parametrize("n", [50])
def test_many_links_and_relinks_keep_indexes_consistent(n: int) -> None:
    cat = Catalog()
    for i in range(n):
        apply_link(cat, link(f"S{i % 7}", listing={"item_id": i}))
    for i in range(0, n, 3):
        apply_link(cat, link(f"T{i % 5}", listing={"item_id": i}))
    for i in range(0, n, 4):
        cat.apply(rkey(SHOPEE, {"item_id": i}), ListingTombstone(rkey(SHOPEE, {"item_id": i})))
    by_sku: dict[str, set[str]] = {}
    for lst in cat.all():
        by_sku.setdefault(lst.sku, set()).add(lst.key)
    assert set(cat.skus()) == set(by_sku)
    for sku, keys in by_sku.items():
        assert {x.key for x in cat.listings_for(sku)} == keys
    expected = {i for i in range(n) if i % 4}
    assert {x.listing["item_id"] for x in cat.all()} == expected
    assert len(cat) == len(expected)


# -- decoding: the listing's rules are checked at the edge ------------------------------------

KEY = b'shopee:my-main/{"item_id":123,"model_id":456}'
LINKED = {
    "type": "listing.linked",
    "event_id": "e1",
    "channel": SHOPEE,
    "listing": {"model_id": 456, "item_id": 123},
    "sku": "A",
}


def test_decode_linked_with_valid_rules() -> None:
    ev = decode_listing(KEY, orjson.dumps({**LINKED, "rules": {"share": 0.5}}), max_bytes=65536)
    assert isinstance(ev, ListingLinked)
    assert ev.rules == {"share": 0.5}
    assert ev.listing_ref == ref(ITEM)
    cat = Catalog()
    assert cat.apply(KEY.decode(), ev) == {"A"}
    assert cat.get(KEY.decode()) is not None


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"share": 2}, "rules.share"),
        ({"share": 0.5, "max_quantity": -1}, "rules.max_quantity"),
        ({"safety": "lots"}, "rules.safety"),
        ({"safty_units": 1}, "rules.safty_units"),
    ],
)
def test_decode_linked_with_bad_rules_names_the_rule(rules: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as ei:
        decode_listing(KEY, orjson.dumps({**LINKED, "rules": rules}), max_bytes=65536)
    assert ei.value.code == "invalid_value"
    assert ei.value.field == field
    assert ei.value.reason.startswith(f"{field}: ")


def test_decode_null_value_is_a_tombstone_for_the_key() -> None:
    ev = decode_listing(KEY, None, max_bytes=65536)
    assert ev == ListingTombstone(KEY.decode())

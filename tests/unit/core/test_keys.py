"""core/keys.py: the one definition of each key syncd builds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.contract import listing_ref as contract_listing_ref
from syncd.core.actions import Action
from syncd.core.catalog import Listing
from syncd.core.keys import account_of, action_id, hold_key, listing_key, listing_ref


class _Listing(Mapping[str, Any]):
    """A read-only mapping that is not a dict (what a channel may hand in)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_listing_ref_is_sorted_compact_json() -> None:
    assert listing_ref({"model_id": 2, "item_id": 1}) == '{"item_id":1,"model_id":2}'
    assert listing_ref({"sku": "Ä B"}) == '{"sku":"Ä B"}'


def test_listing_ref_takes_any_mapping() -> None:
    data = {"b": 1, "a": [1, 2]}
    assert listing_ref(MappingProxyType(data)) == listing_ref(_Listing(data)) == listing_ref(data)


def test_listing_ref_refuses_what_json_cannot_say() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(TypeError):
        listing_ref(deep)


ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ids = st.dictionaries(st.text(max_size=8), ints | st.text(max_size=8), max_size=4)


@given(ids)
def test_listing_ref_is_canonical(listing: dict[str, Any]) -> None:
    assert contract_listing_ref is listing_ref  # the contract re-exports the core's
    reordered = dict(reversed(list(listing.items())))
    assert listing_ref(reordered) == listing_ref(listing)
    assert orjson.loads(listing_ref(listing)) == listing


@given(st.text(min_size=1).filter(lambda s: "/" not in s), st.text())
def test_account_of_inverts_listing_key(account: str, ref: str) -> None:
    assert account_of(listing_key(account, ref)) == account
    assert listing_key(account, ref) == f"{account}/{ref}"


def test_the_keys_of_the_internal_topics() -> None:
    ref = listing_ref({"item_id": 1, "model_id": 2})
    assert listing_key("shopee:main", ref) == 'shopee:main/{"item_id":1,"model_id":2}'
    assert account_of('shopee:main/{"url":"a/b"}') == "shopee:main"
    assert hold_key("shopee:main", "SKU-1") == "shopee:main/SKU-1"
    assert action_id("shopee:main", "reconnect-store") == "shopee:main/reconnect-store"
    assert account_of(action_id("shopee:main", "reconnect-store")) == "shopee:main"


def test_the_domain_objects_use_them() -> None:
    lst = Listing("shopee:main", {"item_id": 1}, '{"item_id":1}', "SKU", None, None)
    assert lst.key == listing_key("shopee:main", '{"item_id":1}')
    a = Action("shopee:main", "reconnect-store", "refresh-auth", "hint", 1, 1)
    assert a.id == action_id("shopee:main", "reconnect-store")

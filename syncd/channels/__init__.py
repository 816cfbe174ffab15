"""Marketplace channel clients and the registry of platforms.

One module per platform (:mod:`~syncd.channels.shopee`,
:mod:`~syncd.channels.lazada`, :mod:`~syncd.channels.wayfair`,
:mod:`~syncd.channels.shopify`) behind the :class:`~syncd.channels.base.Channel`
protocol. This package owns the registry ``{platform: class}``:
:func:`make_channel` builds one account's client, :func:`check_settings`
lists every problem of one account's settings (for ``check-config``; the
same model ``make_channel`` reads them with), :func:`register` adds a
platform (a new platform is its module, one ``register`` call and its
error-table rows), :func:`platforms` lists them.

Import order is plain: the platform modules import the contract
(:mod:`~syncd.channels.base`) and the plumbing (:mod:`~syncd.channels.http`,
:mod:`~syncd.channels.tokens`), never this package's names; this package
imports the platform modules to register the built-ins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from syncd import platforms as names
from syncd.channels.base import Channel, TokenStore
from syncd.channels.http import SessionFactory
from syncd.channels.lazada import LazadaChannel
from syncd.channels.settings import ChannelSettings
from syncd.channels.shopee import ShopeeChannel
from syncd.channels.shopify import ShopifyChannel
from syncd.channels.wayfair import WayfairChannel
from syncd.errors import ConfigError


class ChannelClass(Protocol):
    """What the registry needs of a platform: its settings' model and a constructor of
    one account's client (which reads its settings through that model)."""

    @property
    def settings_model(self) -> type[ChannelSettings]: ...

    def __call__(
        self,
        account: str,
        settings: Mapping[str, Any],
        token_store: TokenStore,
        session_factory: SessionFactory | None = None,
    ) -> Channel: ...


_REGISTRY: dict[str, ChannelClass] = {}


def register(platform: str, cls: ChannelClass) -> None:
    """Make ``platform`` known (to :mod:`syncd.platforms` too, so that the contract, the
    configuration and the error table accept it), its accounts built by ``cls``; a second
    call replaces the class."""
    names.add(platform)
    _REGISTRY[platform] = cls


def unregister(platform: str) -> None:
    """Forget ``platform`` (tests that registered a toy one)."""
    _REGISTRY.pop(platform, None)
    names.remove(platform)


def platforms() -> tuple[str, ...]:
    """The registered platforms, in registration order."""
    return tuple(_REGISTRY)


def check_settings(platform: str, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem of one account's settings (secrets already resolved), as
    ``(key, reason)``: unknown keys (a typo such as ``partnerid``), missing required
    keys, wrong types and values. Empty when ``make_channel`` reads them whole (it ignores
    unknown keys and raises for the first other problem)."""
    cls = _REGISTRY.get(platform)
    if cls is None:
        return [("<platform>", f"unknown platform {platform!r}")]
    return cls.settings_model.problems(settings)


def make_channel(
    platform: str,
    account: str,
    settings: Mapping[str, Any],
    token_store: TokenStore,
    session_factory: SessionFactory | None = None,
) -> Channel:
    """Build the client for one account from its config table (credentials already resolved)."""
    cls = _REGISTRY.get(platform)
    if cls is None:
        raise ConfigError(f"channels.{account}", f"unknown platform {platform!r}")
    return cls(account, settings, token_store, session_factory)


for _cls in (ShopeeChannel, LazadaChannel, WayfairChannel, ShopifyChannel):
    register(_cls.platform, _cls)

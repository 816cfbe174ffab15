"""Fixtures for the channel tests: a marketplace sandbox per test, on 127.0.0.1.

``sandbox_factory`` (function, :class:`SandboxFactory`): ``await
sandbox_factory(platform, **start_kwargs)`` starts :func:`syncd.testing.sandbox.start` on a
free loopback port; ``sandbox_factory.closing(channel)`` returns ``channel``. The
channels, then the sandboxes, are closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from syncd.channels.base import Channel
from syncd.testing.sandbox import Sandbox, start

C = TypeVar("C", bound=Channel)


class SandboxFactory:
    def __init__(self) -> None:
        self._sandboxes: list[Sandbox] = []
        self._channels: list[Channel] = []

    async def __call__(self, platform: str, **kwargs: Any) -> Sandbox:
        sb = await start(platform, host="127.0.0.1", port=0, **kwargs)
        self._sandboxes.append(sb)
        return sb

    def closing(self, channel: C) -> C:
        self._channels.append(channel)
        return channel

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()
        for sb in self._sandboxes:
            await sb.close()


@pytest.fixture
async def sandbox_factory() -> AsyncIterator[SandboxFactory]:
    factory = SandboxFactory()
    yield factory
    await factory.close()

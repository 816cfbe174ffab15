"""Fixtures for the channel tests: a marketplace sandbox per test, on 127.0.0.1.

``sandbox_factory`` (function): ``await sandbox_factory(platform, **start_kwargs)``
starts :func:`syncd.sandbox.start` on a free loopback port and closes it after
the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from syncd.sandbox import Sandbox, start

SandboxFactory = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def sandbox_factory() -> AsyncIterator[SandboxFactory]:
    started: list[Sandbox] = []

    async def make(platform: str, **kwargs: Any) -> Sandbox:
        sb = await start(platform, host="127.0.0.1", port=0, **kwargs)
        started.append(sb)
        return sb

    yield make
    for sb in started:
        await sb.close()

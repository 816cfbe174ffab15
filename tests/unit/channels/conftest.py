"""Fixtures for the channel tests: a marketplace sandbox per test, on 127.0.0.1.

``sandbox_factory`` (function, :class:`SandboxFactory` of tests/fixtures/channels.py):
``await sandbox_factory(platform, **start_kwargs)`` starts :func:`syncd.testing.sandbox.start`
on a free loopback port; ``sandbox_factory.closing(channel)`` returns ``channel``. The
channels, then the sandboxes, are closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.channels import SandboxFactory


@pytest.fixture
async def sandbox_factory() -> AsyncIterator[SandboxFactory]:
    factory = SandboxFactory()
    yield factory
    await factory.close()

"""Test-wide fixtures: the real local Kafka broker (dev/kafka.py) and per-test topics.

Owns:

- ``kafka_bootstrap`` (session, ``str``): ``127.0.0.1:PORT`` of one broker started for the
  whole test session on a free port in a temp folder, stopped at the end. If the environment
  variable ``SYNCD_TEST_BOOTSTRAP`` is set, that address is used instead and no broker is
  started. If the broker cannot start, every test using it fails (never skipped).
- ``kafka_broker`` (function, ``dev.kafka.Broker``): the session's broker object, for tests
  that stop, kill or restart it (``.restart()`` keeps its port and data); it is running again
  after the test. With ``SYNCD_TEST_BOOTSTRAP`` set there is no session broker to control, so
  the test gets a private broker of its own instead: use ``kafka_broker.bootstrap`` (and
  ``topic_factory(..., bootstrap=kafka_broker.bootstrap)``) in such tests.
- ``topic_factory`` (function): ``await topic_factory(partitions=1, config=None, *,
  prefix="t", bootstrap=None) -> str`` creates a uniquely named topic (replication factor 1)
  through aiokafka's admin client, waits until every partition has a leader and returns its
  name. The broker runs with ``auto.create.topics.enable=false``: tests create their topics.

It also registers the fixtures of the shared helper modules for every test folder:
``sandbox`` (tests/fixtures/publishing.py) and ``daemons`` (tests/fixtures/daemon.py).
Shared helpers live in tests/fixtures/; no test module imports from another.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # dev/ is not installed; make `dev.kafka` importable
    sys.path.insert(0, str(ROOT))

from dev.kafka import Broker, KafkaDevError, start  # noqa: E402

pytest_plugins = ["tests.fixtures.daemon", "tests.fixtures.publishing"]

BOOTSTRAP_ENV = "SYNCD_TEST_BOOTSTRAP"


def _start_or_fail(data_dir: Path) -> Broker:
    """Start a broker for the tests; a failure fails the test (it is never skipped)."""
    try:
        return start(port=0, data_dir=data_dir, die_with_parent=True)
    except (KafkaDevError, OSError) as exc:
        error = exc
    pytest.fail(
        f"could not start the local Kafka broker (dev/kafka.py) in {data_dir}: {error}\n"
        f"Set {BOOTSTRAP_ENV}=host:port to use a broker that is already running.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def _session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker | None]:
    """The broker this session started, or None when SYNCD_TEST_BOOTSTRAP is set."""
    if os.environ.get(BOOTSTRAP_ENV):
        yield None
        return
    broker = _start_or_fail(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_broker: Broker | None) -> str:
    """Bootstrap address of the test session's broker (or of SYNCD_TEST_BOOTSTRAP)."""
    if _session_broker is None:
        return os.environ[BOOTSTRAP_ENV]
    return _session_broker.bootstrap


@pytest.fixture
def kafka_broker(_session_broker: Broker | None, tmp_path: Path) -> Iterator[Broker]:
    """The session's Broker object (a private one under SYNCD_TEST_BOOTSTRAP).

    After the test the session broker is running again, whatever the test did to it.
    """
    if _session_broker is None:
        private = _start_or_fail(tmp_path / "kafka")
        try:
            yield private
        finally:
            private.stop()
        return
    yield _session_broker
    if not _session_broker.is_running():
        try:
            _session_broker.restart()
        except KafkaDevError as exc:
            pytest.fail(f"could not bring the session broker back up: {exc}", pytrace=False)


class TopicFactory(Protocol):
    """Signature of the ``topic_factory`` fixture's callable."""

    def __call__(
        self,
        partitions: int = 1,
        config: dict[str, str] | None = None,
        *,
        prefix: str = "t",
        bootstrap: str | None = None,
    ) -> Awaitable[str]: ...


async def _wait_for_leaders(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    """Wait until the topic's metadata shows a leader for every partition."""
    async with asyncio.timeout(15):
        while True:
            topics = await admin.describe_topics([name])
            parts = topics[0]["partitions"] if topics and topics[0]["error_code"] == 0 else []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def topic_factory(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> AsyncIterator[TopicFactory]:
    """Create uniquely named topics for one test; see the module docstring."""
    admins: dict[str, AIOKafkaAdminClient] = {}
    test_name = re.sub(r"[^a-zA-Z0-9_-]+", "-", request.node.name)[:80].strip("-")

    async def admin_for(bootstrap: str) -> AIOKafkaAdminClient:
        if bootstrap not in admins:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
            await admin.start()
            admins[bootstrap] = admin
        return admins[bootstrap]

    async def create(
        partitions: int = 1,
        config: dict[str, str] | None = None,
        *,
        prefix: str = "t",
        bootstrap: str | None = None,
    ) -> str:
        name = f"{prefix}-{test_name}-{uuid.uuid4().hex[:8]}"
        admin = await admin_for(bootstrap or kafka_bootstrap)
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(config or {}))]
        )
        for topic, error_code, *message in response.topic_errors:
            if error_code != 0:
                raise RuntimeError(f"creating topic {topic} failed: {error_code} {message}")
        await _wait_for_leaders(admin, name, partitions)
        return name

    yield create
    for admin in admins.values():
        await admin.close()

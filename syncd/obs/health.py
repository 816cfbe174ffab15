"""Liveness and readiness of the running daemon (``GET /healthz``, ``GET /readyz``, systemd).

Each running stage owns one :class:`StageHealth` and reports into it: the consumer group
assigned its partitions (possibly none: more instances than partitions is still assigned),
their state is restoring or restored, and the broker answered a metadata request
(:func:`watch_kafka`, every :data:`PROBE_S`). :class:`Health` combines the stages:

- alive: the event loop answers (whoever asks gets an answer) and no stage task is done;
- ready: every stage is assigned and restored, the broker answered within
  :data:`KAFKA_STALE_S` and its last probe did not fail, and no stop was requested.

No I/O except the probe loop; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger("syncd.obs.health")

PROBE_S = 2.0
"""How often each stage asks the broker for metadata."""
PROBE_TIMEOUT_S = 5.0
KAFKA_STALE_S = 10.0
"""Not ready when the broker has not answered for this long."""


class MetadataSource(Protocol):
    """What the probe asks: an aiokafka consumer (``topics()`` fetches cluster metadata)."""

    async def topics(self) -> set[str]: ...


@dataclass(slots=True)
class StageHealth:
    """What one stage reports; the stage sets the fields, :class:`Health` reads them."""

    name: str
    clock: Callable[[], float] = time.monotonic
    assigned: bool = False
    """The group has assigned this member its partitions (and not revoked them since)."""
    restoring: bool = True
    """State of assigned partitions is not restored yet (true until the first restore)."""
    kafka_ok_at: float | None = None
    kafka_error: str | None = None
    """Why the last probe failed (an exception class name), None after a success."""
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    """The stage's task (set by the runner): done means not alive."""

    def kafka_ok(self) -> None:
        if self.kafka_error is not None:
            log.info("kafka_reachable", stage=self.name)
        self.kafka_ok_at = self.clock()
        self.kafka_error = None

    def kafka_failed(self, error: str) -> None:
        if self.kafka_error is None:
            log.warning("kafka_unreachable", stage=self.name, error=error)
        self.kafka_error = error

    def alive(self) -> bool:
        return self.task is None or not self.task.done()

    def not_ready(self) -> str | None:
        """Why this stage is not ready, or None."""
        if not self.alive():
            return "stage stopped"
        if not self.assigned:
            return "partitions not assigned yet"
        if self.restoring:
            return "restoring state"
        if self.kafka_error is not None:
            return f"kafka unreachable ({self.kafka_error})"
        if self.kafka_ok_at is None or self.clock() - self.kafka_ok_at > KAFKA_STALE_S:
            return "kafka has not answered recently"
        return None

    def view(self) -> dict[str, Any]:
        ago = None if self.kafka_ok_at is None else round(self.clock() - self.kafka_ok_at, 1)
        return {
            "alive": self.alive(),
            "assigned": self.assigned,
            "restoring": self.restoring,
            "kafka_ok_s_ago": ago,
            "kafka_error": self.kafka_error,
            "not_ready": self.not_ready(),
        }


class Health:
    """The daemon's stages' health, for the admin server and the systemd notifier."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stages: dict[str, StageHealth] = {}
        self.stopping = False

    def stage(self, name: str) -> StageHealth:
        h = self.stages[name] = StageHealth(name, self.clock)
        return h

    def alive(self) -> tuple[bool, dict[str, Any]]:
        stages = {name: s.alive() for name, s in self.stages.items()}
        return all(stages.values()), {"alive": all(stages.values()), "stages": stages}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        reasons = {name: r for name, s in self.stages.items() if (r := s.not_ready()) is not None}
        if self.stopping:
            reasons["daemon"] = "stopping"
        elif not self.stages:
            reasons["daemon"] = "no stage is running"
        ok = not reasons
        body: dict[str, Any] = {
            "ready": ok,
            "stages": {n: s.view() for n, s in self.stages.items()},
        }
        if not ok:
            body["reason"] = "; ".join(f"{name}: {r}" for name, r in reasons.items())
        return ok, body


async def watch_kafka(stage: StageHealth, client: MetadataSource) -> None:
    """Ask the broker for metadata every :data:`PROBE_S` and report the answer (runs until
    cancelled)."""
    while True:
        try:
            await asyncio.wait_for(client.topics(), PROBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure means: not reachable now
            stage.kafka_failed(type(e).__name__)
        else:
            stage.kafka_ok()
        await asyncio.sleep(PROBE_S)

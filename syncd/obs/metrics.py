"""Prometheus metrics of the daemon (docs/metrics.md), served by the admin server at ``/metrics``.

Owns the project's :data:`REGISTRY` (not prometheus-client's global one: several services
and tests in one process count into this registry only) with the process, platform and
GC collectors on it; every ``syncd_*`` metric; :data:`FAMILIES`, the table of the
``syncd_*`` families (exposed name, type, labels, meaning) that docs/metrics.md repeats;
and the small calls the stages make:

- counters and histograms are counted where the work is done, once per batch or call
  (:func:`count_batch` per compute batch, :func:`record_call` per channel call,
  :func:`limiter_wait` per account, :func:`restored` per restore);
- gauges of live state (consumer lag, queue depth, parked accounts, open manual actions)
  are read at scrape time from the services that :func:`watch` registered, so nothing is
  updated on every change.

Labels are topic names, event types, outcomes and channel account names, never
credentials or message text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import prometheus_client as prom
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :func:`exposition` (Prometheus text format)."""

REGISTRY: Final = prom.CollectorRegistry()
prom.ProcessCollector(registry=REGISTRY)
prom.PlatformCollector(registry=REGISTRY)
prom.GCCollector(registry=REGISTRY)
# No ``*_created`` series next to every counter and histogram (process start time is exposed).
prom.disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Family:
    """One ``syncd_*`` metric family as docs/metrics.md lists it."""

    name: str
    """The exposed name (counters with ``_total``)."""
    type: str
    labels: tuple[str, ...]
    help: str


FAMILIES: list[Family] = []
"""Every ``syncd_*`` family, in definition order (docs/metrics.md has the same table)."""


def _family(name: str, typ: str, labels: tuple[str, ...], help_: str) -> Family:
    fam = Family(name, typ, labels, help_)
    FAMILIES.append(fam)
    return fam


def _counter(name: str, labels: tuple[str, ...], help_: str) -> prom.Counter:
    _family(name, "counter", labels, help_)
    return prom.Counter(name, help_, labels, registry=REGISTRY)


def _histogram(
    name: str, labels: tuple[str, ...], help_: str, buckets: Sequence[float]
) -> prom.Histogram:
    _family(name, "histogram", labels, help_)
    return prom.Histogram(name, help_, labels, registry=REGISTRY, buckets=buckets)


# -- counted where the work is done ---------------------------------------------------

EVENTS = _counter(
    "syncd_events_total",
    ("topic", "type", "outcome"),
    "Records consumed by the compute stage, by topic, event type (unknown: not decodable)"
    " and outcome (applied, duplicate, stale, contained, clamped, replayed,"
    " repeat_placement, unchanged, dead_lettered).",
)
DESIRED_CHANGES = _counter(
    "syncd_desired_changes_total",
    ("change",),
    "Desired-quantity records written: changed (a listing's quantity changed) or unlinked"
    " (a tombstone for a listing that left the catalog).",
)
PUSHES = _counter(
    "syncd_pushes_total",
    ("account", "class"),
    "Listing updates sent to a channel account, by outcome class: ok or the error table's"
    " class of the failure (retry, refresh-auth, park-account, park-listing, adjust,"
    " manual).",
)
PUSH_SECONDS = _histogram(
    "syncd_push_duration_seconds",
    ("platform",),
    "Duration of one call to a channel API (a batch of updates), retries counted apart.",
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_TO_CHANNEL_SECONDS = _histogram(
    "syncd_event_to_channel_seconds",
    ("platform",),
    "From the produce time of the newest input event behind a quantity to the channel's"
    " acknowledgement of it.",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
LIMITER_WAIT_SECONDS = _histogram(
    "syncd_limiter_wait_seconds",
    ("account",),
    "Time a call waited for its account's rate limiter before it could start.",
    (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RESTORE_SECONDS = _histogram(
    "syncd_changelog_restore_seconds",
    ("stage",),
    "Time to restore the state of newly assigned partitions from their changelog topics"
    " (compute: SKU and order state; publish: acknowledged quantities).",
    (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# -- read from the live services at scrape time ---------------------------------------

LAG = _family(
    "syncd_consumer_lag_records",
    "gauge",
    ("topic", "partition"),
    "Records of an assigned partition not consumed yet (highwater minus position).",
)
QUEUE_DEPTH = _family(
    "syncd_push_queue_depth",
    "gauge",
    ("account",),
    "Listings with a quantity waiting to be sent to the channel account.",
)
PARKED = _family(
    "syncd_account_parked",
    "gauge",
    ("account",),
    "1 while the channel account is parked (only probes are sent), else 0.",
)
OPEN_ACTIONS = _family(
    "syncd_manual_actions_open",
    "gauge",
    ("account", "class"),
    "Open manual actions of a channel account, by the error table's class.",
)


class PusherStats(Protocol):
    """What the gauges read of one account's pusher
    (:class:`syncd.publish.pusher.AccountPusher` has it)."""

    def queue_depth(self) -> int: ...

    def parked_by(self) -> object | None:
        """Why the account is parked, else None."""
        ...

    def open_actions_by_class(self) -> Mapping[str, int]: ...


class CallAttempt(Protocol):
    """What :func:`record_call` reads of one update's attempt
    (:class:`syncd.publish.pusher.Attempt` has it)."""

    @property
    def latency_ms(self) -> float: ...

    @property
    def at_ms(self) -> int: ...

    @property
    def source_ts(self) -> int | None: ...

    @property
    def result_class(self) -> str:
        """``ok``, else the error table's class of the failure."""
        ...


class _Live:
    """The gauges read from the watched services (anything with a ``consumer`` and/or
    ``pushers`` attribute: the compute and publish services)."""

    def __init__(self) -> None:
        self.sources: list[object] = []

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        lag, depth, parked, actions = self._families()
        for source in list(self.sources):
            consumer = getattr(source, "consumer", None)
            if consumer is not None:
                for topic, partition, n in consumer_lag(consumer):
                    lag.add_metric([topic, str(partition)], n)
            pushers: Mapping[str, PusherStats] = getattr(source, "pushers", None) or {}
            for account, p in sorted(pushers.items()):
                depth.add_metric([account], p.queue_depth())
                parked.add_metric([account], 1 if p.parked_by() is not None else 0)
                for cls, n in sorted(p.open_actions_by_class().items()):
                    actions.add_metric([account, cls], n)
        return [lag, depth, parked, actions]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(f.name, f.help, labels=f.labels) for f in _GAUGES]


_GAUGES: Final = (LAG, QUEUE_DEPTH, PARKED, OPEN_ACTIONS)
_LIVE: Final = _Live()
REGISTRY.register(_LIVE)


def watch(source: object) -> None:
    """Report ``source``'s consumer lag and pushers at every scrape (until :func:`unwatch`)."""
    _LIVE.sources.append(source)


def unwatch(source: object) -> None:
    if source in _LIVE.sources:
        _LIVE.sources.remove(source)


def consumer_lag(consumer: Any) -> Iterator[tuple[str, int, int]]:
    """``(topic, partition, highwater - position)`` of each assigned partition whose
    highwater (known after its first fetch) and position are known.

    aiokafka offers the position only as a coroutine that may wait for an offset reset;
    its subscription state holds the same value, read here without waiting.
    """
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    if assignment is None:
        return
    for tp in sorted(assignment.tps):
        st = assignment.state_value(tp)
        if st is None or st.highwater is None or not st.has_valid_position:
            continue
        yield tp.topic, tp.partition, max(0, st.highwater - st.position)


# -- what the stages call ---------------------------------------------------------------


def count_batch(
    events: Mapping[tuple[str, str, str], int], counts: Mapping[tuple[str, str], int]
) -> None:
    """One compute batch: ``events`` (topic, event type, outcome) -> records, and the
    processor's ``counts`` (for the desired-quantity changes)."""
    for (topic, event_type, outcome), n in events.items():
        EVENTS.labels(topic, event_type, outcome).inc(n)
    for change in ("changed", "unlinked"):
        n = counts.get(("desired", change), 0)
        if n:
            DESIRED_CHANGES.labels(change).inc(n)


def record_call(account: str, platform: str, attempts: Sequence[CallAttempt]) -> None:
    """One channel call's attempts (one per listing update, as written to push-results)."""
    if not attempts:
        return
    PUSH_SECONDS.labels(platform).observe(attempts[0].latency_ms / 1000)
    classes: Counter[str] = Counter()
    for a in attempts:
        cls = a.result_class
        classes[cls] += 1
        if cls == "ok":
            ts = a.source_ts
            if ts is not None:
                EVENT_TO_CHANNEL_SECONDS.labels(platform).observe(max(0, a.at_ms - ts) / 1000)
    for cls, n in classes.items():
        PUSHES.labels(account, cls).inc(n)


def limiter_wait(account: str) -> prom.Histogram:
    """The account's limiter-wait histogram (bind once, ``observe`` per call)."""
    return LIMITER_WAIT_SECONDS.labels(account)


def restored(stage: str, seconds: float) -> None:
    RESTORE_SECONDS.labels(stage).observe(seconds)


def exposition() -> bytes:
    """Every metric of :data:`REGISTRY` in the Prometheus text format."""
    return prom.generate_latest(REGISTRY)

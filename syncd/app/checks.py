"""``syncd check-config``: everything ``syncd run`` would refuse, found before it runs.

Owns the checks beyond the file's own keys: each channel account's settings per platform
(:func:`syncd.channels.check_settings`), the error table, the publish stage's accounts
built as at start (clients, limits, read-back settings), and with ``--connect`` the
broker and syncd's topics (exist, partition count, cleanup policy), as the stages
create them (:func:`syncd.kafka.clients.ensure_topics`). Every problem is collected; none
stops the others from being found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from syncd import config
from syncd.channels import check_settings
from syncd.config import error_table
from syncd.core.errortable import KEY as TABLE_KEY
from syncd.errors import ConfigError
from syncd.kafka import clients

CONNECT_TIMEOUT_S = 15.0
"""``--connect`` gives up on the broker after this long."""


def check(
    path: str, env: Mapping[str, str] | None = None
) -> tuple[config.Checked, list[ConfigError]]:
    """The checked file and every problem ``run`` would meet with it."""
    checked = config.check_file(path, env, settings_check=check_settings)
    problems = list(checked.problems)
    table = _table_path(checked)
    if table is not None:
        try:
            error_table.load(table)
        except ConfigError as e:  # the file itself: point at the key naming it
            problems.append(
                ConfigError("publish.error_table", e.reason) if e.key == TABLE_KEY else e
            )
    if checked.config is not None and not problems:
        problems.extend(_accounts(checked.config))
    return checked, problems


def _accounts(cfg: config.Config) -> list[ConfigError]:
    """Build the publish stage's accounts as ``run`` does at start (clients, limits,
    read-back settings; no call is made): what only building them finds."""
    from syncd.publish.accounts import Accounts

    configured = {account: ch for account, ch in cfg.channels.items() if ch.settings}
    if not configured:  # policy-only accounts: nothing to build
        return []
    try:
        Accounts(cfg.model_copy(update={"channels": configured}))
    except ConfigError as e:
        return [e]
    return []


def _table_path(checked: config.Checked) -> str | None:
    """The error table ``run`` would read ("" = the shipped one); None: unknown."""
    if checked.config is not None:
        return checked.config.publish.error_table
    publish = checked.raw.get("publish")
    if checked.raw and isinstance(publish, Mapping | None):
        value = (publish or {}).get("error_table", "")
        return value if isinstance(value, str) else None
    return None


# -- topics (--connect) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicCheck:
    """One of syncd's topics as the broker has it."""

    topic: str
    role: str
    """``input``, ``output`` or ``internal``."""
    partitions: int | None
    """What the broker has (None: the topic does not exist)."""
    want_partitions: int | None
    """What syncd needs (None: any count); for a missing topic, what it is created with."""
    cleanup: str | None
    want_cleanup: str
    problem: str | None
    """Why ``run`` would fail or misbehave with it; None: fine (or created at start)."""

    def line(self) -> str:
        want = f"{self.want_partitions or 'any'} partitions, {self.want_cleanup}"
        if self.partitions is None:
            state = self.problem or f"missing: created at start ({want})"
        else:
            state = f"{self.partitions} partitions, cleanup.policy={self.cleanup}"
            state = f"PROBLEM: {self.problem} ({state})" if self.problem else f"ok ({state})"
        return f"topic {self.topic} [{self.role}]: {state}"


async def check_topics(
    cfg: config.Config, timeout_s: float = CONNECT_TIMEOUT_S
) -> list[TopicCheck]:
    """Reach the broker (bounded by ``timeout_s``) and check each of syncd's topics.

    Raises KafkaError when the broker cannot be reached in time."""
    from syncd.errors import KafkaError

    servers = ",".join(cfg.kafka.bootstrap_servers)
    admin = AIOKafkaAdminClient(
        **clients.client_settings(cfg.kafka), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except Exception as e:
        raise KafkaError(f"cannot reach Kafka at {servers}: {e or type(e).__name__}") from e
    try:
        return await asyncio.wait_for(_check_topics(admin, cfg), timeout_s)
    except TimeoutError as e:
        raise KafkaError(f"Kafka at {servers} did not answer in {timeout_s:g} s") from e
    finally:
        await admin.close()


async def _check_topics(admin: AIOKafkaAdminClient, cfg: config.Config) -> list[TopicCheck]:
    t = cfg.topics
    names = [s.name for s in clients.topic_plan(t, t.input_partitions, t.input_partitions)]
    have = {topic: await clients.partition_count(admin, topic) for topic in names}
    policies = await _cleanup_policies(admin, [topic for topic, n in have.items() if n])
    stock = have[t.stock] or t.input_partitions
    orders = have[t.orders] or t.input_partitions
    out = []
    for spec in clients.topic_plan(t, stock, orders):
        n, cleanup = have[spec.name], policies.get(spec.name)
        must = spec.partitions if spec.role == "internal" else None  # None: any count
        problem = None
        if n is None and spec.role == "input" and not t.create:
            problem = "missing, and topics.create is off"
        elif n is not None and must is not None and n != must:
            problem = f"needs {must} partitions"
        elif n is not None and spec.role != "input" and cleanup != spec.cleanup:
            problem = f"needs cleanup.policy={spec.cleanup}"  # inputs: the producers' business
        want = must if n is not None else spec.partitions
        out.append(TopicCheck(spec.name, spec.role, n, want, cleanup, spec.cleanup, problem))
    return out


async def _cleanup_policies(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, str]:
    if not topics:
        return {}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})
        for topic in topics
    ]
    out: dict[str, str] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, _, _, name, entries = resource[:5]
            if error_code:
                continue
            for entry in entries:
                if entry[0] == "cleanup.policy":
                    out[name] = entry[1]
    return out

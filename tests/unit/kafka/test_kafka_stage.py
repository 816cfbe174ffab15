"""KafkaStage without a broker: pause -> restore -> resume, the commit rule (what it
commits, which failures it survives), revocation and the bounded-mode check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata

from syncd import config
from syncd.kafka.stage import COMMIT_ERRORS, KafkaStage

CFG = config.parse({"kafka": {"group_id": "toy"}}, env={})

IN = "in"


def tp(p: int, topic: str = IN) -> TopicPartition:
    return TopicPartition(topic, p)


class FakeConsumer:
    """What KafkaStage calls on its group consumer, recorded."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail_with: Exception | None = None
        self.positions: dict[TopicPartition, int] = {}
        self.ends: dict[TopicPartition, int] = {}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.commits.append({t: om.offset for t, om in offsets.items()})

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {t: self.ends.get(t, 0) for t in tps}

    async def position(self, t: TopicPartition) -> int:
        return self.positions.get(t, 0)


class Toy(KafkaStage[int]):
    """Partitions of ``in`` need state; ``other`` needs none."""

    name: ClassVar[str] = "toy"

    def __init__(self) -> None:
        super().__init__(CFG, until_caught_up=True)
        self.fake = FakeConsumer()
        self.consumer = self.fake  # type: ignore[assignment]
        self.restored: list[set[int]] = []
        self.released: list[list[TopicPartition]] = []
        self.busy = False

    def group_id(self) -> str:
        return "toy"

    def topics(self) -> list[str]:
        return [IN, "other"]

    def restore_key(self, t: TopicPartition) -> int | None:
        return t.partition if t.topic == IN else None

    def resume_of(self, key: int) -> list[TopicPartition]:
        return [tp(key)]

    async def restore_state(self, pending: set[int]) -> None:
        self.restored.append(set(pending))

    def describe(self, tps: Sequence[TopicPartition]) -> dict[str, Any]:
        return {"partitions": sorted(f"{t.topic}/{t.partition}" for t in tps)}

    async def serve(self) -> None:  # pragma: no cover - not run here
        raise NotImplementedError

    async def release(self, revoked: Sequence[TopicPartition]) -> None:
        self.released.append(list(revoked))

    async def settled(self) -> bool:
        return not self.busy


async def test_assign_pauses_what_needs_state_and_restore_resumes_what_is_still_ours() -> None:
    s = Toy()
    s.fake.assigned = {tp(0), tp(1), tp(0, "other")}
    s.assign([tp(0), tp(1), tp(0, "other")])
    assert s.fake.paused == {tp(0), tp(1)}  # "other" needs no state: not paused
    assert s.restoring and s.restoring_key(0) and s.restoring_key(1)
    assert s.health.assigned and s.health.restoring
    s.fake.assigned.discard(tp(1))  # lost again before the restore ran
    await s.restore_pending()
    assert s.restored == [{0, 1}]  # one read for every pending key
    assert s.fake.paused == {tp(1)}  # resumed only what is still assigned
    assert not s.restoring and not s.health.restoring
    await s.restore_pending()  # nothing pending: no read
    assert s.restored == [{0, 1}]


async def test_revoke_releases_and_forgets_pending_restores() -> None:
    s = Toy()
    s.fake.assigned = {tp(0), tp(1)}
    s.assign([tp(0), tp(1)])
    async with s.lock:  # as the rebalance listener calls it
        await s.revoke([tp(1)])
    assert s.released == [[tp(1)]]
    assert s.restoring_key(0) and not s.restoring_key(1)
    assert not s.health.assigned


async def test_commit_only_moves_forward_and_survives_every_kafka_error() -> None:
    s = Toy()
    assert await s.commit({tp(0): 5, tp(1): 3})
    assert await s.commit({tp(0): 5, tp(1): 4})  # tp(0) unchanged: not committed again
    assert s.fake.commits == [{tp(0): 5, tp(1): 3}, {tp(1): 4}]
    assert await s.commit({tp(0): 2})  # never backwards
    assert len(s.fake.commits) == 2
    for error in (CommitFailedError(), IllegalStateError(), KafkaConnectionError()):
        s.fake.fail_with = error
        assert not await s.commit({tp(0): 9})  # logged, left to the next commit
    s.fake.fail_with = None
    assert await s.commit({tp(0): 9})  # the failed offset is committed next time
    assert s.fake.commits[-1] == {tp(0): 9}
    assert s.committed(tp(0)) == 9 and s.committed(tp(3)) is None
    assert all(issubclass(e, Exception) for e in COMMIT_ERRORS)


async def test_commit_after_revoke_starts_afresh() -> None:
    s = Toy()
    await s.commit({tp(0): 10})
    async with s.lock:
        await s.revoke([tp(0)])
    assert s.committed(tp(0)) is None
    assert await s.commit({tp(0): 7})  # another owner may have moved it; ours now counts
    assert s.fake.commits[-1] == {tp(0): 7}


async def test_a_failure_other_than_kafkas_is_raised() -> None:
    s = Toy()
    s.fake.fail_with = ValueError("bad offsets")
    with pytest.raises(ValueError):
        await s.commit({tp(0): 1})


def test_commit_due() -> None:
    s = Toy()
    assert s.commit_due(3600)  # never committed
    assert s.commit_due(3600, idle=True)


async def test_commit_due_waits_the_interval_under_load() -> None:
    s = Toy()
    await s.commit({})
    assert not s.commit_due(3600)
    assert s.commit_due(3600, idle=True)
    assert s.commit_due(0)


async def test_done_needs_settled_restored_and_at_end() -> None:
    s = Toy()
    s.fake.assigned = {tp(0)}
    s.assign([tp(0)])
    s.fake.ends[tp(0)] = 3
    assert not await s.done()  # restore pending
    await s.restore_pending()
    assert not await s.done()  # not at the end
    s.fake.positions[tp(0)] = 3
    s.busy = True
    assert not await s.done()  # the stage has work in hand
    s.busy = False
    assert await s.done()
    s.until_caught_up = False
    assert not await s.done()  # unbounded (no record limit either)

"""Batching: concurrent calls share a batch (group commit, or one per loop turn), each gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mailmerger_shared.batching import Batcher


class Recorder:
    """A flush that records its batches and answers each item (an odd item fails alone)."""

    def __init__(self, *, fail_batch: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_batch = fail_batch

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        await asyncio.sleep(0.01)  # the write takes a while: later calls gather meanwhile
        if self.fail_batch:
            raise ConnectionError("database unavailable")
        return [ValueError(item) if item % 2 else item * 10 for item in items]


async def test_calls_made_during_a_write_share_the_next_batch() -> None:
    """The first call writes alone at once; those arriving meanwhile go together next."""
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush, max_size=100)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(n)) for n in (2, 4, 6)]
    assert await first == 0
    assert await asyncio.gather(*rest) == [20, 40, 60]
    assert flush.batches == [[0], [2, 4, 6]]


async def test_batches_never_exceed_max_size() -> None:
    """Waiting calls are written max_size at a time, in order."""
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush, max_size=3)
    await asyncio.gather(*(batcher.submit(n) for n in range(0, 14, 2)))
    assert [len(batch) for batch in flush.batches] == [3, 3, 1]
    assert [item for batch in flush.batches for item in batch] == list(range(0, 14, 2))


async def test_an_item_failing_alone_fails_only_its_caller() -> None:
    """An exception answered for one item reaches that caller; the others get their results."""
    batcher: Batcher[int, int] = Batcher(Recorder(), max_size=10)
    results = await asyncio.gather(batcher.submit(2), batcher.submit(3), return_exceptions=True)
    assert results[0] == 20
    assert isinstance(results[1], ValueError)


async def test_a_failed_write_fails_every_caller_of_its_batch() -> None:
    """If the batch cannot be written, nobody is told it was."""
    batcher: Batcher[int, int] = Batcher(Recorder(fail_batch=True), max_size=10)
    results = await asyncio.gather(*(batcher.submit(n) for n in (2, 4)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    with pytest.raises(ConnectionError):
        await batcher.submit(6)  # and the next batch is tried again


class Gated:
    """A flush that records its batches and holds each one until ``release`` is set."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail:
            raise ConnectionError("redis unavailable")
        return [item * 10 for item in items]


async def _one_turn_passes() -> None:
    """Let the loop run the callbacks scheduled so far, and the tasks they start."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_gathering_a_turn_sends_its_calls_as_one_batch() -> None:
    """With gather_turn, every call made during one loop turn is in the same batch."""
    flush = Gated()
    flush.release.set()
    batcher: Batcher[int, int] = Batcher(flush, gather_turn=True)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert flush.batches == [[0, 1, 2, 3, 4]]


async def test_a_later_turn_does_not_wait_for_the_batch_in_flight() -> None:
    """With gather_turn, batches overlap: a later turn's batch starts while the first is held."""
    flush = Gated()
    batcher: Batcher[int, int] = Batcher(flush, gather_turn=True)
    first = [asyncio.create_task(batcher.submit(n)) for n in (1, 2)]
    await _one_turn_passes()
    later = asyncio.create_task(batcher.submit(3))
    await _one_turn_passes()
    assert flush.batches == [[1, 2], [3]]
    assert not any(task.done() for task in (*first, later))
    flush.release.set()
    assert await asyncio.gather(*first, later) == [10, 20, 30]


async def test_gathering_a_turn_still_keeps_to_max_size() -> None:
    """A turn with more calls than max_size is split into batches of max_size, in order."""
    flush = Gated()
    flush.release.set()
    batcher: Batcher[int, int] = Batcher(flush, max_size=2, gather_turn=True)
    await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert flush.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_turn_fails_every_caller_of_its_batch() -> None:
    """With gather_turn too, a flush that raises reaches every caller of its batch."""
    flush = Gated(fail=True)
    flush.release.set()
    batcher: Batcher[int, int] = Batcher(flush, gather_turn=True)
    results = await asyncio.gather(*(batcher.submit(n) for n in (1, 2)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


def test_max_size_must_allow_an_item() -> None:
    """A batch of at most zero items could never be flushed."""
    with pytest.raises(ValueError, match="max_size"):
        Batcher(Recorder(), max_size=0)

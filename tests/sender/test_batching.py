"""Group commit: concurrent calls share a batch, and each gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mailmerger_sender.batching import Batcher


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

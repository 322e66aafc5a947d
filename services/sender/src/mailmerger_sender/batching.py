"""Running concurrent calls together, as one batch (group commit).

Each caller waits for the batch it joined. There is no timer: while a batch is being written the
next one gathers, so an idle sender writes alone at once and a busy one writes many per round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One result per item: a value, or the exception that item (alone) failed with.
Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Batcher(Generic[T, R]):
    """Calls ``flush`` with everything submitted meanwhile, one batch at a time, in order.

    If ``flush`` raises, every caller of that batch gets the exception. A caller that gives up
    waiting does not take its item out of a batch already written.
    """

    def __init__(self, flush: Flush[T, R], *, max_size: int) -> None:
        self._flush = flush
        self._max_size = max_size
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_size], self._waiting[self._max_size :]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

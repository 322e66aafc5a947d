"""Running concurrent calls together, as one batch: group commit, or one pipeline per loop turn.

Many coroutines each ``await batcher.submit(item)``; the batcher hands their items to ``flush`` in
batches, and each caller gets back its own item's answer, as if it had called alone. ``flush``
answers one result per item, in order: a value, or the exception that item (alone) failed with.
If ``flush`` raises, every caller of that batch gets the exception; the next batch is tried again.

There is no timer, in either of the two ways a batch is formed:

* ``gather_turn=False`` (the default), **group commit**: one batch is flushed at a time, in
  order. The first call starts a batch at once (it also takes the calls made before the flush gets
  to run); while it is flushed the next one gathers. An idle caller so waits for nothing, and a
  busy system puts many items in one round trip. For writes (the sender's ledger, the queue's
  outcomes, the account limiter).
* ``gather_turn=True``, **pipelining**: a batch is every call made during one turn of the event
  loop, flushed when that turn ends, without waiting for the batches still in flight, which it may
  overtake. For reads whose order does not matter (the templates cache's ``HGET``s), where waiting
  for the previous round trip would only add latency.

``max_size`` caps a batch (None: no cap); the calls beyond it go into the next batch (with
``gather_turn``, into another batch of the same turn). A caller that gives up waiting (cancelled)
does not take its item out of its batch: the item may still be flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One result per item, in order: a value, or the exception that item (alone) failed with.
Flush: TypeAlias = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Batcher(Generic[T, R]):
    """Calls ``flush`` with the items submitted together; see the module docstring for when."""

    def __init__(self, flush: Flush[T, R], *, max_size: int | None = None, gather_turn: bool = False) -> None:
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        self._flush = flush
        self._max_size = max_size
        self._gather_turn = gather_turn
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None  # group commit: the one flushing loop
        self._in_flight: set[asyncio.Task[None]] = set()  # pipelining: referenced until done

    async def submit(self, item: T) -> R:
        """``item``'s answer from ``flush`` (raised, if it is an exception), once its batch is flushed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._gather_turn:
            if not self._waiting:
                loop.call_soon(self._close_turn)  # after every call of this turn has joined in
        elif self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        self._waiting.append((item, future))
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: the oldest waiting calls, at most ``max_size`` of them."""
        size = len(self._waiting) if self._max_size is None else self._max_size
        batch, self._waiting = self._waiting[:size], self._waiting[size:]
        return batch

    async def _write(self) -> None:
        while self._waiting:
            await self._run(self._take())

    def _close_turn(self) -> None:
        while self._waiting:
            task = asyncio.create_task(self._run(self._take()))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:  # the batch as a whole failed: each caller decides what that means
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

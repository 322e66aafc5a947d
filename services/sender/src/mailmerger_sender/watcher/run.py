"""The watcher's loop, one per sender replica: enroll, lease due mailboxes, sync them.

Every replica runs it; leases (``mailboxes.lease``) keep two replicas from syncing one mailbox.
A tick (a quarter of ``poll_seconds``, at most 5 s) enrolls the accounts that sent (once per
``poll_seconds``) and leases as many due mailboxes as there is room for (``concurrency`` less
the passes still running); a pass that ends makes room at once. Nothing here raises but
cancellation: a failed statement or pass is logged and the loop goes on. On cancellation the
passes in flight are cancelled too and their leases simply run out (a pass's writes are
transactions: nothing half-written stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from mailmerger_sender.watcher import mailboxes
from mailmerger_sender.watcher.ports import WatcherPorts
from mailmerger_sender.watcher.sync import PassReport, sync_mailbox
from mailmerger_shared.db import autocommit

log = logging.getLogger(__name__)

MAX_TICK_SECONDS = 5.0


class Watcher:
    def __init__(self, ports: WatcherPorts) -> None:
        self._ports = ports
        self._passes: set[asyncio.Task[PassReport]] = set()
        self._pass_ended = asyncio.Event()
        self._enrolled_at: float | None = None

    async def enroll(self) -> int:
        """Enroll the accounts that sent since the last enrollment (one statement)."""
        settings = self._ports.settings
        async with autocommit(self._ports.sessions) as session:
            return await mailboxes.enroll(session, now=self._ports.clock(), watch_days=settings.watch_days)

    async def start_due(self) -> int:
        """Lease due mailboxes for the room there is and start their passes; how many started."""
        settings = self._ports.settings
        room = settings.concurrency - len(self._passes)
        if room <= 0:
            return 0
        async with autocommit(self._ports.sessions) as session:
            leases = await mailboxes.lease(
                session, now=self._ports.clock(), room=room, lease_seconds=settings.lease_seconds
            )
        for held in leases:
            task = asyncio.create_task(sync_mailbox(held, self._ports), name=f"watch-{held.account_id}")
            self._passes.add(task)
            task.add_done_callback(self._ended)
        return len(leases)

    async def run(self) -> None:
        settings = self._ports.settings
        tick = min(settings.poll_seconds / 4, MAX_TICK_SECONDS)
        try:
            while True:
                now = time.monotonic()
                if self._enrolled_at is None or now - self._enrolled_at >= settings.poll_seconds:
                    try:
                        await self.enroll()
                        self._enrolled_at = now
                    except Exception:
                        log.exception("mailbox enrollment failed; trying again next tick")
                self._pass_ended.clear()
                try:
                    started = await self.start_due()
                except Exception:
                    log.exception("cannot lease mailboxes; trying again next tick")
                    started = 0
                if started and len(self._passes) < settings.concurrency:
                    continue  # more may be due now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await self._pass_ended.wait()
        finally:
            passes = list(self._passes)
            for task in passes:
                task.cancel()
            await asyncio.gather(*passes, return_exceptions=True)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._passes.discard(task)
        self._pass_ended.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("a mailbox pass failed", exc_info=task.exception())


async def run_watcher(ports: WatcherPorts) -> None:
    """Watch mailboxes until cancelled (a background task of every sender worker)."""
    await Watcher(ports).run()

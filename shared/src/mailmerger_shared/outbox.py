"""Transactional outbox: an event is a row written in the business transaction.

``stage`` adds the row inside the caller's transaction, so the event exists exactly when the
change that caused it was committed. ``OutboxRelay`` then takes rows (a DELETE, in a transaction),
publishes them with confirms and commits, putting back any the broker did not confirm. A crash
between the confirm and the commit publishes a row again with the *same* envelope id, so consumers
can (and do) treat events idempotently.

Deleting, not marking published: the table holds only what is still to publish, and the relay's
write per row is a delete, where marking was an update that wrote a new row version and index
entry for each row and later a prune deleted it anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared import contracts as c
from mailmerger_shared.broker.publisher import Publisher
from mailmerger_shared.context import current_correlation_id
from mailmerger_shared.db import transaction
from mailmerger_shared.tracing import current_traceparent

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("tag", String(100), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("correlation_id", String(128)),
        Column("traceparent", String(64)),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Index("ix_outbox_occurred_at", "occurred_at"),
    )


async def stage(session: AsyncSession, table: Table, event: c.Message) -> c.Envelope:
    """Record ``event`` in the caller's transaction; the relay publishes it after commit."""
    envelope = c.Envelope.new(
        event.TAG, correlation_id=current_correlation_id(), traceparent=current_traceparent()
    )
    await session.execute(
        table.insert().values(
            id=envelope.id,
            tag=envelope.tag,
            body=c.encode(event),
            correlation_id=envelope.correlation_id,
            traceparent=envelope.traceparent,
            occurred_at=envelope.occurred_at,
        )
    )
    return envelope


class OutboxRelay:
    """Publishes staged rows in order, a batch at a time; safe to run in several processes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        publisher: Publisher,
        *,
        batch_size: int = 200,
        idle_interval: float = 0.5,
    ):
        self._sessions = sessions
        self._table = table
        self._publisher = publisher
        self._idle_interval = idle_interval
        self._wake = asyncio.Event()
        # The oldest rows no other relay holds, deleted and returned (built once, compiled once).
        oldest = select(table.c.id).order_by(table.c.occurred_at).limit(batch_size)
        self._take = (
            delete(table)
            .where(table.c.id.in_(oldest.with_for_update(skip_locked=True).scalar_subquery()))
            .returning(*table.c)
        )

    def wake(self) -> None:
        """Ask for a pass now (after a commit that staged events) instead of at the next tick."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published.

        The batch is taken by one DELETE ... RETURNING (locked rows of another relay are skipped)
        and committed once published: a failed publish or a crash rolls the delete back. Rows the
        broker did not confirm are put back in the same transaction, so only they go again.
        """
        async with transaction(self._sessions) as session:
            rows = list((await session.execute(self._take)).all())
            if not rows:
                return 0
            rows.sort(key=lambda row: row.occurred_at)  # RETURNING has no order; publish in order
            results = await self._publisher.publish_many(
                [
                    (
                        c.decode(row.tag, row.body),
                        c.Envelope(
                            id=row.id,
                            tag=row.tag,
                            occurred_at=row.occurred_at,
                            correlation_id=row.correlation_id,
                            traceparent=row.traceparent,
                        ),
                    )
                    for row in rows
                ]
            )
            unconfirmed = [row for row, result in zip(rows, results, strict=True) if result is not None]
            if unconfirmed:
                await session.execute(self._table.insert(), [dict(row._mapping) for row in unconfirmed])
        failure = next((result for result in results if result is not None), None)
        if failure is not None:
            # The confirmed rows are gone (committed above); the rest go again after a backoff.
            raise failure
        return len(rows)

    async def run(self) -> None:
        """Relay until cancelled; errors are logged and retried with backoff, never fatal."""
        backoff = self._idle_interval
        while True:
            try:
                published = await self.publish_pending()
                backoff = self._idle_interval
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                published = 0
                backoff = min(backoff * 2, 10.0)
            if published:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):  # (wait_for can swallow a cancel on 3.11)
                    await self._wake.wait()

"""Publishing the dispatcher's ``SendEmail`` commands from ledger rows (mapped by ``structs``), with the
broker's confirms."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import structs
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.models import Record, attachments, messages
from mailmerger_queue.structs import COMMAND, attachment_ref, with_content
from mailmerger_shared import contracts as c
from mailmerger_shared.broker.publisher import Publisher

log = logging.getLogger(__name__)
m = messages


async def attachment_refs(session: AsyncSession, ids: set[int]) -> dict[int, c.AttachmentRef]:
    if not ids:
        return {}
    rows = await session.execute(select(attachments).where(attachments.c.attachment_id.in_(list(ids))))
    return {row.attachment_id: attachment_ref(row) for row in rows}


def sendable(where: ColumnElement[bool]) -> Select[tuple[object, ...]]:
    """Lock the messages matching ``where`` (skipping rows another transaction holds), with what
    their command carries: a campaign message's content is in its recipient row."""
    return (
        select(*COMMAND)
        .select_from(with_content())
        .where(where)
        .order_by(m.c.id)
        .with_for_update(of=m, skip_locked=True)
    )


async def publish_commands(
    session: AsyncSession,
    publisher: Publisher,
    rows: list[Record],
    accounts: dict[int, Record],
    *,
    attempt: Callable[[Record], int],
    unsubscribe: UnsubscribeTokens,
) -> list[Record]:
    """Publish a ``SendEmail`` per row, bundled; returns the rows the broker confirmed.

    A campaign message's command carries its row's one-click unsubscribe link.
    """
    if not rows:
        return []
    refs = await attachment_refs(session, {i for row in rows for i in row.attachment_ids})

    def unsubscribe_url(row: Record) -> str | None:
        unsubscribe_row = structs.unsubscribe_row(row)
        return None if unsubscribe_row is None else unsubscribe.url(unsubscribe_row)

    results = await publisher.publish_many(
        [
            (
                structs.send_email(
                    row,
                    accounts[row.account_id],
                    refs,
                    attempt=attempt(row),
                    unsubscribe_url=unsubscribe_url(row),
                ),
                c.Envelope.new(c.SendEmail.TAG, correlation_id=row.correlation_id),
            )
            for row in rows
        ]
    )
    failures = [result for result in results if result is not None]
    if failures:
        # Their rows are left as they were, so the next pass publishes them again.
        log.error(
            "publishing SendEmail failed; the messages are left for the next pass",
            extra={"failed": len(failures), "error": repr(failures[0])},
        )
    return [row for row, result in zip(rows, results, strict=True) if result is None]

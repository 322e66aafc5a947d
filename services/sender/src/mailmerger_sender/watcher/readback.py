"""Reading back the Message-ID Gmail stored for each message we sent (GMAIL_FACTS 2.1, 2.5).

No Google page says whether Gmail keeps a caller-supplied Message-ID; follow-ups must thread on
the one it stored. Where a read scope allows, a pass spends what its budget leaves on
``messages.get format=metadata metadataHeaders=Message-ID`` for this account's sent messages not
read yet, oldest first.

Invariants:
- ``MessageIdRead`` is published only when Gmail's Message-ID differs from ours
  (``deliveries.rfc_message_id``): the same one, the usual case, publishes nothing.
- ``stored_message_id`` and ``read_back_at`` are written in the transaction that stages the
  event, with the mailbox's lease checked; a row read back is never read again. A message gone
  from the mailbox (404) is marked read with no stored id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import text

from mailmerger_sender.models import outbox
from mailmerger_sender.watcher import mailboxes
from mailmerger_sender.watcher.mailboxes import MailboxLease
from mailmerger_sender.watcher.ports import WatcherPorts
from mailmerger_sender.watcher.reading import Budget, header
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_shared.internal_api import GmailAccessToken
from mailmerger_shared.outbox import stage

_DUE = text(
    """
    SELECT message_id, gmail_id, rfc_message_id FROM sender.deliveries
    WHERE account_id = :account_id AND state = 'sent' AND read_back_at IS NULL
      AND gmail_id IS NOT NULL AND sent_at > :since
    ORDER BY sent_at, message_id
    LIMIT :limit
    """
)
_STORE = text(
    """
    UPDATE sender.deliveries SET stored_message_id = :stored, read_back_at = :now
    WHERE message_id = :message_id AND account_id = :account_id
    """
)


def message_id_read(
    message_id: int, account_id: int, ours: str, stored: str | None
) -> c.MessageIdRead | None:
    """The event for a Message-ID read back: only when Gmail's differs from ours (whitespace aside)."""
    if stored is None:
        return None
    stored = stored.strip()
    if not stored or stored == ours.strip():
        return None
    return c.MessageIdRead(message_id=message_id, account_id=account_id, rfc_message_id=stored[:998])


async def read_back(
    ports: WatcherPorts,
    held: MailboxLease,
    token: GmailAccessToken,
    budget: Budget,
    *,
    on_staged: Callable[[list[c.Event]], None],
) -> int:
    """Read back as many Message-IDs as ``budget`` allows; how many were read."""
    room = budget.left // budget.costs["messages.get"]
    if room <= 0:
        return 0
    since = ports.clock() - timedelta(days=ports.settings.watch_days)
    async with transaction(ports.sessions) as session:
        due = list(
            await session.execute(_DUE, {"account_id": held.account_id, "since": since, "limit": room})
        )
    if not due:
        return 0
    read: list[tuple[int, str | None]] = []
    events: list[c.MessageIdRead] = []
    for row in due:
        budget.spend("messages.get")
        answer = await ports.gmail.get_metadata_headers(token.access_token, row.gmail_id, ("Message-ID",))
        stored = None if answer.status == 404 else header(answer, "Message-ID", ports.clock())
        read.append((row.message_id, stored))
        changed = message_id_read(row.message_id, held.account_id, row.rfc_message_id, stored)
        if changed is not None:
            events.append(changed)
    now = ports.clock()
    async with transaction(ports.sessions) as session:
        await session.execute(
            _STORE,
            [
                {"stored": stored, "now": now, "message_id": message_id, "account_id": held.account_id}
                for message_id, stored in read
            ],
        )
        for event in events:
            await stage(session, outbox, event)
        await mailboxes.renew(session, held, now=now, lease_seconds=ports.settings.lease_seconds)
    on_staged(list(events))
    return len(read)

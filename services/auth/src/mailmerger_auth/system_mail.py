"""The system's own mail: letters written with the change that needs them, delivered by the post.

Invariants:
- A letter is a row of ``system_mail`` written in the business transaction (a confirmation link
  exists only if its letter does, and neither survives a rollback). Its body is sealed: it holds
  a link's secret until it is sent.
- The post sends each due letter and deletes it; a failed attempt is retried with backoff until
  the letter is older than ``MAX_LETTER_AGE`` (its links have expired by then), when it is dropped
  and logged. Delivery is at least once: a crash between sending and deleting sends it again.
- Replicas share the work: a letter is taken with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec
from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Clock
from mailmerger_shared.db import transaction

log = logging.getLogger(__name__)
letters = models.system_mail

MAX_LETTER_AGE = timedelta(days=2)
MAX_BACKOFF_SECONDS = 300.0
BATCH = 20


class Letter(msgspec.Struct, frozen=True, kw_only=True):
    recipient: str  # a normalised, validated address
    subject: str
    body: str  # plain text


class LetterRefused(Exception):
    """The transport refused this letter for good (a malformed address, say): retrying cannot help."""


class SystemMailer(Protocol):
    """A transport of the system's letters (adapters/system_mail.py); raises LetterRefused when
    the letter can never be sent, any other exception when a later attempt may succeed."""

    async def send(self, letter: Letter) -> None: ...


def _context(recipient: str, subject: str) -> bytes:
    return f"mailmerger-auth/system-mail/{recipient}/{subject}".encode()


async def post_letter(session: AsyncSession, sealer: Sealer, letter: Letter, *, now: datetime) -> None:
    """Queue the letter with the caller's transaction."""
    await session.execute(
        letters.insert().values(
            recipient=letter.recipient,
            subject=letter.subject,
            body=sealer.seal(letter.body.encode(), context=_context(letter.recipient, letter.subject)),
            encryption_key_id=sealer.active_key_id,
            next_attempt_at=now,
            created_at=now,
        )
    )


class SystemPost:
    """Delivers queued letters: when woken (a request queued one) and every ``poll_interval``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sealer: Sealer,
        mailer: SystemMailer,
        clock: Clock,
        *,
        poll_interval: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._mailer = mailer
        self._clock = clock
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; a failed pass is logged and the next one tries again."""
        while True:
            try:
                while await self.deliver_due() == BATCH:
                    pass
            except Exception:
                log.exception("system mail delivery pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """One batch of due letters; how many were taken."""
        async with transaction(self._sessions) as session:
            now = self._clock()
            rows = (
                await session.execute(
                    select(letters)
                    .where(letters.c.next_attempt_at <= now)
                    .order_by(letters.c.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self._deliver(session, row, now)
        return len(rows)

    async def _deliver(self, session: AsyncSession, row: Row[Any], now: datetime) -> None:
        letter_id = row.id
        try:
            context = _context(row.recipient, row.subject)
            body = self._sealer.open(row.body, key_id=row.encryption_key_id, context=context)
            await self._mailer.send(Letter(recipient=row.recipient, subject=row.subject, body=body.decode()))
        except LetterRefused as refused:
            log.error("system letter %s refused for good: %s", letter_id, refused)
        except Exception as exc:
            attempts = row.attempts + 1
            if now - row.created_at >= MAX_LETTER_AGE:
                log.error("system letter %s dropped after %d attempts: %s", letter_id, attempts, exc)
            else:
                log.warning("system letter %s not sent (attempt %d): %s", letter_id, attempts, exc)
                backoff = timedelta(seconds=min(2.0**attempts, MAX_BACKOFF_SECONDS))
                await session.execute(
                    update(letters)
                    .where(letters.c.id == letter_id)
                    .values(attempts=attempts, next_attempt_at=now + backoff, last_error=str(exc)[:500])
                )
                return
        await session.execute(delete(letters).where(letters.c.id == letter_id))

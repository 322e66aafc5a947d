"""The legacy client's queue, mapped onto the ledger.

A legacy Email is a ledger message that belongs to no campaign: ``eid`` is its id, ``is_sent`` is
``state == sent``, ``include_resume`` is whether it carries an attachment (the only one the old
client can add is the resume). "The queue" is the user's unsent emails they can still act on:
scheduled (including held ones, waiting for "send queued emails"), failed and unconfirmed.
The old client names no Gmail account; the user's first connected one sends.

The old client lets a user queue email before connecting Gmail. Such an email is written with no
account (``account_id`` NULL), which no dispatch ever claims; the first account the user connects
is given every such email when its ``GmailConnected`` is applied (``assign_waiting``), and only
then can it be sent. A per-user advisory lock orders the two: an email queued while the account
is being connected is either seen by the assignment or sees the account itself, never neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import LEGACY_QUEUE, SenderState, State
from mailmerger_queue.emails import service as emails
from mailmerger_queue.errors import Invalid, NotFound
from mailmerger_queue.models import Record, messages, senders
from mailmerger_queue.settings import ComposeSettings

m = messages
_IN_QUEUE = (m.c.campaign_id.is_(None)) & m.c.state.in_([s.value for s in LEGACY_QUEUE])


class LegacyEmailIn(msgspec.Struct, frozen=True, kw_only=True):
    """What the old client posts; it may also send ``eid``, ``uid`` or ``is_sent``, which are ignored."""

    subject: str
    body: str
    to_email: str
    cc_email: str | None = None
    bcc_email: str | None = None
    send_at: datetime | None = None
    include_resume: bool = False


class LegacyEmail(msgspec.Struct, frozen=True, kw_only=True):
    eid: int
    uid: int
    subject: str
    body: str
    is_sent: bool
    to_email: str
    cc_email: str | None
    bcc_email: str | None
    send_at: str | None
    include_resume: bool


# Built once: add-to-queue runs both on every call, and building a statement (and its cache key)
# cost more CPU than running it (profiled: bench_legacy.py --profile add-to-queue).
_FIRST_CONNECTED = (
    select(senders.c.account_id)
    .where(senders.c.user_id == bindparam("user_id"), senders.c.state == SenderState.CONNECTED)
    .order_by(senders.c.connected_at, senders.c.account_id)
    .limit(1)
)
_QUEUE_LENGTH = select(func.count()).where(m.c.user_id == bindparam("user_id"), _IN_QUEUE)


async def first_connected_account(session: AsyncSession, user_id: int) -> int | None:
    account: int | None = (await session.execute(_FIRST_CONNECTED, {"user_id": user_id})).scalar_one_or_none()
    return account


_LOCK_USER = text("SELECT pg_advisory_xact_lock(hashtextextended('mailmerger.queue.unassigned', :user_id))")


async def queueing_account(session: AsyncSession, user_id: int) -> int | None:
    """The account a newly queued email is sent from: the user's first connected one, or None
    while they have none (the email then waits for ``assign_waiting``)."""
    account = await first_connected_account(session, user_id)
    if account is None:
        await session.execute(_LOCK_USER, {"user_id": user_id})
        # Read again under the lock: an account connected meanwhile has committed by now.
        account = await first_connected_account(session, user_id)
    return account


async def assign_waiting(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Give the user's emails queued without an account to their first connected account."""
    await session.execute(_LOCK_USER, {"user_id": user_id})
    account = await first_connected_account(session, user_id)
    if account is None:
        return
    assigned = await session.execute(
        update(m)
        .where(m.c.user_id == user_id, m.c.account_id.is_(None))
        .values(account_id=account, updated_at=now)
        .returning(m.c.state, m.c.send_at)
    )
    if any(
        state == State.SCHEDULED and send_at is not None and send_at <= now for state, send_at in assigned
    ):
        await announce_due(session)


def _addresses(value: str | None) -> list[str]:
    """The old client sends one string per field; several addresses are comma-separated."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


async def submit(
    session: AsyncSession,
    *,
    user_id: int,
    account_id: int | None,
    email: LegacyEmailIn,
    send_now: bool,
    templates: TemplatesClient,
    storage: StorageClient,
    settings: ComposeSettings,
    now: datetime,
) -> int:
    """Write a legacy email: due now, at its ``send_at``, or held until the user sends the queue."""
    attachment_ids: list[int] = []
    if email.include_resume:
        resume = await storage.designated(user_id, "resume")
        if resume is None:
            raise Invalid("include_resume: upload a resume first (filecontent=resume)")
        attachment_ids.append(resume.attachment_id)
    send_at = email.send_at
    if send_at is not None and send_at.tzinfo is None:
        send_at = send_at.replace(tzinfo=UTC)  # the old client's times without an offset are UTC
    data = schemas.EmailContent(
        to=_addresses(email.to_email),
        cc=_addresses(email.cc_email),
        bcc=_addresses(email.bcc_email),
        subject=email.subject,
        html=email.body,
        attachment_ids=attachment_ids,
        send_at=now if send_now else send_at,
    )
    return await emails.compose(
        session,
        user_id=user_id,
        account_id=account_id,
        data=data,
        templates=templates,
        storage=storage,
        settings=settings,
        now=now,
        hold=not send_now and send_at is None,
    )


async def queue_length(session: AsyncSession, user_id: int) -> int:
    count = await session.execute(_QUEUE_LENGTH, {"user_id": user_id})
    return int(count.scalar_one())


async def queued_emails(session: AsyncSession, user_id: int) -> list[LegacyEmail]:
    rows = await session.execute(select(m).where(m.c.user_id == user_id, _IN_QUEUE).order_by(m.c.id))
    return [_legacy(row) for row in rows]


def _legacy(row: Record) -> LegacyEmail:
    return LegacyEmail(
        eid=row.id,
        uid=row.user_id,
        subject=row.subject or "",
        body=row.html or row.text or "",
        is_sent=row.state == State.SENT,
        to_email=", ".join(row.to_addrs),
        cc_email=", ".join(row.cc_addrs) or None,
        bcc_email=", ".join(row.bcc_addrs) or None,
        send_at=row.send_at.isoformat() if row.send_at else None,
        include_resume=bool(row.attachment_ids),
    )


async def require_owned(session: AsyncSession, user_id: int, message_ids: list[int]) -> None:
    """404 naming the ids that are not the user's emails (never whose they are)."""
    owned = set(
        (
            await session.execute(
                select(m.c.id).where(
                    m.c.id.in_(message_ids), m.c.user_id == user_id, m.c.campaign_id.is_(None)
                )
            )
        ).scalars()
    )
    unknown = sorted(set(message_ids) - owned)
    if unknown:
        raise NotFound(f"no email with id {', '.join(map(str, unknown))} in your queue")


@dataclass(frozen=True)
class ConnectGmail:
    """The answer when the user has no connected Gmail account: where the browser connects one."""

    url: str


class LegacyQueue:
    """The legacy client's use cases, built once with the templates, storage and auth clients and
    the compose settings. Reading the queue needs nothing but the transaction (``queued_emails``)."""

    def __init__(
        self, templates: TemplatesClient, storage: StorageClient, auth: AuthClient, settings: ComposeSettings
    ) -> None:
        self._templates = templates
        self._storage = storage
        self._auth = auth
        self._settings = settings

    async def _submit(
        self,
        session: AsyncSession,
        user_id: int,
        account_id: int | None,
        email: LegacyEmailIn,
        *,
        send_now: bool,
    ) -> int:
        return await submit(
            session,
            user_id=user_id,
            account_id=account_id,
            email=email,
            send_now=send_now,
            templates=self._templates,
            storage=self._storage,
            settings=self._settings,
            now=datetime.now(UTC),
        )

    async def _connect_gmail(self, user_id: int) -> ConnectGmail:
        # The old client carries no token when the browser follows it: a single-use ticket does.
        ticket = await self._auth.connect_ticket(user_id)
        return ConnectGmail(url=ticket.url)

    async def send_email_now(
        self, session: AsyncSession, user_id: int, email: LegacyEmailIn
    ) -> int | ConnectGmail:
        """Send one email now from the user's first connected Gmail (its id), or say where to
        connect one."""
        account_id = await first_connected_account(session, user_id)
        if account_id is None:
            return await self._connect_gmail(user_id)
        return await self._submit(session, user_id, account_id, email, send_now=True)

    async def add_to_queue(self, session: AsyncSession, user_id: int, email: LegacyEmailIn) -> int:
        """Queue an email (see ``submit``), for the first account the user connects if they have
        none yet; the length of the queue after it."""
        account_id = await queueing_account(session, user_id)
        await self._submit(session, user_id, account_id, email, send_now=False)
        return await queue_length(session, user_id)

    async def send_queued(
        self, session: AsyncSession, user_id: int, message_ids: list[int]
    ) -> list[int] | ConnectGmail:
        """Send the given queued emails now (the ids sent); 404 if any is not the user's; without a
        connected Gmail, where to connect one."""
        await require_owned(session, user_id, message_ids)
        if await first_connected_account(session, user_id) is None:
            return await self._connect_gmail(user_id)
        return await emails.send_now_many(session, user_id, message_ids, now=datetime.now(UTC))

    async def delete_queued(
        self, session: AsyncSession, user_id: int, message_ids: list[int]
    ) -> tuple[list[int], int]:
        """Remove the given emails from the queue (404 if any is not the user's): the ids removed,
        and the length of the queue after."""
        await require_owned(session, user_id, message_ids)
        deleted = await emails.cancel_many(session, user_id, message_ids, now=datetime.now(UTC))
        return deleted, await queue_length(session, user_id)

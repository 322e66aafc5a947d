"""The email use cases as one object, built once with what they use besides the request's
transaction: the templates and storage clients and the compose settings (``api.deps``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.domain import Resolution
from mailmerger_queue.emails import reads, removal, service
from mailmerger_queue.settings import ComposeSettings


class Emails:
    """Compose an email, cancel it, send it now, resolve it; each answers the email as it is then.

    Reading (``emails.reads``) needs nothing but the transaction, so it is not here.
    """

    def __init__(self, templates: TemplatesClient, storage: StorageClient, settings: ComposeSettings) -> None:
        self._templates = templates
        self._storage = storage
        self._settings = settings

    async def compose(
        self, session: AsyncSession, user_id: int, data: schemas.ComposeEmail
    ) -> schemas.EmailDetail:
        """Write one email into the ledger, scheduled for ``send_at`` (default: now)."""
        message_id = await service.compose(
            session,
            user_id=user_id,
            account_id=data.account_id,
            data=data,
            templates=self._templates,
            storage=self._storage,
            settings=self._settings,
            now=datetime.now(UTC),
        )
        return await reads.get_email(session, user_id, message_id)

    async def cancel(self, session: AsyncSession, user_id: int, message_id: int) -> schemas.EmailDetail:
        await service.cancel(session, user_id, message_id, now=datetime.now(UTC))
        return await reads.get_email(session, user_id, message_id)

    async def send_now(self, session: AsyncSession, user_id: int, message_id: int) -> schemas.EmailDetail:
        await service.send_now(session, user_id, message_id, now=datetime.now(UTC))
        return await reads.get_email(session, user_id, message_id)

    async def resolve(
        self, session: AsyncSession, user_id: int, message_id: int, resolution: Resolution
    ) -> schemas.EmailDetail:
        await service.resolve(session, user_id, message_id, resolution, now=datetime.now(UTC))
        return await reads.get_email(session, user_id, message_id)

    async def delete(self, session: AsyncSession, user_id: int, message_id: int) -> None:
        await removal.delete_email(session, user_id, message_id, now=datetime.now(UTC))

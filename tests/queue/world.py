"""Test helpers for the queue suite: users with connected accounts, events, and the commands sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import func, select

from mailmerger_queue.models import messages, processed_events, senders
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import messages_of
from mailmerger_shared.db import transaction
from mailmerger_shared.runtime import Infrastructure
from tests.queue.fakes import FakeServices
from tests.support import eventually
from tests.tokens import TestSigner


class FakeClock:
    """The dispatcher's notion of now, moved forward by the test.

    It never lags behind the real clock: what a test composes is stamped with real time, and
    must be due for the dispatcher once composed.
    """

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        self.current = max(self.current, datetime.now(UTC))
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@dataclass
class World:
    client: httpx.AsyncClient
    infra: Infrastructure
    fake: FakeServices
    signer: TestSigner
    ids: Iterator[int]

    def new_id(self) -> int:
        return next(self.ids)

    def auth(self, user_id: int) -> dict[str, str]:
        return self.signer.bearer(user_id)

    published: dict[UUID, c.Message] = field(default_factory=dict)

    async def publish(self, event: c.Message, envelope: c.Envelope | None = None) -> c.Envelope:
        assert self.infra.publisher is not None
        envelope = await self.infra.publisher.publish(event, envelope)
        self.published[envelope.id] = event
        return envelope

    async def consumed(self, *envelopes: c.Envelope) -> None:
        """Wait until the queue service has processed every one of ``envelopes`` (published here).

        An EmailSent leaves no processed-event row (it is idempotent by itself): its message is sent.
        """
        assert self.infra.sessions is not None
        events = {envelope.id: self.published[envelope.id] for envelope in envelopes}
        ids = [i for i, event in events.items() if not isinstance(event, c.EmailSent)]
        sent = [event.message_id for event in events.values() if isinstance(event, c.EmailSent)]

        async def processed() -> bool:
            async with transaction(self.infra.sessions) as session:
                found = await session.execute(
                    select(func.count()).where(processed_events.c.envelope_id.in_(ids))
                )
                marked = await session.execute(
                    select(func.count()).where(messages.c.id.in_(sent), messages.c.state == "sent")
                )
                return found.scalar_one() == len(ids) and marked.scalar_one() == len(set(sent))

        await eventually(processed)

    async def sender_row(self, account_id: int) -> Any:
        assert self.infra.sessions is not None
        async with transaction(self.infra.sessions) as session:
            return (await session.execute(select(senders).where(senders.c.account_id == account_id))).first()

    async def connect(self, user_id: int, *, email: str | None = None, account_id: int | None = None) -> int:
        """Announce a connected Gmail account through the broker and wait until the queue has it."""
        account = account_id or self.new_id()
        await self.publish(
            c.GmailConnected(
                user_id=user_id,
                account_id=account,
                email=email or f"user{user_id}.{account}@gmail.com",
                display_name=f"User {user_id}",
                scopes=["https://www.googleapis.com/auth/gmail.send"],
            )
        )

        async def known() -> bool:
            row = await self.sender_row(account)
            return row is not None and row.state == "connected"

        await eventually(known)
        return account

    async def user_with_account(self, **kwargs: Any) -> tuple[int, int]:
        user_id = self.new_id()
        return user_id, await self.connect(user_id, **kwargs)

    async def compose(self, user_id: int, account_id: int, **fields: Any) -> dict[str, Any]:
        body = {"account_id": account_id, "to": ["ada@example.com"], "subject": "Hi", "html": "<p>Hi</p>"}
        body.update(fields)
        response = await self.client.post("/v1/emails", json=body, headers=self.auth(user_id))
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def launch_campaign(self, user_id: int, campaign: dict[str, Any], recipients_csv: str) -> int:
        """Create ``campaign``, upload ``recipients_csv`` as its recipients and launch it: its id."""
        created = await self.client.post("/v1/campaigns", json=campaign, headers=self.auth(user_id))
        assert created.status_code == 201, created.text
        campaign_id: int = created.json()["id"]
        await self.upload_recipients(user_id, campaign_id, recipients_csv)
        launched = await self.client.post(
            f"/v1/campaigns/{campaign_id}/launch", json={}, headers=self.auth(user_id)
        )
        assert launched.status_code == 200, launched.text
        return campaign_id

    async def upload_recipients(self, user_id: int, campaign_id: int, recipients_csv: str) -> dict[str, Any]:
        """PUT ``recipients_csv`` as the campaign's list: the build summary."""
        uploaded = await self.client.put(
            f"/v1/campaigns/{campaign_id}/recipients",
            content=recipients_csv.encode(),
            headers={**self.auth(user_id), "content-type": "text/csv"},
        )
        assert uploaded.status_code == 200, uploaded.text
        summary: dict[str, Any] = uploaded.json()
        return summary

    async def email(self, user_id: int, email_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/v1/emails/{email_id}", headers=self.auth(user_id))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait_state(self, user_id: int, email_id: int, state: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            email = await self.email(user_id, email_id)
            return email if email["state"] == state else None

        return await eventually(reached)

    async def commands(self) -> list[c.SendEmail]:
        """Every SendEmail waiting in the sender's queue, taken off it."""
        assert self.infra.amqp is not None
        channel = await self.infra.amqp.channel()
        queue = await channel.get_queue("sender.send-email", ensure=False)
        taken: list[c.SendEmail] = []
        while (incoming := await queue.get(no_ack=True, fail=False)) is not None:
            for message, _ in messages_of(incoming):
                assert isinstance(message, c.SendEmail)
                taken.append(message)
        await channel.close()
        return taken

"""The ledger's batched writes: each outcome of a batch is written (with its events) only by its claim."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_sender.ledger import settlement, statements, states
from mailmerger_sender.ledger.statements import Outcome
from mailmerger_sender.ledger.states import Delivery
from mailmerger_sender.ledger.writer import LedgerWriter
from mailmerger_sender.models import deliveries, outbox
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.sender.support import SEND, Account, next_id, send_email

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _account() -> Account:
    return Account(account_id=next_id(), user_id=next_id(), email="me@example.com", scopes=(SEND,))


async def _claim(writer: LedgerWriter, command: c.SendEmail) -> Delivery:
    claimed, held = await writer.claim(command, uuid.uuid4(), now=NOW, settles_at=NOW + timedelta(minutes=1))
    assert claimed
    return held


async def _staged(sessions: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> set[uuid.UUID]:
    async with transaction(sessions) as session:
        return set((await session.execute(select(outbox.c.id).where(outbox.c.id.in_(ids)))).scalars())


async def test_a_batch_writes_only_the_outcomes_whose_claim_holds_and_their_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = LedgerWriter(sessions, wake_relay=lambda: None)
    account = _account()
    kept, lost = send_email(account), send_email(account)
    held_kept, held_lost = await _claim(writer, kept), await _claim(writer, lost)
    # Another command took ``lost`` over meanwhile: its outcome must change nothing.
    stale = held_lost
    async with transaction(sessions) as session:
        assert await statements.take_over(
            session, held_lost, lost, uuid.uuid4(), now=NOW, settles_at=NOW + timedelta(minutes=1)
        )
    sent_kept = settlement.sent(kept, "g-1", "t-1", NOW, reconciled=False)
    sent_lost = settlement.sent(lost, "g-2", "t-2", NOW, reconciled=False)
    outcomes = [
        Outcome(held=held_kept, settlement=sent_kept, events=_env(sent_kept)),
        Outcome(held=stale, settlement=sent_lost, events=_env(sent_lost)),
        Outcome(held=None, events=_env(settlement.failed(kept, "x", "an event of no row"))),
    ]

    async with transaction(sessions) as session:
        written = await statements.record_all(session, outcomes)

    assert written == [True, False, True]
    staged = await _staged(sessions, [e.id for o in outcomes for e, _ in o.events])
    assert staged == {outcomes[0].events[0][0].id, outcomes[2].events[0][0].id}
    async with transaction(sessions) as session:
        written_states = dict(
            (
                await session.execute(
                    select(deliveries.c.message_id, deliveries.c.state).where(
                        deliveries.c.message_id.in_([kept.message_id, lost.message_id])
                    )
                )
            ).all()
        )
    assert written_states == {kept.message_id: states.SENT, lost.message_id: states.SENDING}


async def test_two_outcomes_of_one_message_in_a_batch_stage_only_the_holders_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = LedgerWriter(sessions, wake_relay=lambda: None)
    command = send_email(_account())
    held = await _claim(writer, command)
    impostor = Delivery(**{**_fields(held), "command_id": uuid.uuid4()})
    sent = settlement.sent(command, "g-1", "t-1", NOW, reconciled=False)
    failed = settlement.failed(command, "x", "from a command that holds no claim")
    outcomes = [
        Outcome(held=impostor, settlement=failed, events=_env(failed)),
        Outcome(held=held, settlement=sent, events=_env(sent)),
    ]

    async with transaction(sessions) as session:
        written = await statements.record_all(session, outcomes)

    assert written == [False, True]
    ids = [e.id for o in outcomes for e, _ in o.events]
    assert await _staged(sessions, ids) == {outcomes[1].events[0][0].id}


def _env(outcome: settlement.Settlement) -> list[tuple[c.Envelope, c.Event]]:
    return [(c.Envelope.new(event.TAG), event) for event in outcome.events]


def _fields(row: Delivery) -> dict[str, object]:
    return {name: getattr(row, name) for name in Delivery.__slots__}

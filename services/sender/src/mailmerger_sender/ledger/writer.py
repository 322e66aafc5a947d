"""The ledger's writes, batched across the deliveries in flight: one statement per batch.

Claims and outcomes are two separate streams of batches, so claiming never waits for outcomes.
Each batch is one statement in autocommit (a claim, or every settlement with the events it
stages), so it is atomic and costs one round trip. Each caller still gets its own answer, exactly
as if it had written alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_sender.ledger import statements
from mailmerger_sender.ledger.settlement import Settlement
from mailmerger_sender.ledger.statements import ClaimRequest, Outcome
from mailmerger_sender.ledger.states import Delivery
from mailmerger_shared import contracts as c
from mailmerger_shared.batching import Batcher
from mailmerger_shared.context import current_correlation_id
from mailmerger_shared.db import autocommit, transaction

MAX_BATCH = 100


class DuplicateMessageId(Exception):
    """Another email already holds this RFC Message-ID: sending it would make reconciliation lie."""


class LedgerWriter:
    """What delivery writes to the ledger: claims, settlements, events alone, take-overs.

    Events reach the outbox table here; the outbox relay (woken by ``wake_relay``) publishes them.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, wake_relay: Callable[[], None]) -> None:
        self._sessions = sessions
        self._wake_relay = wake_relay
        self._claims: Batcher[ClaimRequest, tuple[bool, Delivery]] = Batcher(
            self._claim_batch, max_size=MAX_BATCH
        )
        self._outcomes: Batcher[Outcome, bool] = Batcher(self._record_batch, max_size=MAX_BATCH)

    async def claim(
        self, command: c.SendEmail, command_id: uuid.UUID, *, now: datetime, settles_at: datetime
    ) -> tuple[bool, Delivery]:
        """See ``statements.claim_all``; raises ``DuplicateMessageId``."""
        request = ClaimRequest(command=command, command_id=command_id, now=now, settles_at=settles_at)
        return await self._claims.submit(request)

    async def record(self, held: Delivery, settlement: Settlement) -> bool:
        """Write ``settlement`` and stage its events if ``held``'s claim still holds; whether it
        was written."""
        return await self._outcomes.submit(
            Outcome(held=held, settlement=settlement, events=_enveloped(settlement.events))
        )

    async def stage(self, *events: c.Event) -> None:
        """Stage events in the outbox that change no row (outcomes re-published, deferrals of held
        messages); the relay publishes them."""
        await self._outcomes.submit(Outcome(held=None, events=_enveloped(events)))

    async def take_over(
        self,
        held: Delivery,
        command: c.SendEmail,
        command_id: uuid.UUID,
        *,
        now: datetime,
        settles_at: datetime,
    ) -> bool:
        # Rare (an abandoned claim that settled): not worth a batch.
        async with transaction(self._sessions) as session:
            return await statements.take_over(
                session, held, command, command_id, now=now, settles_at=settles_at
            )

    async def _claim_batch(self, requests: list[ClaimRequest]) -> list[tuple[bool, Delivery] | BaseException]:
        # Distinct messages are claimed by one INSERT, atomic alone (the read of rows it did not
        # claim changes nothing; a claim committed before a failed read stays unresolved and is
        # reconciled once it settles, as after any lost answer). The same message twice takes a
        # statement per round, which must commit together: a failing round undoes the earlier.
        distinct = len({r.command.message_id for r in requests}) == len(requests)
        try:
            async with (autocommit if distinct else transaction)(self._sessions) as session:
                return list(await statements.claim_all(session, requests))
        except IntegrityError:
            pass
        # Some request's Message-ID belongs to another email: find which, one at a time.
        results: list[tuple[bool, Delivery] | BaseException] = []
        for request in requests:
            try:
                async with autocommit(self._sessions) as session:
                    [result] = await statements.claim_all(session, [request])
                results.append(result)
            except IntegrityError:
                results.append(DuplicateMessageId(request.command.rfc_message_id))
        return results

    async def _record_batch(self, outcomes: list[Outcome]) -> list[bool]:
        async with autocommit(self._sessions) as session:
            written = await statements.record_all(session, outcomes)
        if any(o.events for o, ok in zip(outcomes, written, strict=True) if ok):
            self._wake_relay()
        return written


def _enveloped(events: tuple[c.Event, ...]) -> list[tuple[c.Envelope, c.Event]]:
    # Made by the caller, so each event carries its own delivery's correlation id.
    return [(c.Envelope.new(event.TAG, correlation_id=current_correlation_id()), event) for event in events]

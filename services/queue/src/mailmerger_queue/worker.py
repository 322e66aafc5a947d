"""Background work of the queue service: the dispatcher loop (with the webhook courier beside it)
and the three event consumers."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.dispatch.dispatcher import Clock, Dispatcher, SystemClock
from mailmerger_queue.dispatch.wakeup import DueListener
from mailmerger_queue.outcomes.accounts import apply_account_event
from mailmerger_queue.outcomes.delivery import OutcomeWriter, first_deliveries
from mailmerger_queue.sequences.builder import open_follow_ups
from mailmerger_queue.sequences.responses import apply_message_id_read, apply_response
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.webhooks.courier import run_courier
from mailmerger_shared import contracts as c
from mailmerger_shared.broker.consumer import Handler
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.db import transaction
from mailmerger_shared.runtime import Infrastructure, open_infrastructure
from mailmerger_shared.web.probes import Probes

HandlerFactory = Callable[[Infrastructure], Handler]


async def run_dispatcher(
    settings: QueueSettings, *, clock: Clock | None = None, probes: Probes | None = None
) -> None:
    """Dispatch due messages until cancelled (``mailmerger worker dispatcher``, all-in-one mode).

    Any number of replicas may run: accounts and messages are claimed with SKIP LOCKED. Once it
    dispatches, its database and broker checks are reported to ``probes`` (the process's ``/ready``).
    """
    async with (
        open_infrastructure("queue-dispatcher", database=settings.database, broker=settings.broker) as infra,
        contextlib.AsyncExitStack() as stack,  # sequences: closes the follow-up builder's client
    ):
        dispatcher = await open_dispatcher(infra, settings, clock or SystemClock())
        # --- sequences: housekeeping builds follow-ups, rendering through its own templates client
        assert infra.sessions is not None
        follow_ups = await stack.enter_async_context(open_follow_ups(settings, infra.sessions))
        dispatcher.follow_ups = follow_ups
        # --- end of sequences
        dispatcher.between_ticks = listener = DueListener(
            settings.database.url, application_name="queue-dispatcher-listener"
        )
        # Webhook deliveries ride along: every dispatcher replica is also a courier (leases keep
        # two from posting one delivery at once).
        courier = asyncio.create_task(
            run_courier(infra.sessions, settings.webhooks, settings.compliance), name="webhook-courier"
        )
        try:
            with probes.report(infra.readiness) if probes is not None else contextlib.nullcontext():
                await dispatcher.run()
        finally:
            courier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await courier
            await listener.close()


async def open_dispatcher(infra: Infrastructure, settings: QueueSettings, clock: Clock) -> Dispatcher:
    """A dispatcher over open infrastructure, with the sender's command queue declared.

    Declaring it here means a command published before any sender ever started is kept, not
    returned as unroutable.
    """
    assert infra.sessions is not None
    assert infra.publisher is not None
    assert infra.amqp is not None
    channel = await infra.amqp.channel()
    try:
        await declare_queue(
            channel, QUEUES["sender.send-email"], delivery_limit=settings.broker.delivery_limit
        )
    finally:
        await channel.close()
    return Dispatcher(
        infra.sessions,
        infra.publisher,
        settings.dispatch,
        clock,
        random.Random(),  # noqa: S311 (jitter, not secrecy)
        unsubscribe=UnsubscribeTokens.of(settings),
    )


def delivery_outcomes(settings: QueueSettings) -> HandlerFactory:
    """Consumer of ``queue.delivery-outcomes``: events in flight share a transaction, redeliveries skipped."""

    def factory(infra: Infrastructure) -> Handler:
        sessions = infra.sessions
        assert sessions is not None
        limit = settings.dispatch.campaign_failure_limit
        return OutcomeWriter(sessions, campaign_failure_limit=limit).apply

    return factory


def account_events(settings: QueueSettings) -> HandlerFactory:
    """Consumer of ``queue.account-events`` (auth's account events, storage's deletions)."""

    def factory(infra: Infrastructure) -> Handler:
        sessions = infra.sessions
        assert sessions is not None

        async def handle(message: c.Message, envelope: c.Envelope) -> None:
            now = datetime.now(UTC)
            async with transaction(sessions) as session:
                if await first_deliveries(session, [envelope.id], now):
                    await apply_account_event(session, message, envelope.occurred_at, now, settings.dispatch)

        return handle

    return factory


def mailbox_events(settings: QueueSettings) -> HandlerFactory:
    """Consumer of ``queue.mailbox-events`` (what the sender's mailbox watcher found), one
    transaction per event.

    Envelopes are not recorded (``first_deliveries``): a response is applied once by its own key
    (``responses``: account and Gmail message id), which also covers what an envelope id cannot,
    the watcher finding one message again under a new envelope (a full resync); a stored
    Message-ID is idempotent by itself.
    """

    def factory(infra: Infrastructure) -> Handler:
        sessions = infra.sessions
        assert sessions is not None

        async def handle(message: c.Message, envelope: c.Envelope) -> None:
            now = datetime.now(UTC)
            async with transaction(sessions) as session:
                if isinstance(message, c.ResponseReceived):
                    await apply_response(session, message, now, settings.dispatch)
                elif isinstance(message, c.MessageIdRead):
                    await apply_message_id_read(session, message, now)

        return handle

    return factory

"""The sender worker: consume ``SendEmail`` from ``sender.send-email`` and deliver each one.

Any number of workers may consume the same queue (the ledger keeps them from sending a message
twice). Each relays its own outbox too; the relay is safe to run in every replica. Each also runs
the mailbox watcher (``watcher``: replies and bounces), kept apart from the other replicas' by
leases on the mailboxes.

Shutdown (the task is cancelled): stop taking messages, let the sends in flight finish (up to the
grace period), publish what they staged, then close everything in reverse order. Messages not yet
handled go back to the queue for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from mailmerger_sender.adapters.attachments import Attachments, BlobStore, open_s3
from mailmerger_sender.adapters.gmail import HttpGmail
from mailmerger_sender.adapters.tokens import AccessTokens
from mailmerger_sender.delivery import Ports, deliver
from mailmerger_sender.ledger.writer import LedgerWriter
from mailmerger_sender.limiter import AccountLimiter
from mailmerger_sender.models import outbox
from mailmerger_sender.settings import SenderSettings
from mailmerger_sender.watcher.ports import WatcherPorts
from mailmerger_sender.watcher.run import run_watcher
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import Consumer, ConsumerStalled, Handler
from mailmerger_shared.broker.topology import declare_queues_of
from mailmerger_shared.outbox import OutboxRelay
from mailmerger_shared.runtime import open_infrastructure
from mailmerger_shared.web.internal import InternalClient
from mailmerger_shared.web.probes import Probes

log = logging.getLogger(__name__)

QUEUE = "sender.send-email"
# What this service publishes (its outbox): their queues are declared at start-up.
PUBLISHED: tuple[type[c.Message], ...] = (
    c.EmailSent,
    c.EmailFailed,
    c.EmailDeferred,
    c.EmailUnconfirmed,
    c.SenderThrottled,
    c.GmailReconnectRequired,
    c.ResponseReceived,
    c.MessageIdRead,
)
_FINAL_RELAY_SECONDS = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


async def run_sender(
    settings: SenderSettings,
    *,
    gmail_transport: httpx.AsyncBaseTransport | None = None,
    auth_transport: httpx.AsyncBaseTransport | None = None,
    blobs: BlobStore | None = None,
    clock: Callable[[], datetime] = _now,
    probes: Probes | None = None,
) -> None:
    """Deliver until cancelled. ``probes`` (the process's ``/ready``) gets the database, Redis,
    broker and consumer checks once it consumes; the other keyword arguments replace real
    resources in tests."""
    async with contextlib.AsyncExitStack() as stack:
        infra = await stack.enter_async_context(
            open_infrastructure(
                "sender", database=settings.database, redis=settings.redis, broker=settings.broker
            )
        )
        sessions, redis, amqp, publisher = infra.sessions, infra.redis, infra.amqp, infra.publisher
        if sessions is None or redis is None or amqp is None or publisher is None:
            raise AssertionError("open_infrastructure opens every resource it was given settings for")
        internal = InternalClient(
            settings.auth_service.auth_url,
            caller="sender",
            token=settings.credential.sender_token,
            transport=auth_transport,
        )
        stack.push_async_callback(internal.aclose)
        gmail = HttpGmail(settings.gmail, transport=gmail_transport)
        stack.push_async_callback(gmail.aclose)
        if blobs is None:
            blobs = await stack.enter_async_context(open_s3(settings.s3))

        channel = await amqp.channel()
        try:
            await declare_queues_of(channel, PUBLISHED, delivery_limit=settings.broker.delivery_limit)
        finally:
            await channel.close()
        relay = OutboxRelay(sessions, outbox, publisher)
        s = settings.sender
        ports = Ports(
            ledger=LedgerWriter(sessions, wake_relay=relay.wake),
            gmail=gmail,
            tokens=AccessTokens(
                internal, refresh_margin=timedelta(seconds=s.token_refresh_margin_seconds), clock=clock
            ),
            attachments=Attachments(blobs, capacity_bytes=s.attachment_cache_bytes),
            limiter=AccountLimiter(
                redis,
                key_prefix=settings.redis.key_prefix,
                per_minute=s.account_sends_per_minute,
            ),
            settings=s,
            request_timeout=settings.gmail.request_timeout,
            clock=clock,
            rng=random.Random(),  # noqa: S311  # jitter, not secrets
        )
        relay_task = asyncio.create_task(relay.run(), name="sender-outbox-relay")
        stack.push_async_callback(_cancel, relay_task)
        if settings.watcher.enabled:
            watcher_ports = WatcherPorts(
                sessions=sessions,
                gmail=gmail,
                tokens=ports.tokens,
                settings=settings.watcher,
                clock=clock,
                wake_relay=relay.wake,
            )
            watcher_task = asyncio.create_task(run_watcher(watcher_ports), name="sender-mailbox-watcher")
            stack.push_async_callback(_cancel, watcher_task)
        consumer = Consumer(
            QUEUE,
            send_email_handler(ports),
            prefetch=settings.broker.prefetch,
            delivery_limit=settings.broker.delivery_limit,
            concurrency=settings.broker.concurrency,
        )
        await consumer.start(amqp, wait=settings.broker.startup_wait_seconds)
        stack.enter_context(infra.consuming(consumer))
        if probes is not None:
            stack.enter_context(probes.report(infra.readiness))
        log.info(
            "sender consuming",
            extra={
                "queue": QUEUE,
                "prefetch": settings.broker.prefetch,
                "concurrency": settings.broker.concurrency,
            },
        )
        try:
            await consumer.watch(stall_after=settings.broker.stall_exit_seconds)  # until cancelled
        except ConsumerStalled:
            log.error("not consuming; stopping so that the supervisor starts a fresh sender", exc_info=True)
            raise
        finally:
            await consumer.stop(grace=s.shutdown_grace_seconds)
            await _publish_staged(relay)
            log.info("sender stopped")


def send_email_handler(ports: Ports) -> Handler:
    async def handle(message: c.Message, envelope: c.Envelope) -> None:
        if not isinstance(message, c.SendEmail):
            raise TypeError(f"{QUEUE} carries SendEmail, not {type(message).__name__}")
        await deliver(message, envelope, ports)

    return handle


async def _publish_staged(relay: OutboxRelay) -> None:
    """Publish the outcomes of the last sends before the broker connection closes.

    Whatever is left stays in the outbox and is published by the next relay pass of any replica.
    """
    try:
        async with asyncio.timeout(_FINAL_RELAY_SECONDS):
            while await relay.publish_pending():
                pass
    except Exception:
        log.warning("outbox not drained at shutdown; another relay pass will publish it", exc_info=True)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

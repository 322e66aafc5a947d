"""Consuming with manual acks, bounded prefetch and dead-lettering.

A handler that returns acks the message; one that raises nacks it back to its quorum queue, whose
delivery limit dead-letters it after the last attempt, so a poison message never blocks the rest.
A message that cannot even be decoded is rejected straight to the dead-letter queue.

A bundle (see ``bundle``) is unpacked: its messages go to the handler concurrently, each with its
own envelope, and the bundle is acked when every one of them succeeded. When only some failed, those
go back to the queue alone (published with confirms, then the bundle is acked): the others are not
handled again, and a poison message is dead-lettered alone, not with the bundle it came in. Such a
returned message carries its count of deliveries (``x-mm-deliveries``) and is dead-lettered by the
consumer at the same limit, with the failure that ended it (``x-mm-failure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import bundle
from mailmerger_shared.broker.publisher import bundle_to_amqp, to_amqp
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.context import set_correlation_id
from mailmerger_shared.outages import unavailable_dependency
from mailmerger_shared.tracing import consumer_span

log = logging.getLogger(__name__)

Handler = Callable[[c.Message, c.Envelope], Awaitable[None]]

OUTAGE_PAUSE_FIRST = 1.0
OUTAGE_PAUSE_MAX = 30.0
# Deliveries a message had before the AMQP message now carrying it (it was returned alone from a
# bundle): the broker's own count restarts with each AMQP message.
DELIVERIES_HEADER = "x-mm-deliveries"
FAILURE_HEADER = "x-mm-failure"


class _SomeFailed(Exception):
    """Some messages of a bundle failed (not for an outage); the others succeeded."""

    def __init__(self, failed: list[tuple[c.Message, c.Envelope]], first: Exception) -> None:
        super().__init__(str(first))
        self.failed = failed
        self.first = first


def envelope_of(incoming: AbstractIncomingMessage) -> c.Envelope:
    headers = incoming.headers or {}
    traceparent = headers.get("traceparent")
    return c.Envelope(
        id=uuid.UUID(incoming.message_id) if incoming.message_id else uuid.uuid4(),
        tag=incoming.type or "",
        occurred_at=incoming.timestamp or datetime.now(UTC),
        correlation_id=incoming.correlation_id,
        traceparent=traceparent if isinstance(traceparent, str) else None,
    )


def messages_of(incoming: AbstractIncomingMessage) -> list[tuple[c.Message, c.Envelope]]:
    """The messages an AMQP message carries: itself, or a bundle's; raises ``msgspec`` errors."""
    envelope = envelope_of(incoming)
    if incoming.content_type == bundle.CONTENT_TYPE:
        return bundle.decode(envelope.tag, incoming.body)
    return [(c.decode(envelope.tag, incoming.body), envelope)]


class ConsumerStalled(Exception):
    """The consumer has not been registered at the broker for too long; restart the process."""


class Consumer:
    """Feeds one queue's messages to one handler: ``prefetch`` AMQP messages (single messages or
    bundles) held at a time, at most ``concurrency`` messages handled at once (default: prefetch)."""

    def __init__(
        self,
        queue_name: str,
        handler: Handler,
        *,
        prefetch: int,
        delivery_limit: int,
        concurrency: int | None = None,
    ):
        self.queue_name = queue_name
        self._spec = QUEUES[queue_name]
        self._handler = handler
        self._prefetch = prefetch
        self._slots = asyncio.Semaphore(concurrency or prefetch)
        self._delivery_limit = delivery_limit
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def start(self, connection: AbstractRobustConnection, *, wait: float) -> None:
        """Start consuming; if the connection drops meanwhile, wait for it and start again.

        A broker restarting while a process starts (compose, a chaos test) used to kill the
        process between its connect and its first consume. After ``wait`` seconds (the broker
        settings' ``startup_wait_seconds``, as for the first connect) the error is
        raised. Anything but a lost connection (say, a queue declared with other arguments) is
        raised at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        pause = 0.5
        while True:
            channel = None
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self._prefetch)
                self._queue = await declare_queue(channel, self._spec, delivery_limit=self._delivery_limit)
                self._tag = await self._queue.consume(self._on_message, no_ack=False)
                return
            except (AMQPConnectionError, ConnectionError, ChannelInvalidStateError) as exc:
                if channel is not None:
                    # Never restored later by the robust connection: this attempt is abandoned.
                    with contextlib.suppress(Exception):
                        await channel.close()
                if loop.time() + pause > deadline:
                    raise
                log.warning(
                    "broker connection lost while starting to consume; starting again",
                    extra={"queue": self.queue_name, "error": repr(exc), "retry_in_s": pause},
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._handle(incoming)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, incoming: AbstractIncomingMessage) -> None:
        envelope = envelope_of(incoming)
        set_correlation_id(envelope.correlation_id)
        try:
            messages = messages_of(incoming)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.error("undecodable message dead-lettered", extra={"tag": envelope.tag, "error": str(exc)})
            await incoming.reject(requeue=False)
            return
        try:
            if len(messages) == 1:
                await self._handle_one(*messages[0])
            else:
                await self._handle_all(messages)
        except asyncio.CancelledError:
            await _settle_quietly(incoming.nack(requeue=True))
            raise
        except Exception as exc:
            context = {"tag": envelope.tag, "message_id": str(envelope.id), "queue": self.queue_name}
            dependency = unavailable_dependency(exc)
            carried = _carried_deliveries(incoming)
            if dependency is None and (isinstance(exc, _SomeFailed) or carried):
                failed = exc.failed if isinstance(exc, _SomeFailed) else messages
                first = exc.first if isinstance(exc, _SomeFailed) else exc
                log.error("handler failed", exc_info=first, extra={**context, "failed": len(failed)})
                await self._return_alone(
                    incoming, failed, first, deliveries=carried + _redeliveries(incoming) + 1
                )
                return
            if dependency is None:
                log.exception("handler failed; message returned to its queue", extra=context)
            else:
                # An outage is not the message's fault: without a pause, a few consumers spend its
                # whole delivery limit in milliseconds and dead-letter work that would succeed a
                # moment later (seen with a PostgreSQL restart). Waiting holds this consumer's
                # slot, which is fine: nothing it would take next can succeed either.
                pause = outage_pause(_redeliveries(incoming))
                log.warning(
                    "%s unavailable; message returned to its queue in %.0fs",
                    dependency,
                    pause,
                    extra={**context, "dependency": dependency},
                )
                # A stop cuts the pause short: shutdown never waits out a backoff.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stopping.wait()
            await _settle_quietly(incoming.nack(requeue=True))
            return
        await _settle_quietly(incoming.ack())

    async def _return_alone(
        self,
        incoming: AbstractIncomingMessage,
        failed: list[tuple[c.Message, c.Envelope]],
        failure: Exception,
        *,
        deliveries: int,
    ) -> None:
        """Put ``failed`` back on the queue in an AMQP message of their own, or in the dead-letter
        queue once they had ``delivery_limit`` deliveries; then ack ``incoming``.

        Published with a confirm before the ack: a crash in between redelivers ``incoming`` whole,
        which idempotent handlers tolerate. If the publish fails, ``incoming`` is returned whole.
        """
        dead = deliveries >= self._delivery_limit
        amqp = to_amqp(*failed[0]) if len(failed) == 1 else bundle_to_amqp(failed)
        amqp.headers = {
            **(amqp.headers or {}),
            DELIVERIES_HEADER: deliveries,
            FAILURE_HEADER: repr(failure)[:500],
        }
        target = self._spec.dead_letter_queue if dead else self.queue_name
        try:
            if self._queue is None:
                raise RuntimeError("not consuming")
            async with asyncio.timeout(10.0):
                await self._queue.channel.default_exchange.publish(amqp, routing_key=target)
        except Exception:
            log.warning(
                "could not return the failed messages alone; the whole message goes back", exc_info=True
            )
            await _settle_quietly(incoming.nack(requeue=True))
            return
        log.warning(
            "%d message(s) %s",
            len(failed),
            "dead-lettered after the delivery limit" if dead else "returned to the queue alone",
            extra={
                "queue": self.queue_name,
                "deliveries": deliveries,
                "message_ids": [str(e.id) for _, e in failed],
            },
        )
        await _settle_quietly(incoming.ack())

    async def consuming(self) -> bool:
        """Whether the broker is delivering to this consumer now (its channel is open and holds it)."""
        if self._queue is None or self._tag is None:
            return False
        channel = self._queue.channel
        if channel.is_closed:
            return False
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the inner call completes, and a sender being stopped would watch forever.
            async with asyncio.timeout(1.0):
                underlay = await channel.get_underlay_channel()
        except Exception:  # reconnecting, or the channel is gone
            return False
        # aiormq's channel keeps the consumers the broker confirmed (not part of its abstract type).
        return self._tag in getattr(underlay, "consumers", {})

    async def watch(self, *, stall_after: float, interval: float = 1.0) -> None:
        """Return never; raise ``ConsumerStalled`` once the consumer has been gone ``stall_after`` s.

        aio-pika's robust connection restores consumers after a reconnect, but under repeated
        forced closes (seen in the chaos test) a process could stay connected-looking and idle
        for good. Crash-only: the process stops cleanly and its supervisor (compose
        ``restart: unless-stopped``, Kubernetes) starts a fresh one, which is known to work.
        """
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        while True:
            await asyncio.sleep(interval)
            if await self.consuming():
                last_seen = loop.time()
            elif loop.time() - last_seen > stall_after:
                raise ConsumerStalled(f"{self.queue_name}: not consuming for {stall_after:.0f} s")

    async def _handle_one(self, message: c.Message, envelope: c.Envelope) -> None:
        async with self._slots:
            set_correlation_id(envelope.correlation_id)
            with consumer_span(envelope.tag, envelope.traceparent):
                await self._handler(message, envelope)

    async def _handle_all(self, messages: list[tuple[c.Message, c.Envelope]]) -> None:
        """Handle a bundle's messages concurrently; raise (after all finished) if any failed.

        The first failure that names an outage is the one raised, so the bundle pauses for it and
        goes back whole. Otherwise, when some succeeded, ``_SomeFailed`` names the ones that failed.
        """
        results = await asyncio.gather(
            *(self._handle_one(message, envelope) for message, envelope in messages), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled
        failures = [result for result in results if isinstance(result, Exception)]
        if not failures:
            return
        outage = next((f for f in failures if unavailable_dependency(f) is not None), None)
        if outage is not None:
            raise outage
        failed = [item for item, result in zip(messages, results, strict=True) if result is not None]
        if len(failed) == len(messages):
            raise failures[0]
        raise _SomeFailed(failed, failures[0])

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop taking messages, let in-flight ones finish; unacked ones return to the queue."""
        self._stopping.set()
        if self._queue is not None and self._tag is not None:
            try:
                async with asyncio.timeout(5.0):  # a broker that does not answer must not hold shutdown
                    await self._queue.cancel(self._tag)
            except Exception:  # the channel may already be gone; redelivery covers it
                log.warning("could not cancel consumer", extra={"queue": self.queue_name})
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)


def outage_pause(redeliveries: int) -> float:
    """Seconds to wait before returning a message that met an outage: 1, 2, 4, … up to 30."""
    return float(min(OUTAGE_PAUSE_FIRST * 2**redeliveries, OUTAGE_PAUSE_MAX))


def _carried_deliveries(incoming: AbstractIncomingMessage) -> int:
    count = (incoming.headers or {}).get(DELIVERIES_HEADER, 0)
    return count if isinstance(count, int) else 0


def _redeliveries(incoming: AbstractIncomingMessage) -> int:
    count = (incoming.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


async def _settle_quietly(settle: Awaitable[None]) -> None:
    """Ack/nack on a channel that died is harmless: the broker redelivers the message anyway."""
    try:
        await settle
    except Exception:
        log.warning("could not settle message; the broker will redeliver it")

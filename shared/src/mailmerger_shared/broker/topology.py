"""The whole RabbitMQ topology, in one place.

Events go to a topic exchange (routing key = the event's tag), commands to a direct exchange.
Every consumer owns one durable quorum queue with an explicit delivery limit; a message that keeps
failing is dead-lettered to ``<queue>.dead-letter`` instead of looping forever.

Declaring is idempotent, so every process declares what it uses at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from mailmerger_shared import contracts as c

EVENTS_EXCHANGE = "mailmerger.events"
COMMANDS_EXCHANGE = "mailmerger.commands"
DEAD_LETTER_EXCHANGE = "mailmerger.dead-letter"


@dataclass(frozen=True)
class QueueSpec:
    """A consumer's queue and what is routed to it."""

    name: str
    exchange: str
    messages: tuple[type[c.Message], ...]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dead-letter"


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec("sender.send-email", COMMANDS_EXCHANGE, (c.SendEmail,)),
        QueueSpec(
            "queue.delivery-outcomes",
            EVENTS_EXCHANGE,
            (c.EmailSent, c.EmailFailed, c.EmailDeferred, c.EmailUnconfirmed, c.SenderThrottled),
        ),
        QueueSpec(
            "queue.account-events",
            EVENTS_EXCHANGE,
            (
                c.GmailConnected,
                c.GmailDisconnected,
                c.GmailReconnectRequired,
                c.UserDeleted,
                c.AttachmentDeleted,
            ),
        ),
        # What the sender's mailbox watcher found: replies, auto-replies, bounces, stored Message-IDs.
        QueueSpec("queue.mailbox-events", EVENTS_EXCHANGE, (c.ResponseReceived, c.MessageIdRead)),
        QueueSpec("templates.user-deleted", EVENTS_EXCHANGE, (c.UserDeleted,)),
        QueueSpec("storage.user-deleted", EVENTS_EXCHANGE, (c.UserDeleted,)),
    )
}


def exchange_for(message: c.Message) -> str:
    return COMMANDS_EXCHANGE if isinstance(message, c.Command) else EVENTS_EXCHANGE


async def declare_exchanges(channel: AbstractChannel) -> dict[str, AbstractExchange]:
    events = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    commands = await channel.declare_exchange(COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    return {EVENTS_EXCHANGE: events, COMMANDS_EXCHANGE: commands, DEAD_LETTER_EXCHANGE: dead}


async def declare_queue(
    channel: AbstractChannel, spec: QueueSpec, *, delivery_limit: int
) -> aio_pika.abc.AbstractQueue:
    """Declare ``spec``'s queue, its dead-letter queue and their bindings.

    ``delivery_limit`` counts deliveries in all: a message delivered that many times without an
    ack is dead-lettered. RabbitMQ's ``x-delivery-limit`` counts *re*-deliveries, hence the -1.
    """
    exchanges = await declare_exchanges(channel)
    dead = await channel.declare_queue(
        spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(exchanges[DEAD_LETTER_EXCHANGE], routing_key=spec.name)
    queue = await channel.declare_queue(
        spec.name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": max(delivery_limit - 1, 0),
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": spec.name,
        },
    )
    for message_type in spec.messages:
        await queue.bind(exchanges[spec.exchange], routing_key=message_type.TAG)
    return queue


async def declare_queues_of(
    channel: AbstractChannel, published: tuple[type[c.Message], ...], *, delivery_limit: int
) -> None:
    """Declare every queue that ``published`` messages are routed to.

    A publisher declares its consumers' queues (idempotent), so that what it publishes before the
    consumer's service first started (a rolling upgrade that brings the publisher first) is kept
    rather than refused as unroutable, which would stall its outbox relay.
    """
    for spec in QUEUES.values():
        if any(message_type in spec.messages for message_type in published):
            await declare_queue(channel, spec, delivery_limit=delivery_limit)

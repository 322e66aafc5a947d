"""Publishing with publisher confirms and mandatory routing.

``publish`` returns only once the broker has confirmed the message; a message no queue is bound
for raises ``UnroutableMessage`` rather than vanishing.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq.exceptions import DeliveryError, PublishError

from mailmerger_shared import contracts as c
from mailmerger_shared.broker.topology import declare_exchanges, exchange_for
from mailmerger_shared.context import current_correlation_id
from mailmerger_shared.tracing import current_traceparent


class UnroutableMessage(Exception):
    """The broker returned the message: nothing is bound to receive it."""


class PublishFailed(Exception):
    """The broker did not confirm the message (nack or timeout); it may be published again."""


def to_amqp(message: c.Message, envelope: c.Envelope) -> aio_pika.Message:
    headers: dict[str, Any] = {}
    if envelope.traceparent:
        headers["traceparent"] = envelope.traceparent
    return aio_pika.Message(
        body=c.encode(message),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        type=envelope.tag,
        timestamp=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        headers=headers,
    )


class Publisher:
    """Publishes contracts to their exchange, routing key = tag, envelope in the properties."""

    def __init__(self, channel: AbstractChannel, exchanges: dict[str, AbstractExchange], timeout: float):
        self._channel = channel
        self._exchanges = exchanges
        self._timeout = timeout

    @classmethod
    async def open(cls, connection: AbstractRobustConnection, *, timeout: float = 10.0) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, await declare_exchanges(channel), timeout)

    async def publish(self, message: c.Message, envelope: c.Envelope | None = None) -> c.Envelope:
        """Publish and wait for the broker's confirm. Returns the envelope that was sent."""
        if envelope is None:
            envelope = c.Envelope.new(
                message.TAG, correlation_id=current_correlation_id(), traceparent=current_traceparent()
            )
        exchange = self._exchanges[exchange_for(message)]
        try:
            await exchange.publish(
                to_amqp(message, envelope), routing_key=envelope.tag, mandatory=True, timeout=self._timeout
            )
        except PublishError as exc:  # basic.return: mandatory routing found no queue
            raise UnroutableMessage(f"no queue is bound for {envelope.tag!r}") from exc
        except DeliveryError as exc:  # basic.nack
            raise PublishFailed(f"broker did not confirm {envelope.tag!r}: {exc}") from exc
        except TimeoutError as exc:
            raise PublishFailed(f"no confirm for {envelope.tag!r} within {self._timeout}s") from exc
        return envelope

    async def close(self) -> None:
        await self._channel.close()

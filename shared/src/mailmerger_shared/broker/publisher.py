"""Publishing with publisher confirms and mandatory routing.

``publish`` returns only once the broker has confirmed the message; a message no queue is bound
for raises ``UnroutableMessage`` rather than vanishing. ``publish_many`` sends many messages in
bundles (see ``bundle``) and says, per message, whether it was confirmed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq.exceptions import DeliveryError, PublishError

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import bundle
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


def bundle_to_amqp(items: Sequence[tuple[c.Message, c.Envelope]]) -> aio_pika.Message:
    """One AMQP message for ``items`` (one tag); each message's envelope travels in the body."""
    return aio_pika.Message(
        body=bundle.encode(items),
        content_type=bundle.CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(uuid.uuid4()),
        type=items[0][1].tag,
        timestamp=datetime.now(UTC),
        headers={"x-bundle-size": len(items)},
    )


class Publisher:
    """Publishes contracts to their exchange, routing key = tag, envelope in the properties."""

    def __init__(
        self,
        channel: AbstractChannel,
        exchanges: dict[str, AbstractExchange],
        timeout: float,
        *,
        bundle_size: int = 100,
    ):
        self._channel = channel
        self._exchanges = exchanges
        self._timeout = timeout
        self._bundle_size = max(bundle_size, 1)

    @classmethod
    async def open(
        cls, connection: AbstractRobustConnection, *, timeout: float = 10.0, bundle_size: int = 100
    ) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, await declare_exchanges(channel), timeout, bundle_size=bundle_size)

    async def publish(self, message: c.Message, envelope: c.Envelope | None = None) -> c.Envelope:
        """Publish and wait for the broker's confirm. Returns the envelope that was sent."""
        if envelope is None:
            envelope = c.Envelope.new(
                message.TAG, correlation_id=current_correlation_id(), traceparent=current_traceparent()
            )
        await self._confirmed(
            self._exchanges[exchange_for(message)], to_amqp(message, envelope), envelope.tag
        )
        return envelope

    async def publish_many(self, items: Sequence[tuple[c.Message, c.Envelope]]) -> list[Exception | None]:
        """Publish ``items`` in bundles of one tag, all at once; per item, None once confirmed,
        else why not (a bundle fails as a whole, so publishing its items again is safe)."""
        by_tag: dict[str, list[int]] = {}
        for index, (_, envelope) in enumerate(items):
            by_tag.setdefault(envelope.tag, []).append(index)
        chunks = [
            indexes[start : start + self._bundle_size]
            for indexes in by_tag.values()
            for start in range(0, len(indexes), self._bundle_size)
        ]
        outcomes = await asyncio.gather(
            *(self._publish_chunk([items[i] for i in chunk]) for chunk in chunks), return_exceptions=True
        )
        results: list[Exception | None] = [None] * len(items)
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancelled
            for i in chunk:
                results[i] = outcome
        return results

    async def _publish_chunk(self, items: list[tuple[c.Message, c.Envelope]]) -> None:
        message, envelope = items[0]
        amqp = to_amqp(message, envelope) if len(items) == 1 else bundle_to_amqp(items)
        await self._confirmed(self._exchanges[exchange_for(message)], amqp, envelope.tag)

    async def _confirmed(self, exchange: AbstractExchange, amqp: aio_pika.Message, tag: str) -> None:
        try:
            await exchange.publish(amqp, routing_key=tag, mandatory=True, timeout=self._timeout)
        except PublishError as exc:  # basic.return: mandatory routing found no queue
            raise UnroutableMessage(f"no queue is bound for {tag!r}") from exc
        except DeliveryError as exc:  # basic.nack
            raise PublishFailed(f"broker did not confirm {tag!r}: {exc}") from exc
        except TimeoutError as exc:
            raise PublishFailed(f"no confirm for {tag!r} within {self._timeout}s") from exc

    async def close(self) -> None:
        await self._channel.close()

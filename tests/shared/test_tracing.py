"""OpenTelemetry traces cross the broker: the consumer's span continues the publisher's trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aio_pika.abc import AbstractRobustConnection
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mailmerger_shared import contracts as c
from mailmerger_shared import tracing
from mailmerger_shared.broker import Consumer, Publisher
from mailmerger_shared.settings import BrokerSettings
from tests.support import connection_with_a_fresh_queue, eventually

QUEUE = "templates.user-deleted"
DELIVERY_LIMIT = BrokerSettings().delivery_limit


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, its spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(tracing.TracingSettings(enabled=True), service="test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await connection_with_a_fresh_queue(amqp_url, QUEUE, delivery_limit=DELIVERY_LIMIT)
    yield conn
    await conn.close()


async def test_the_consumer_span_of_a_message_is_a_child_of_the_span_it_was_published_in(
    connection: AbstractRobustConnection, spans: InMemorySpanExporter
) -> None:
    """Published inside a span, a message is handled in a consumer span of the same trace under it."""
    handled: list[int] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        assert isinstance(message, c.UserDeleted)
        handled.append(message.user_id)

    consumer = Consumer(QUEUE, handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    # The publishing side has a provider of its own, as another process would.
    upstream = TracerProvider()
    upstream.add_span_processor(SimpleSpanProcessor(spans))

    def named(name: str) -> list[ReadableSpan]:
        return [span for span in spans.get_finished_spans() if span.name == name]

    try:
        with upstream.get_tracer("test").start_as_current_span("publish", kind=SpanKind.PRODUCER):
            await publisher.publish(c.UserDeleted(user_id=7))
        [consumed] = await eventually(lambda: named("consume user_deleted.v1"))
    finally:
        await consumer.stop()
    [published] = named("publish")
    assert handled == [7]
    assert published.context is not None
    assert consumed.context is not None
    assert consumed.kind is SpanKind.CONSUMER
    assert consumed.context.trace_id == published.context.trace_id
    assert consumed.parent is not None
    assert consumed.parent.span_id == published.context.span_id
    assert consumed.parent.is_remote

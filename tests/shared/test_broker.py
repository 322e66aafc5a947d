"""The broker kit against a real RabbitMQ: confirms, mandatory routing, dead-lettering, recovery."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import httpx
import msgspec
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPConnectionError
from asgi_lifespan import LifespanManager
from litestar import Litestar

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import QUEUES, Consumer, ConsumerStalled, Publisher, UnroutableMessage, bundle
from mailmerger_shared.context import current_correlation_id
from mailmerger_shared.runtime import connect_broker, consumer_lifespan, infrastructure_lifespan
from mailmerger_shared.settings import BrokerSettings
from mailmerger_shared.web.health import health_routes
from tests.support import empty_queue, eventually

# The same limit the apps declare (queue arguments must match across declarers).
DELIVERY_LIMIT = BrokerSettings().delivery_limit


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    conn = await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": name})
    yield conn
    await conn.close()


async def test_publish_waits_for_the_broker_confirm(connection: AbstractRobustConnection) -> None:
    """A published message is in its queue once publish returns."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)
    publisher = await Publisher.open(connection)
    envelope = await publisher.publish(c.UserDeleted(user_id=1))
    channel = await connection.channel()
    queue = await channel.get_queue("storage.user-deleted")
    message = await queue.get(timeout=5)
    assert message.message_id == str(envelope.id)
    assert message.type == "user_deleted.v1"
    assert c.decode(message.type, message.body) == c.UserDeleted(user_id=1)
    await message.ack()


async def test_unroutable_publish_raises(connection: AbstractRobustConnection) -> None:
    """A message no queue is bound for raises instead of vanishing."""
    channel = await connection.channel()
    for spec in QUEUES.values():
        if c.AttachmentDeleted in spec.messages:
            await channel.queue_delete(spec.name)
    publisher = await Publisher.open(connection)
    with pytest.raises(UnroutableMessage, match=r"attachment_deleted\.v1"):
        await publisher.publish(c.AttachmentDeleted(user_id=1, attachment_id=2))


async def test_envelope_travels_in_message_properties(connection: AbstractRobustConnection) -> None:
    """Correlation id and traceparent reach the consumer with the payload."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    received: list[c.Envelope] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        received.append(envelope)

    consumer = Consumer("templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    sent = c.Envelope.new(
        "user_deleted.v1", correlation_id="req-42", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    await publisher.publish(c.UserDeleted(user_id=9), sent)
    await eventually(lambda: received)
    await consumer.stop()
    assert received[0].id == sent.id
    assert received[0].correlation_id == "req-42"
    assert received[0].traceparent == sent.traceparent


async def test_failing_message_is_dead_lettered_after_exactly_the_delivery_limit(
    connection: AbstractRobustConnection,
) -> None:
    """A poison message is tried DELIVERY_LIMIT times, then dead-lettered, while others keep flowing."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    attempts: Counter[int] = Counter()
    handled: set[int] = set()

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        assert isinstance(message, c.UserDeleted)
        attempts[message.user_id] += 1
        if message.user_id == 666:
            raise RuntimeError("poison")
        handled.add(message.user_id)

    consumer = Consumer("templates.user-deleted", handler, prefetch=8, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    await publisher.publish(c.UserDeleted(user_id=666))
    for user_id in range(1, 21):
        await publisher.publish(c.UserDeleted(user_id=user_id))

    channel = await connection.channel()
    dead = await channel.get_queue(QUEUES["templates.user-deleted"].dead_letter_queue)

    async def dead_lettered() -> bool:
        return (await dead.declare()).message_count == 1

    await eventually(dead_lettered)
    await eventually(lambda: len(handled) == 20)
    await consumer.stop()
    assert attempts[666] == DELIVERY_LIMIT
    assert all(attempts[user_id] == 1 for user_id in range(1, 21))


async def test_undecodable_message_is_dead_lettered_at_once(connection: AbstractRobustConnection) -> None:
    """A body that does not match its tag is not retried: it goes straight to the dead-letter queue."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)
    calls: list[c.Message] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        calls.append(message)

    consumer = Consumer("storage.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    channel = await connection.channel()
    exchange = await channel.get_exchange("mailmerger.events")
    await exchange.publish(
        aio_pika.Message(
            b'{"user_id": "not a number"}', type="user_deleted.v1", message_id=str(uuid.uuid4())
        ),
        routing_key="user_deleted.v1",
    )
    dead = await channel.get_queue(QUEUES["storage.user-deleted"].dead_letter_queue)

    async def dead_lettered() -> bool:
        return (await dead.declare()).message_count == 1

    await eventually(dead_lettered)
    await consumer.stop()
    assert calls == []


# --- bundles ------------------------------------------------------------------------------------


async def _depth(connection: AbstractRobustConnection, name: str) -> int:
    channel = await connection.channel()
    try:
        return (await channel.declare_queue(name, passive=True)).declaration_result.message_count or 0
    finally:
        await channel.close()


async def test_publish_many_bundles_messages_and_each_reaches_the_handler_with_its_envelope(
    connection: AbstractRobustConnection,
) -> None:
    """Seven messages in bundles of three are three AMQP messages, and seven handler calls."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    publisher = await Publisher.open(connection, bundle_size=3)
    items: list[tuple[c.Message, c.Envelope]] = [
        (c.UserDeleted(user_id=n), c.Envelope.new("user_deleted.v1", correlation_id=f"req-{n}"))
        for n in range(7)
    ]
    assert await publisher.publish_many(items) == [None] * 7
    assert await _depth(connection, "templates.user-deleted") == 3

    received: dict[int, c.Envelope] = {}
    correlation: dict[int, str | None] = {}

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        assert isinstance(message, c.UserDeleted)
        received[message.user_id] = envelope
        correlation[message.user_id] = current_correlation_id()  # each message runs in its own

    consumer = Consumer("templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    await eventually(lambda: len(received) == 7)
    await consumer.stop()
    assert {n: envelope.id for n, envelope in received.items()} == {n: e.id for n, (_, e) in enumerate(items)}
    assert correlation == {n: f"req-{n}" for n in range(7)}


async def test_a_failing_member_comes_back_alone(connection: AbstractRobustConnection) -> None:
    """One member fails once: it alone is returned to the queue; the others are handled once."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    attempts: Counter[int] = Counter()

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        assert isinstance(message, c.UserDeleted)
        attempts[message.user_id] += 1
        if message.user_id == 2 and attempts[2] == 1:
            raise RuntimeError("fails once")

    consumer = Consumer("templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    await publisher.publish_many(
        [(c.UserDeleted(user_id=n), c.Envelope.new("user_deleted.v1")) for n in range(3)]
    )
    await eventually(lambda: attempts == Counter({0: 1, 1: 1, 2: 2}))
    await asyncio.sleep(0.3)  # time for a redelivery, were one coming: what's tested is that none does
    await consumer.stop()
    assert attempts == Counter({0: 1, 1: 1, 2: 2})
    assert await _depth(connection, QUEUES["templates.user-deleted"].dead_letter_queue) == 0


async def test_a_poison_member_is_dead_lettered_alone_after_exactly_the_delivery_limit(
    connection: AbstractRobustConnection,
) -> None:
    """The bundle's good messages are handled once; the poison one DELIVERY_LIMIT times, then it
    alone (its own envelope, the failure named) is in the dead-letter queue."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    attempts: Counter[int] = Counter()

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        assert isinstance(message, c.UserDeleted)
        attempts[message.user_id] += 1
        if message.user_id == 666:
            raise RuntimeError("poison")

    consumer = Consumer("templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    items: list[tuple[c.Message, c.Envelope]] = [
        (c.UserDeleted(user_id=n), c.Envelope.new("user_deleted.v1")) for n in (1, 666, 2)
    ]
    await publisher.publish_many(items)
    dead_letters = QUEUES["templates.user-deleted"].dead_letter_queue
    await eventually(lambda: attempts[666] == DELIVERY_LIMIT)
    await eventually(lambda: _depth(connection, dead_letters))
    await consumer.stop()

    assert attempts == Counter({1: 1, 2: 1, 666: DELIVERY_LIMIT})
    channel = await connection.channel()
    dead = await (await channel.get_queue(dead_letters)).get(fail=False)
    assert dead is not None
    assert dead.message_id == str(items[1][1].id)
    assert c.decode(dead.type or "", dead.body) == c.UserDeleted(user_id=666)
    assert dead.headers["x-mm-deliveries"] == DELIVERY_LIMIT
    assert "poison" in str(dead.headers["x-mm-failure"])
    await channel.close()


async def test_a_bundle_is_handled_at_most_concurrency_at_a_time(
    connection: AbstractRobustConnection,
) -> None:
    """prefetch counts AMQP messages; concurrency bounds the messages handled at once."""
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    running = 0
    peak = 0
    done: list[int] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        nonlocal running, peak
        assert isinstance(message, c.UserDeleted)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)  # the handler's work: long enough for handlers to overlap
        running -= 1
        done.append(message.user_id)

    consumer = Consumer(
        "templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT, concurrency=2
    )
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    await publisher.publish_many(
        [(c.UserDeleted(user_id=n), c.Envelope.new("user_deleted.v1")) for n in range(8)]
    )
    await eventually(lambda: len(done) == 8)
    await consumer.stop()
    assert peak == 2


async def test_publish_many_says_per_message_which_were_not_routed(
    connection: AbstractRobustConnection,
) -> None:
    """A bundle fails as a whole; messages of other tags are confirmed regardless."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)
    channel = await connection.channel()
    for spec in QUEUES.values():
        if c.AttachmentDeleted in spec.messages:
            await channel.queue_delete(spec.name)
    publisher = await Publisher.open(connection)
    results = await publisher.publish_many(
        [
            (c.UserDeleted(user_id=1), c.Envelope.new("user_deleted.v1")),
            (c.AttachmentDeleted(user_id=1, attachment_id=2), c.Envelope.new("attachment_deleted.v1")),
            (c.UserDeleted(user_id=2), c.Envelope.new("user_deleted.v1")),
        ]
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], UnroutableMessage)


async def test_an_undecodable_bundle_is_dead_lettered_at_once(connection: AbstractRobustConnection) -> None:
    """A bundle with one malformed member is refused whole, never half handled."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)
    calls: list[c.Message] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        calls.append(message)

    consumer = Consumer("storage.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    good = c.Envelope.new("user_deleted.v1")
    body = msgspec.json.encode(
        [[good, c.UserDeleted(user_id=1)], [c.Envelope.new("user_deleted.v1"), {"user_id": "not a number"}]]
    )
    channel = await connection.channel()
    exchange = await channel.get_exchange("mailmerger.events")
    await exchange.publish(
        aio_pika.Message(body, type="user_deleted.v1", content_type=bundle.CONTENT_TYPE),
        routing_key="user_deleted.v1",
    )

    async def dead_lettered() -> bool:
        return await _depth(connection, QUEUES["storage.user-deleted"].dead_letter_queue) == 1

    await eventually(dead_lettered)
    await consumer.stop()
    assert calls == []


async def test_a_connection_lost_while_starting_to_consume_is_waited_out(
    connection: AbstractRobustConnection,
) -> None:
    """A drop between a process's connect and its first consume does not kill the process."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)
    received: list[c.Message] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        received.append(message)

    class DropsOnce:
        """The first channel fails as a connection the broker just closed; then the real one."""

        attempts = 0

        async def channel(self) -> aio_pika.abc.AbstractChannel:
            self.attempts += 1
            if self.attempts == 1:
                raise AMQPConnectionError("CONNECTION_FORCED - broker forced connection closure")
            return await connection.channel()

    flaky = DropsOnce()
    consumer = Consumer("storage.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(flaky, wait=10)  # type: ignore[arg-type]
    await (await Publisher.open(connection)).publish(c.UserDeleted(user_id=5))
    await eventually(lambda: received == [c.UserDeleted(user_id=5)])
    await consumer.stop()
    assert flaky.attempts == 2


async def test_a_consumer_gone_too_long_stalls_so_the_process_restarts(
    connection: AbstractRobustConnection,
) -> None:
    """watch() is quiet while the broker delivers to the consumer and raises once it has not."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        return None

    consumer = Consumer("storage.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    assert await consumer.consuming()
    with pytest.raises(TimeoutError):  # healthy: still watching when the timeout ends it
        await asyncio.wait_for(consumer.watch(stall_after=0.5, interval=0.1), timeout=1.0)
    channel = await connection.channel()
    await channel.queue_delete("storage.user-deleted")  # the broker cancels the consumer
    with pytest.raises(ConsumerStalled, match=r"storage\.user-deleted"):
        await asyncio.wait_for(consumer.watch(stall_after=0.5, interval=0.1), timeout=10)
    await consumer.stop()
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)


def _close_broker_side(connection_name: str) -> None:
    """Drop one connection from the broker's side, as a network failure or broker restart would."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if connection_name in line]
    assert pids, f"connection {connection_name} not found"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test drop"], check=True, timeout=30)


async def test_consumer_resumes_after_its_connection_is_dropped(amqp_url: str) -> None:
    """After the broker drops the connection, the robust connection reconnects and consuming goes on."""
    name = f"drop-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": name})
    try:
        await empty_queue(connection, "queue.account-events", delivery_limit=DELIVERY_LIMIT)
        seen: set[int] = set()

        async def handler(message: c.Message, envelope: c.Envelope) -> None:
            assert isinstance(message, c.UserDeleted)
            seen.add(message.user_id)

        consumer = Consumer("queue.account-events", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
        await consumer.start(connection, wait=10)
        publisher = await Publisher.open(connection)
        await publisher.publish(c.UserDeleted(user_id=1))
        await eventually(lambda: 1 in seen)

        await asyncio.to_thread(_close_broker_side, name)
        await eventually(lambda: not connection.is_closed and connection.connected.is_set(), timeout=20)

        async def republish() -> bool:
            try:
                await publisher.publish(c.UserDeleted(user_id=2))
            except Exception:
                return False
            return True

        await eventually(republish, timeout=20, interval=0.5)
        await eventually(lambda: 2 in seen, timeout=20)
        await consumer.stop()
    finally:
        await connection.close()


def test_outage_pause_grows_and_is_capped() -> None:
    """A message that met an outage waits 1, 2, 4… seconds before it returns, never over 30."""
    from mailmerger_shared.broker.consumer import outage_pause

    assert [outage_pause(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


async def test_outage_does_not_spend_the_delivery_limit(
    connection: AbstractRobustConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler failing only because a dependency is down gets paused retries and then succeeds."""
    from mailmerger_shared.broker import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "OUTAGE_PAUSE_FIRST", 0.05)
    await empty_queue(connection, "templates.user-deleted", delivery_limit=DELIVERY_LIMIT)
    attempts: list[int] = []

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        attempts.append(1)
        if len(attempts) < DELIVERY_LIMIT:
            raise ConnectionRefusedError("database is restarting")

    consumer = Consumer("templates.user-deleted", handler, prefetch=4, delivery_limit=DELIVERY_LIMIT)
    await consumer.start(connection, wait=10)
    publisher = await Publisher.open(connection)
    await publisher.publish(c.UserDeleted(user_id=77))
    await eventually(lambda: len(attempts) == DELIVERY_LIMIT, timeout=20)
    await consumer.stop()
    channel = await connection.channel()
    dead = await channel.get_queue(QUEUES["templates.user-deleted"].dead_letter_queue)
    assert (await dead.declare()).message_count == 0


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_a_process_started_before_the_broker_waits_for_it(amqp_url: str) -> None:
    """The first connect retries until the broker answers (here: a proxy to it, up 1.5 s late)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    upstream = urlsplit(amqp_url)

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(upstream.hostname, upstream.port or 5672)
        await asyncio.gather(_forward(client_reader, broker_writer), _forward(broker_reader, client_writer))

    async def broker_comes_up_late() -> asyncio.Server:
        await asyncio.sleep(1.5)  # what's tested: a broker that is not up yet, for a while
        return await asyncio.start_server(relay, "127.0.0.1", port)

    late_url = upstream._replace(netloc=f"{upstream.netloc.rsplit('@', 1)[0]}@127.0.0.1:{port}").geturl()
    started = asyncio.get_running_loop().time()
    server_task = asyncio.create_task(broker_comes_up_late())
    connection = await connect_broker(BrokerSettings(url=late_url, startup_wait_seconds=30), "late")
    try:
        assert not connection.is_closed
        assert asyncio.get_running_loop().time() - started >= 1.5
    finally:
        await connection.close()
        server = await server_task
        server.close()


async def test_a_broker_that_never_comes_up_is_an_error_after_the_wait() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings = BrokerSettings(url=f"amqp://guest:guest@127.0.0.1:{port}/", startup_wait_seconds=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionError):
        await connect_broker(settings, "never")
    assert 0.25 <= asyncio.get_running_loop().time() - started < 5


async def test_ready_names_a_consumer_the_broker_no_longer_delivers_to(
    amqp_url: str, connection: AbstractRobustConnection
) -> None:
    """An app's /ready checks each of its consumers, not only the connection: a consumer the broker
    cancelled (its queue deleted) makes /ready 503 naming it, while the connection stays open."""
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)

    async def handler(message: c.Message, envelope: c.Envelope) -> None:
        return None

    broker = BrokerSettings(url=amqp_url)
    app = Litestar(
        route_handlers=health_routes(),
        lifespan=[
            infrastructure_lifespan("ready-test", broker=broker),
            consumer_lifespan("storage.user-deleted", lambda infra: handler, broker),
        ],
    )
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
    ):
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"broker": "ok", "consumer storage.user-deleted": "ok"}
        channel = await connection.channel()
        await channel.queue_delete("storage.user-deleted")  # the broker cancels the consumer
        await channel.close()

        async def unready() -> httpx.Response | None:
            answer = await client.get("/ready")
            return answer if answer.status_code == 503 else None

        checks = (await eventually(unready)).json()["checks"]
        assert checks["broker"] == "ok"
        assert checks["consumer storage.user-deleted"].startswith("unavailable: ConnectionError")
    await empty_queue(connection, "storage.user-deleted", delivery_limit=DELIVERY_LIMIT)

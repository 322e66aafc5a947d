"""Webhooks: delivery throughput of the courier to a local receiver.

``EVENTS`` pending deliveries (as the outcome path stages them) for endpoints of one receiver on
127.0.0.1, delivered by the courier (``webhooks.courier``: claim with a lease, sign with Standard
Webhooks, POST to the checked address, record the outcome in batches) against real PostgreSQL.
The receiver runs in a process of its own and answers 204 at once (a raw asyncio server, so the
receiver's cost is not what is measured). Rounds: one courier process, then ``REPLICAS`` courier
processes side by side (what several dispatcher replicas give).

Medians of several rounds from one run; writes bench/results/webhooks.json.

Run: uv run python bench/bench_webhooks.py
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import platform
import socket
import statistics
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from mailmerger.migrate import migrate
from mailmerger_queue.settings import ComplianceSettings, WebhookSettings
from mailmerger_queue.webhooks.courier import run_courier
from mailmerger_queue.webhooks.sealing import SecretBox
from mailmerger_shared.db import create_engine, drop_database, ensure_database
from mailmerger_shared.settings import DatabaseSettings

RESULTS = Path(__file__).parent / "results" / "webhooks.json"
RUN = uuid.uuid4().hex[:8]
DB_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/mm_bench_webhooks_{RUN}"
EVENTS = 5000
ENDPOINTS = 4  # one user each, all at the same receiver
ROUNDS = 3
REPLICAS = 2
GOAL = 500.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Answer204(asyncio.Protocol):
    """HTTP/1.1 keep-alive: one 204 for every request head seen (bodies are small and skipped)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")  # type: ignore[attr-defined]


def receive(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer204, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def settings() -> tuple[WebhookSettings, ComplianceSettings]:
    return WebhookSettings(allowed_hosts=["127.0.0.1"]), ComplianceSettings()


async def add_endpoints(port: int) -> None:
    box = SecretBox(settings()[1].key())
    engine = create_engine(DatabaseSettings(url=DB_URL), application_name="bench-webhooks")
    try:
        async with engine.begin() as connection:
            for user in range(1, ENDPOINTS + 1):
                await connection.execute(
                    text(
                        "INSERT INTO queue.webhook_endpoints (user_id, url, events, secret_sealed, "
                        "enabled, created_at, updated_at) "
                        "VALUES (:user, :url, '{message.sent}', :secret, true, now(), now())"
                    ),
                    {
                        "user": user,
                        "url": f"http://127.0.0.1:{port}/events",
                        "secret": box.seal(b"k" * 32, user_id=user),
                    },
                )
    finally:
        await engine.dispose()


async def stage(events: int) -> None:
    """``events`` pending message.sent deliveries, spread over the endpoints."""
    engine = create_engine(DatabaseSettings(url=DB_URL), application_name="bench-webhooks")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE queue.webhook_deliveries CASCADE"))
            await connection.execute(
                text(
                    "INSERT INTO queue.webhook_deliveries (endpoint_id, event_id, event_type, payload, "
                    "state, attempts, next_attempt_at, created_at) "
                    "SELECT e.id, 'msg_' || g || '_' || e.id, 'message.sent', "
                    "jsonb_build_object('type', 'message.sent', 'timestamp', now()::text, 'data', "
                    "  jsonb_build_object('message_id', g, 'recipient', 'r' || g || '@example.org')), "
                    "'pending', 0, now(), now() "
                    "FROM generate_series(1, :per_endpoint) g CROSS JOIN queue.webhook_endpoints e"
                ),
                {"per_endpoint": events // ENDPOINTS},
            )
            await connection.execute(text("ANALYZE queue.webhook_deliveries"))
    finally:
        await engine.dispose()


async def delivered() -> int:
    engine = create_engine(DatabaseSettings(url=DB_URL), application_name="bench-webhooks")
    try:
        async with engine.connect() as connection:
            return int(
                await connection.scalar(
                    text("SELECT count(*) FROM queue.webhook_deliveries WHERE state = 'delivered'")
                )
                or 0
            )
    finally:
        await engine.dispose()


def courier_process(stop_after: float) -> None:
    """One courier in a process of its own until ``stop_after`` seconds have passed."""

    async def run() -> None:
        webhooks, compliance = settings()
        engine = create_engine(DatabaseSettings(url=DB_URL), application_name="bench-courier")
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(stop_after, stop.set)
        try:
            await run_courier(sessions, webhooks, compliance, stop=stop)
        finally:
            await engine.dispose()

    asyncio.run(run())


async def one_round(couriers: int) -> float:
    """Events per second from the first claim to the last delivery."""
    await stage(EVENTS)
    processes = [multiprocessing.Process(target=courier_process, args=(120.0,)) for _ in range(couriers)]
    started = time.monotonic()
    for process in processes:
        process.start()
    try:
        while (done := await delivered()) < EVENTS:
            if time.monotonic() - started > 120:
                raise RuntimeError(f"only {done} of {EVENTS} delivered in 120 s")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.terminate()
            process.join(timeout=10)
    return EVENTS / elapsed


async def main() -> None:
    await ensure_database(DB_URL)
    port = free_port()
    receiver = multiprocessing.Process(target=receive, args=(port,), daemon=True)
    receiver.start()
    try:
        await migrate("queue", database=DatabaseSettings(url=DB_URL))
        await add_endpoints(port)
        single = [await one_round(1) for _ in range(ROUNDS)]
        several = [await one_round(REPLICAS) for _ in range(ROUNDS)]
    finally:
        receiver.terminate()
        await drop_database(DB_URL)
    one, many = statistics.median(single), statistics.median(several)
    RESULTS.write_text(
        json.dumps(
            {
                "area": "webhooks",
                "machine": {"python": platform.python_version()},
                "results": [
                    {
                        "name": "delivery throughput, one courier",
                        "value": round(one, 1),
                        "unit": "events/s",
                        "goal": f">= {GOAL:.0f}",
                        "notes": f"median of {ROUNDS} rounds of {EVENTS} events to a local receiver "
                        f"(rounds: {', '.join(f'{x:.0f}' for x in single)}); signing, lease, POST and "
                        "recorded outcome each",
                    },
                    {
                        "name": f"delivery throughput, {REPLICAS} couriers (dispatcher replicas)",
                        "value": round(many, 1),
                        "unit": "events/s",
                        "goal": f">= {GOAL:.0f}",
                        "notes": f"median of {ROUNDS} rounds "
                        f"(rounds: {', '.join(f'{x:.0f}' for x in several)}); {many / one:.2f}x one courier",
                    },
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    asyncio.run(main())

"""Queue service: campaign build rate, dispatch rate, and schedule lateness under load.

* **build**: a CSV of 10k and 100k rows streamed to ``PUT /v1/campaigns/{id}/recipients`` of the
  real app (real PostgreSQL); templates' ``render-batch`` is served at the transport by the real
  templates renderer, so rendering costs what it costs in production. Peak RSS of the process
  (client, app and renderer together) is sampled during the 100k build.
* **dispatch rate**: 20k due messages over 200 accounts with generous limits; dispatcher ticks
  back to back against the real RabbitMQ (publisher confirms) until all are published.
* **lateness**: 3,000 messages due over 15 s on 100 accounts while a backlog of 10k due messages
  keeps the dispatcher busy; the loop runs on the real clock, and lateness is the time a
  SendEmail reaches the sender's queue minus its ``send_at`` (negative would be early).

Medians of several rounds from one run; writes bench/results/queue.json.

Run: uv run python bench/bench_queue.py
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
import psutil
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import text

from mailmerger.migrate import migrate
from mailmerger_queue.app import create_app
from mailmerger_queue.dispatch.dispatcher import SystemClock
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import open_dispatcher
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import messages_of
from mailmerger_shared.db import drop_database, ensure_database, transaction
from mailmerger_shared.internal_api import RenderBatchRequest, RenderBatchResponse, RenderedRow
from mailmerger_shared.runtime import Infrastructure, open_infrastructure
from mailmerger_shared.settings import DatabaseSettings, load_service
from mailmerger_templates.rendering import Rendered, Renderer, RenderLimits, TemplateSource

RESULTS = Path(__file__).parent / "results" / "queue.json"
RUN = uuid.uuid4().hex[:8]
DB_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/mm_bench_queue_{RUN}"
VHOST = f"mm_bench_queue_{RUN}"
ROUNDS = 3
USER = 1
_FILLER = "<p>We help engineering teams ship reliable software with fewer late nights.</p>\n"
TEMPLATE = TemplateSource(
    subject="Quick question, {{ first_name }}",
    html=(
        "<html><body><p>Hi {{ first_name }},</p>\n"
        + _FILLER * 8
        + "<p>I noticed {{ company }} is hiring a {{ role }} in {{ city }}.</p>\n"
        + "{% if referrer %}<p>{{ referrer }} suggested I reach out.</p>{% endif %}\n"
        + "<p>Best regards,<br>Grace</p></body></html>\n"
    ),
)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Signer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()

    async def jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "bench", "alg": "EdDSA", "use": "sig"}]}

    def headers(self) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": "mailmerger-auth", "aud": "mailmerger", "sub": str(USER), "iat": now}
        claims |= {"exp": now + 3600, "jti": uuid.uuid4().hex, "typ": "access"}
        token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": "bench"})
        return {"Authorization": f"Bearer {token}"}


def render_transport() -> httpx.MockTransport:
    """templates' render-batch and version lookup, served by the real renderer.

    The per-row wall-clock budget is raised: in production the renderer runs in the templates
    process, and here a garbage collection of the whole bench process could trip it.
    """
    renderer = Renderer(RenderLimits(max_render_seconds=5.0))
    compiled = renderer.compile(TEMPLATE)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/render-batch"):
            body = msgspec.json.decode(request.content, type=RenderBatchRequest)
            results = [
                RenderedRow(ok=True, subject=r.subject, html=r.html, text=r.text)
                if isinstance(r, Rendered)
                else RenderedRow(ok=False, error="refused", detail=str(r.error))
                for r in renderer.render_batch(compiled, body.rows)
            ]
            return httpx.Response(200, content=msgspec.json.encode(RenderBatchResponse(results=results)))
        return httpx.Response(200, json={"template_id": 1, "version": 1, "subject": "s", "html": "h"})

    return httpx.MockTransport(handle)


async def csv_chunks(rows: int) -> AsyncIterator[bytes]:
    """The list, generated 1,000 rows at a time (the client never holds it whole)."""
    yield b"email,first_name,company,role,city,referrer\n"
    for start in range(0, rows, 1000):
        lines = [
            f"person{i}@example.com,Ada{i},Analytical Engines {i},backend engineer,London,"
            f"{'' if i % 3 == 0 else f'Charles {i}'}\n"
            for i in range(start, min(rows, start + 1000))
        ]
        yield "".join(lines).encode()


async def add_senders(infra: Infrastructure, count: int, *, first: int) -> list[int]:
    assert infra.sessions is not None
    async with transaction(infra.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO queue.senders (account_id, user_id, email, scopes, state, daily_limit, "
                "per_minute_limit, connected_at, state_changed_at) "
                "SELECT g, :user, 'bench' || g || '@company.example', '{}', 'connected', 1000000, 1000000, "
                "now(), now() FROM generate_series(CAST(:first AS bigint), :last) g ON CONFLICT DO NOTHING"
            ),
            {"user": USER, "first": first, "last": first + count - 1},
        )
    return list(range(first, first + count))


async def add_messages(
    infra: Infrastructure, accounts: list[int], count: int, start: datetime, spread: float
) -> None:
    """``count`` direct messages round-robin over ``accounts``, send_at spread over ``spread`` s."""
    assert infra.sessions is not None
    async with transaction(infra.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO queue.messages (user_id, account_id, state, send_at, attempt, rfc_message_id, "
                "to_addrs, cc_addrs, bcc_addrs, subject, html, attachment_ids, created_at, updated_at) "
                "SELECT :user, (CAST(:accounts AS bigint[]))[1 + g % :n], 'scheduled', "
                "CAST(:start AS timestamptz) + make_interval(secs => :spread * g / :count), 0, "
                "'<bench.' || gen_random_uuid() || '@bench>', ARRAY['to@example.com'], '{}', '{}', "
                "'Hello', '<p>Hello</p>', '{}', now(), now() FROM generate_series(0, :count - 1) g"
            ),
            {
                "user": USER,
                "accounts": accounts,
                "n": len(accounts),
                "start": start,
                "spread": spread,
                "count": count,
            },
        )


async def reset(infra: Infrastructure) -> None:
    assert infra.engine is not None
    assert infra.amqp is not None
    async with infra.engine.begin() as connection:
        await connection.execute(text("TRUNCATE queue.messages, queue.attempts, queue.transitions CASCADE"))
    channel = await infra.amqp.channel()
    await (await channel.get_queue("sender.send-email", ensure=False)).purge()
    await channel.close()


async def bench_build(client: httpx.AsyncClient, signer: Signer, rows: int) -> tuple[float, float]:
    """Seconds to build a list of ``rows`` and the peak RSS (MB) seen meanwhile."""
    body = {"name": "bench", "account_id": 1, "template_id": 1, "template_version": 1}
    campaign = (await client.post("/v1/campaigns", json=body, headers=signer.headers())).json()
    process = psutil.Process()
    peak = process.memory_info().rss
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    response = await client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        content=csv_chunks(rows),
        headers={**signer.headers(), "content-type": "text/csv"},
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    summary = response.json()
    if response.status_code != 200 or summary["valid"] != rows:
        raise SystemExit(f"build failed: {response.status_code} {response.text[:300]}")
    return elapsed, peak / 2**20


async def bench_dispatch(infra: Infrastructure, settings: QueueSettings) -> float:
    await reset(infra)
    accounts = await add_senders(infra, 200, first=1000)
    await add_messages(infra, accounts, 20_000, datetime.now(UTC) - timedelta(seconds=1), 0)
    dispatcher = await open_dispatcher(infra, settings, SystemClock())
    started = time.perf_counter()
    total = 0
    while total < 20_000:
        total += await dispatcher.dispatch_due_messages()
    return total / (time.perf_counter() - started)


async def bench_lateness(infra: Infrastructure, settings: QueueSettings) -> list[float]:
    await reset(infra)
    backlog_accounts = await add_senders(infra, 50, first=5000)
    timed_accounts = await add_senders(infra, 100, first=6000)
    await add_messages(infra, backlog_accounts, 10_000, datetime.now(UTC) - timedelta(seconds=1), 0)
    start = datetime.now(UTC) + timedelta(seconds=2)
    await add_messages(infra, timed_accounts, 3000, start, 15)
    arrivals: dict[int, float] = {}
    all_arrived = asyncio.Event()
    assert infra.amqp is not None
    channel = await infra.amqp.channel()
    await channel.set_qos(prefetch_count=1000)
    queue = await channel.get_queue("sender.send-email", ensure=False)

    async def on_message(incoming: Any) -> None:
        arrived = time.time()
        for command, _ in messages_of(incoming):  # bundles of SendEmail
            assert isinstance(command, c.SendEmail)
            arrivals[command.message_id] = arrived
        await incoming.ack()
        if len(arrivals) == 13_000:
            all_arrived.set()

    tag = await queue.consume(on_message)
    dispatcher = await open_dispatcher(infra, settings, SystemClock())
    loop = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(all_arrived.wait(), timeout=120)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    await queue.cancel(tag)
    await channel.close()
    assert infra.sessions is not None
    async with transaction(infra.sessions) as session:
        rows = await session.execute(
            text("SELECT id, send_at FROM queue.messages WHERE account_id = ANY(:accounts)"),
            {"accounts": timed_accounts},
        )
        return [arrivals[row.id] - row.send_at.timestamp() for row in rows if row.id in arrivals]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    await ensure_database(DB_URL)
    _rabbitmqctl("add_vhost", VHOST)
    _rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    try:
        await migrate("queue", database=DatabaseSettings(url=DB_URL))
        env = {
            "MM_DB_URL": DB_URL,
            "MM_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
            "MM_INTERNAL_QUEUE_TOKEN": "bench",
            "MM_LOG_JSON": "false",
            "MM_LOG_LEVEL": "WARNING",
            # The accounts' own limits (1,000,000/min) are within the quota: nothing but the
            # schedule paces them.
            "MM_DISPATCH_PER_MINUTE_LIMIT": "1000000",
        }
        settings = load_service(QueueSettings, env)
        results = await run(settings)
    finally:
        await drop_database(DB_URL)
        _rabbitmqctl("delete_vhost", VHOST)
    report = {"area": "queue", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


async def run(settings: QueueSettings) -> list[dict[str, Any]]:
    signer = Signer()
    app = create_app(settings, jwks=signer.jwks, internal_transport=render_transport())
    machine = f"Python {platform.python_version()} on {platform.machine()}, {psutil.cpu_count()} CPUs"
    async with (
        LifespanManager(app, startup_timeout=30),
        open_infrastructure("bench", database=settings.database, broker=settings.broker) as infra,
    ):
        await add_senders(infra, 1, first=1)
        await open_dispatcher(infra, settings, SystemClock())  # declares the sender's queue
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://queue"
        ) as client:
            builds: dict[int, list[float]] = {10_000: [], 100_000: []}
            peaks: list[float] = []
            for rows in builds:
                for _ in range(ROUNDS):
                    seconds, peak = await bench_build(client, signer, rows)
                    builds[rows].append(seconds)
                    if rows == 100_000:
                        peaks.append(peak)
        rates = [await bench_dispatch(infra, settings) for _ in range(ROUNDS)]
        lateness = [await bench_lateness(infra, settings) for _ in range(ROUNDS)]
    p50 = statistics.median(_percentile(r, 0.5) for r in lateness)
    p99 = statistics.median(_percentile(r, 0.99) for r in lateness)
    earliest = min(min(r) for r in lateness)
    build_results = [
        {
            "name": f"campaign build, {rows // 1000}k rows",
            "value": round(statistics.median(seconds), 2),
            "unit": "s",
            "goal": "<= 10 s for 100k rows" if rows == 100_000 else "none (scales linearly)",
            "notes": (
                f"CSV streamed over HTTP, checked, rendered by the real templates renderer in batches of "
                f"1,000, stored with COPY, duplicates marked; median of {ROUNDS}: "
                f"{', '.join(f'{s:.2f}' for s in seconds)} s; "
                f"{rows / statistics.median(seconds):,.0f} rows/s; {machine}"
            ),
        }
        for rows, seconds in builds.items()
    ]
    return [
        *build_results,
        {
            "name": "campaign build peak RSS, 100k rows",
            "value": round(statistics.median(peaks)),
            "unit": "MB",
            "goal": "<= 300 MB",
            "notes": (
                f"whole process (client, app, renderer); rounds: {', '.join(f'{p:.0f}' for p in peaks)} MB"
            ),
        },
        {
            "name": "dispatch rate",
            "value": round(statistics.median(rates)),
            "unit": "messages/s",
            "goal": "none (Gmail caps each account at 150/min; this is the headroom)",
            "notes": (
                f"20k due messages over 200 accounts, ticks back to back, SendEmail published with confirms "
                f"and marked dispatched; rounds: {', '.join(f'{r:.0f}' for r in rates)}"
            ),
        },
        {
            "name": "schedule lateness p50",
            "value": round(p50 * 1000),
            "unit": "ms",
            "goal": "never early",
            "notes": f"earliest of all rounds: {earliest * 1000:.0f} ms after send_at (negative = early)",
        },
        {
            "name": "schedule lateness min",
            "value": round(earliest * 1000),
            "unit": "ms",
            "goal": ">= 0 ms (never early)",
            "notes": "earliest arrival of all rounds relative to send_at (negative = early)",
        },
        {
            "name": "schedule lateness p99",
            "value": round(p99 * 1000),
            "unit": "ms",
            "goal": "<= 1000 ms",
            "notes": (
                "3,000 messages due over 15 s on 100 accounts with a backlog of 10k due messages on 50 "
                "others; time the SendEmail reached the sender's queue minus send_at; median of "
                f"{ROUNDS} rounds' p99"
            ),
        },
    ]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

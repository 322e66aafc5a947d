"""Benchmark: emails per second of one sender process against the Google emulator, and its CPU per email.

Starts the emulator under uvicorn (quotas off) and one sender worker (``run_sender``) in their own
processes, on a scratch database, RabbitMQ vhost and Redis prefix. Each round publishes SendEmail
commands with the shared Publisher (bundled, as the dispatcher does) and times them until every
EmailSent has come back through the events exchange (claim, token, MIME, Gmail call, ledger +
outbox, relay: the whole sender path).
Reported: the median of three rounds for a ~1 KB HTML message and for one with a 100 KB attachment,
and the sender process's CPU time per email (its share of the 2-core machine).

    uv run python bench/bench_sender.py [--messages 1500] [--rounds 3]
    uv run --with pyinstrument python bench/bench_sender.py --profile   # one round, profile in $TMPDIR
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import msgspec
import psutil

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import QUEUES, Publisher, messages_of
from mailmerger_shared.broker.topology import EVENTS_EXCHANGE, declare_queue
from mailmerger_shared.db import drop_database
from mailmerger_shared.internal_api import GmailAccessToken
from mailmerger_shared.settings import DatabaseSettings

RESULTS = Path(__file__).parent / "results" / "sender.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
ACCOUNTS = 8
ATTACHMENT = random.Random(1).randbytes(100_000)
ATTACHMENT_KEY = "bench/resume.pdf"

_EMULATOR = """
import sys, uvicorn
from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
uvicorn.run(create_app(load(GoogleEmulatorSettings)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", loop="uvloop", http="httptools")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def account_email(account_id: int) -> str:
    return f"bench{account_id}@gmail.local"


# --- the sender process ---------------------------------------------------------------------------


class _MemoryBlobs:
    async def read(self, key: str) -> bytes:
        return ATTACHMENT


def auth_transport(emulator_url: str) -> httpx.MockTransport:
    """auth's token route, answered with tokens the emulator minted (auth itself is not measured)."""
    emulator = httpx.AsyncClient(base_url=emulator_url)

    async def answer(request: httpx.Request) -> httpx.Response:
        account_id = int(request.url.path.split("/")[-2])
        minted = await emulator.post(
            "/_emulator/tokens", json={"email": account_email(account_id), "scopes": [SEND_SCOPE]}
        )
        body = minted.json()
        token = GmailAccessToken(
            account_id=account_id,
            user_id=account_id,
            email=account_email(account_id),
            display_name="Bench Sender",
            access_token=body["access_token"],
            expires_at=datetime.now(UTC) + timedelta(seconds=body["expires_in"]),
            scopes=[SEND_SCOPE],
        )
        return httpx.Response(200, content=msgspec.json.encode(token))

    return httpx.MockTransport(answer)


def run_worker(emulator_url: str, profile: bool) -> None:
    import uvloop

    from mailmerger_sender.settings import SenderSettings
    from mailmerger_sender.worker import run_sender
    from mailmerger_shared.settings import load_service

    settings = load_service(SenderSettings)

    async def main() -> None:
        task = asyncio.create_task(
            run_sender(settings, auth_transport=auth_transport(emulator_url), blobs=_MemoryBlobs())
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    if not profile:
        uvloop.run(main())
        return
    from pyinstrument import Profiler

    with Profiler(async_mode="disabled") as profiler:
        uvloop.run(main())
    profiler.write_html(str(Path(tempfile.gettempdir()) / "sender-profile.html"))
    print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)


# --- the driver ----------------------------------------------------------------------------------


def commands(count: int, *, attachment: bool) -> list[c.SendEmail]:
    ref = c.AttachmentRef(
        attachment_id=1,
        object_key=ATTACHMENT_KEY,
        sha256=hashlib.sha256(ATTACHMENT).hexdigest(),
        filename="resume.pdf",
        content_type="application/pdf",
        size=len(ATTACHMENT),
    )
    line = "<p>This is a personalised line of the campaign body, about one kilobyte in all.</p>"
    made = []
    for n in range(count):
        message_id = random.randrange(10**12)
        account_id = 1 + n % ACCOUNTS
        made.append(
            c.SendEmail(
                message_id=message_id,
                user_id=account_id,
                account_id=account_id,
                from_address=account_email(account_id),
                from_name="Bench Sender",
                to=[f"Recipient {n} <recipient{n}@example.com>"],
                subject="Quarterly update",
                html=f"<p>Hello recipient {n},</p>" + line * 12,
                attachments=[ref] if attachment else [],
                rfc_message_id=f"<bench-{uuid.uuid4().hex}@mailmerger.local>",
            )
        )
    return made


async def one_round(
    connection: aio_pika.abc.AbstractRobustConnection,
    batch: list[c.SendEmail],
    sender: psutil.Process,
) -> tuple[float, float]:
    """Emails per second and sender CPU microseconds per email, publish to last EmailSent."""
    wanted = {command.message_id for command in batch}
    done = asyncio.Event()
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    outcomes = await channel.declare_queue(exclusive=True)
    for tag in ("email_sent.v1", "email_failed.v1", "email_deferred.v1", "email_unconfirmed.v1"):
        await outcomes.bind(exchange, routing_key=tag)

    async def on_outcome(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        for event, _ in messages_of(message):
            if not isinstance(event, c.EmailSent):
                raise RuntimeError(f"not sent: {event}")
            wanted.discard(event.message_id)
        if not wanted:
            done.set()

    await outcomes.consume(on_outcome)
    publisher = await Publisher.open(connection)
    cpu_before = sender.cpu_times()
    started = time.monotonic()
    for first in range(0, len(batch), 500):
        # In bundles, as the dispatcher publishes them.
        await publisher.publish_many(
            [(command, c.Envelope.new(command.TAG)) for command in batch[first : first + 500]]
        )
    await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.monotonic() - started
    cpu_after = sender.cpu_times()
    await publisher.close()
    await channel.close()
    busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return len(batch) / elapsed, 1_000_000 * busy / len(batch)


async def measure(
    args: argparse.Namespace, connection_url: str, sender: psutil.Process
) -> list[dict[str, Any]]:
    connection = await aio_pika.connect_robust(connection_url)
    try:
        # Warm up: tokens, connection pools, the attachment cache.
        await one_round(connection, commands(200, attachment=True), sender)
        results = []
        for name, attachment in (("1kb", False), ("100kb_attachment", True)):
            rounds = [
                await one_round(connection, commands(args.messages, attachment=attachment), sender)
                for _ in range(args.rounds)
            ]
            rate = statistics.median(r[0] for r in rounds)
            cpu = statistics.median(r[1] for r in rounds)
            shape = (
                f"{args.messages} messages per round, median of {args.rounds}; one sender process "
                f"(prefetch {args.prefetch}), emulator quotas off, {os.cpu_count()} cores shared with "
                "the emulator, PostgreSQL, RabbitMQ and this driver"
            )
            results.append(
                {
                    "name": f"sender_emails_per_second_{name}",
                    "value": round(rate, 1),
                    "unit": "emails/s",
                    "goal": ">= 1,000 emails/s for the whole pipeline on 2 cores",
                    "notes": f"{shape}; publish to the last EmailSent, all rounds: "
                    + ", ".join(f"{r[0]:.0f}" for r in rounds),
                }
            )
            results.append(
                {
                    "name": f"sender_cpu_per_email_{name}",
                    "value": round(cpu),
                    "unit": "us CPU/email",
                    "goal": None,
                    "notes": f"{shape}; the sender process's user+system CPU time per delivered email",
                }
            )
        return results
    finally:
        await connection.close()


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


async def prepare(database_url: str, amqp_url: str, emulator_url: str) -> None:
    from mailmerger.migrate import migrate

    await migrate("sender", database=DatabaseSettings(url=database_url))
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await declare_queue(channel, QUEUES["sender.send-email"], delivery_limit=5)
    await connection.close()
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await client.get("/.well-known/openid-configuration")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            await asyncio.sleep(0.1)
        for account_id in range(1, ACCOUNTS + 1):
            await client.post("/_emulator/users", json={"email": account_email(account_id)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--worker", metavar="EMULATOR_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, profile=args.profile)
        return

    run_id = uuid.uuid4().hex[:8]
    database_url = f"{PG_BASE}/mm_bench_sender_{run_id}"
    vhost = f"mm_bench_sender_{run_id}"
    amqp_url = f"{AMQP_BASE}/{vhost}"
    port = free_port()
    emulator_url = f"http://127.0.0.1:{port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    emulator = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR, str(port)],
        env={**base_env, "MM_EMULATOR_PUBLIC_URL": emulator_url, "MM_EMULATOR_QUOTAS_ENABLED": "false"},
    )
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    sender: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(prepare(database_url, amqp_url, emulator_url))
        sender_env = {
            **base_env,
            "MM_DB_URL": database_url,
            "MM_DB_POOL_SIZE": "20",
            "MM_AMQP_URL": amqp_url,
            "MM_AMQP_PREFETCH": str(args.prefetch),
            "MM_REDIS_URL": REDIS_URL,
            "MM_REDIS_KEY_PREFIX": f"mm_bench_{run_id}:",
            "MM_INTERNAL_SENDER_TOKEN": "bench",
            "MM_GMAIL_API_URL": emulator_url,
            "MM_SENDER_ACCOUNT_SENDS_PER_MINUTE": "10000000",
            "MM_LOG_LEVEL": "WARNING",
        }
        worker_args = [sys.executable, __file__, "--worker", emulator_url] + (
            ["--profile"] if args.profile else []
        )
        sender = subprocess.Popen(worker_args, env=sender_env)
        if args.profile:
            args.rounds = 1
        results = asyncio.run(measure(args, amqp_url, psutil.Process(sender.pid)))
    finally:
        for process in (sender, emulator):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        rabbitmqctl("delete_vhost", vhost)
        asyncio.run(drop_database(database_url))
    if args.profile:
        return
    report = {"area": "sender", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

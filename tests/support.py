"""Helpers for tests: waiting on a condition instead of sleeping; a free port to listen on; processes
the tests start."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import aio_pika
import httpx
from aio_pika.abc import AbstractRobustConnection

from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.settings import DEV_SYSTEM_MAIL_ADDRESS

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T | Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Await until ``condition()`` (sync or async) returns a truthy value; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def empty_queue(connection: AbstractRobustConnection, queue: str, *, delivery_limit: int) -> None:
    """Declare ``queue`` and its dead-letter queue empty (the tests of a run share one vhost)."""
    channel = await connection.channel()
    spec = QUEUES[queue]
    await channel.queue_delete(spec.name)
    await channel.queue_delete(spec.dead_letter_queue)
    await declare_queue(channel, spec, delivery_limit=delivery_limit)
    await channel.close()


async def connection_with_a_fresh_queue(
    amqp_url: str, queue: str, *, delivery_limit: int
) -> AbstractRobustConnection:
    """A broker connection, with ``queue`` and its dead-letter queue declared empty."""
    connection = await aio_pika.connect_robust(amqp_url)
    await empty_queue(connection, queue, delivery_limit=delivery_limit)
    return connection


def start_worker_process(module: str, worker: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``python -m <module> <worker>`` with ``env`` over this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", module, worker],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def start_webhook_listener(port: int, secret: str) -> subprocess.Popen[str]:
    """``mailmerger webhooks listen`` on ``port``: verifies each delivery's signature with ``secret``
    and prints one line per event (stdout and stderr are pipes, in text)."""
    command = ["webhooks", "listen", "--port", str(port), "--secret", secret]
    return subprocess.Popen(
        [sys.executable, "-m", "mailmerger.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def mailed_letters(emulator: httpx.AsyncClient, recipient: str) -> list[dict[str, object]]:
    """The system's letters to ``recipient`` so far (the Google emulator's system account sent them)."""
    response = await emulator.get("/_emulator/messages", params={"user": DEV_SYSTEM_MAIL_ADDRESS})
    response.raise_for_status()
    return [m for m in response.json()["messages"] if recipient.lower() in [to.lower() for to in m["to"]]]


async def mailed_token(emulator: httpx.AsyncClient, recipient: str, path: str, *, after: int = 0) -> str:
    """The token of the newest link to ``path`` mailed to ``recipient`` (waiting for the letter)."""
    link = re.compile(re.escape(path) + r"\?token=([A-Za-z0-9_-]+)")

    async def newest() -> str | None:
        letters = await mailed_letters(emulator, recipient)
        found = [link.search(str(letter["text"])) for letter in letters[after:]]
        tokens = [match.group(1) for match in found if match]
        return tokens[-1] if tokens else None

    return await eventually(newest)

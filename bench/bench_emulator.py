"""Benchmark: accepted ``messages.send`` calls per second of the Google emulator.

Starts the emulator under uvicorn (uvloop + httptools, as the runner serves it) in a subprocess on
a free loopback port with quotas off, drives it with one ``httpx.AsyncClient`` at a fixed
concurrency for a few seconds, and reports the median of three rounds for a ~1 KB message and for
a message with a 100 KB attachment. The emulator is reset between rounds so memory stays flat.

Client and server share the machine: the server's CPU use is reported with each figure, and a
server well under 100 % means the figure is bounded by the client, not by the emulator.

    uv run python bench/bench_emulator.py [--seconds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil

RESULTS = Path(__file__).parent / "results" / "emulator.json"
SENDER = "bench@gmail.local"
SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
VARIANTS = 256  # distinct Message-IDs cycled through, so the Message-ID index grows as in real runs

_SERVE = """
import sys, uvicorn
from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
app = create_app(load(GoogleEmulatorSettings))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
            loop="uvloop", http="httptools")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raw_messages(attachment_bytes: int) -> list[str]:
    """``VARIANTS`` base64url messages of the given shape, differing only by Message-ID."""
    text = "Hello {name},\n\n" + "This is a personalised line of the campaign body. " * 16
    attachment = os.urandom(attachment_bytes)
    encoded = []
    for index in range(VARIANTS):
        message = EmailMessage()
        message["From"] = f"Bench Sender <{SENDER}>"
        message["To"] = f"Recipient {index} <recipient{index}@example.com>"
        message["Subject"] = "Quarterly update"
        message["Message-ID"] = f"<bench-{index}-{attachment_bytes}@mailmerger.local>"
        message.set_content(text.format(name=f"Recipient {index}"))
        if attachment_bytes:
            message.add_attachment(attachment, maintype="application", subtype="pdf", filename="resume.pdf")
        encoded.append(base64.urlsafe_b64encode(message.as_bytes()).decode())
    return encoded


async def wait_until_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the emulator exited with {server.returncode}")
        try:
            if (await client.get("/.well-known/openid-configuration")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the emulator did not start within 20 s")


async def fresh_token(client: httpx.AsyncClient) -> str:
    (await client.post("/_emulator/reset")).raise_for_status()
    answer = await client.post("/_emulator/tokens", json={"email": SENDER, "scopes": [SEND_SCOPE]})
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def one_round(
    client: httpx.AsyncClient, raws: list[str], seconds: float, concurrency: int, server: psutil.Process
) -> tuple[float, float]:
    """Accepted sends per second, and the server's CPU use (% of one core) meanwhile."""
    headers = {"Authorization": f"Bearer {await fresh_token(client)}"}
    bodies = [json.dumps({"raw": raw}).encode() for raw in raws]
    accepted = 0
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal accepted
        index = offset
        while time.monotonic() < deadline:
            answer = await client.post(
                "/gmail/v1/users/me/messages/send",
                content=bodies[index % len(bodies)],
                headers={**headers, "Content-Type": "application/json"},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"send failed: {answer.status_code} {answer.text[:200]}")
            accepted += 1
            index += concurrency

    cpu_before = server.cpu_times()
    started = time.monotonic()
    await asyncio.gather(*(worker(offset) for offset in range(concurrency)))
    elapsed = time.monotonic() - started
    cpu_after = server.cpu_times()
    busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return accepted / elapsed, 100 * busy / elapsed


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MM_EMULATOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MM_EMULATOR_QUOTAS_ENABLED": "false",
    }
    return subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env)


async def measure(
    base_url: str, server: subprocess.Popen[bytes], seconds: float, concurrency: int
) -> list[dict]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await wait_until_ready(client, server)
        process = psutil.Process(server.pid)
        results: list[dict] = []
        for name, attachment in (("1kb", 0), ("100kb_attachment", 100_000)):
            raws = raw_messages(attachment)
            size = len(base64.urlsafe_b64decode(raws[0]))
            rounds = [await one_round(client, raws, seconds, concurrency, process) for _ in range(3)]
            rate = statistics.median(r[0] for r in rounds)
            cpu = statistics.median(r[1] for r in rounds)
            shape = f"{size}-byte message, JSON raw path, quotas off, median of 3 x {seconds:g} s"
            results.append(
                {
                    "name": f"emulator_send_{name}",
                    "value": round(rate, 1),
                    "unit": "sends/s",
                    "goal": "never the bottleneck of the >= 1,000 emails/s pipeline",
                    "notes": (
                        f"{shape} at concurrency {concurrency}; the server used {cpu:.0f}% of one core "
                        f"({os.cpu_count()} cores shared with the httpx client)"
                    ),
                }
            )
            results.append(
                {
                    "name": f"emulator_send_{name}_server_cpu",
                    "value": round(10_000 * cpu / rate),
                    "unit": "us CPU/send",
                    "goal": None,
                    "notes": (
                        f"{shape}: server CPU time per accepted send; one core sustains about "
                        f"{1_000_000 / (10_000 * cpu / rate):,.0f} sends/s, whatever the client manages"
                    ),
                }
            )
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    server = start_emulator(port)
    try:
        results = asyncio.run(measure(f"http://127.0.0.1:{port}", server, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = {"area": "emulator", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

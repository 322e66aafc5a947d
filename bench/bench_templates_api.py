"""Benchmark: the templates service over HTTP — the cached template list and the internal batch render.

Gives the service its own scratch database (migrated), RabbitMQ vhost and Redis key prefix, serves a
JWKS for the access token, and starts the service in a subprocess on a free loopback port, one
worker: under uvicorn (uvloop + httptools, exactly as ``python -m mailmerger_templates`` serves it)
and, when it is installed (``uv run --with granian …``), under granian. For each server it
pre-creates 20 templates for one user, then measures with wrk (an httpx loop when wrk is missing):

* an authenticated ``GET /v1/templates`` at 64 connections, served from the Redis cache: requests/s,
  p50 and p99 (median of 3 rounds);
* ``POST /internal/templates/render-batch`` of 500 typical rows (bench_render.py's template) at 4
  connections: rows/s (median of 3 rounds).

wrk and the server share the machine, so the server's CPU time per request is reported too: it is
what one dedicated core would sustain, whatever else the machine is doing.

    uv run python bench/bench_templates_api.py [--seconds 5]
    uv run --with py-spy python bench/bench_templates_api.py --profile

``--profile`` samples the uvicorn server with py-spy during one round of the cached GET instead,
and prints the share of on-CPU samples each function is on the stack of.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from mailmerger_shared.db import drop_database, ensure_database
from mailmerger_shared.migrations import upgrade
from mailmerger_shared.web.internal import caller_headers

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "templates_api.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEMPLATES = 20
LIST_CONNECTIONS = 64
BATCH_ROWS = 500
BATCH_CONNECTIONS = 4
ROUNDS = 3
SERVICE_TOKEN = uuid.uuid4().hex

_GRANIAN_APP = """
from mailmerger_shared.logs import configure_logging
from mailmerger_shared.settings import load_service
from mailmerger_templates.app import create_app
from mailmerger_templates.settings import TemplatesSettings

settings = load_service(TemplatesSettings)
configure_logging(settings.log, service="templates")
app = create_app(settings)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Signer:
    """An Ed25519 key, its JWKS served over HTTP, and access tokens signed with it."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "bench", "use": "sig", "alg": "EdDSA"}]}).encode()

        class Jwks(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, user_id: int) -> str:
        now = int(time.time())
        claims = {
            "iss": "mailmerger-auth",
            "aud": "mailmerger",
            "sub": str(user_id),
            "iat": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": "bench"})

    def close(self) -> None:
        self._server.shutdown()


@contextlib.contextmanager
def scratch_infrastructure(jwks_url: str) -> Iterator[dict[str, str]]:
    """A migrated database, a vhost and a key prefix of this run; the service's environment for them."""
    run = uuid.uuid4().hex[:8]
    database = f"{PG_BASE}/mm_bench_templates_{run}"
    vhost = f"mm_bench_{run}"
    asyncio.run(ensure_database(database))
    upgrade("mailmerger_templates", database)
    rabbitmqctl = shutil.which("rabbitmqctl")
    amqp_url = f"{AMQP_BASE}/"
    if rabbitmqctl:
        subprocess.run([rabbitmqctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run(
            [rabbitmqctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        amqp_url = f"{AMQP_BASE}/{vhost}"
    key_prefix = f"mm_bench_{run}:"
    try:
        yield {
            "MM_DB_URL": database,
            "MM_REDIS_URL": REDIS_URL,
            "MM_REDIS_KEY_PREFIX": key_prefix,
            "MM_AMQP_URL": amqp_url,
            "MM_JWT_JWKS_URL": jwks_url,
            "MM_INTERNAL_QUEUE_TOKEN": SERVICE_TOKEN,
            "MM_LOG_JSON": "true",
            "MM_LOG_LEVEL": "WARNING",
        }
    finally:
        asyncio.run(drop_database(database))
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"{key_prefix}*"))
            if keys:
                client.delete(*keys)
        if rabbitmqctl:
            subprocess.run([rabbitmqctl, "-q", "delete_vhost", vhost], check=False, capture_output=True)


def start_server(kind: str, port: int, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **env, "MM_HTTP_HOST": "127.0.0.1", "MM_HTTP_PORT": str(port)}
    if kind == "uvicorn":
        command = [sys.executable, "-m", "mailmerger_templates"]
    elif kind == "granian":
        (workdir / "templates_asgi.py").write_text(_GRANIAN_APP)
        command = [
            sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
            "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(workdir),
            "--log-level", "warning", "--no-ws", "templates_asgi:app",
        ]  # fmt: skip
    else:
        raise ValueError(kind)
    return subprocess.Popen(command, env=environment)


def wait_until_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the templates service did not become ready within 30 s")


def seed(base_url: str, headers: dict[str, str]) -> int:
    """Create the templates (each an ordinary one-page email); the id of the last, for rendering."""
    from bench_render import TYPICAL  # the campaign template the engine benchmark uses

    template_id = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for index in range(TEMPLATES):
            answer = client.post(
                "/v1/templates",
                json={
                    "name": f"Outreach {index}",
                    "description": "cold email, first touch",
                    "subject": TYPICAL.subject,
                    "html": TYPICAL.html,
                },
            )
            answer.raise_for_status()
            template_id = int(answer.json()["id"])
        listed = client.get("/v1/templates")  # fills the cache
        listed.raise_for_status()
        if len(listed.json()["items"]) != TEMPLATES:
            raise RuntimeError(f"expected {TEMPLATES} templates, got {listed.text[:200]}")
    return template_id


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, *, connections: int, seconds: float, headers: dict[str, str], script: Path | None) -> dict:
    """One wrk run: requests/s and latency percentiles in ms; fails on any non-2xx answer."""
    # One wrk thread drives tens of thousands of requests/s; a second would only take CPU from the server.
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s"]
    command += ["--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    percentiles = {
        int(share): float(value) * _UNITS[unit]
        for share, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return {"rps": rate, "p50": percentiles[50], "p99": percentiles[99]}


async def httpx_loop(
    url: str, *, connections: int, seconds: float, headers: dict[str, str], body: bytes | None
) -> dict:
    """The same measurement as ``wrk`` with an httpx client, where wrk is not installed."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                if body is None:
                    answer = await client.get(url, headers=headers)
                else:
                    answer = await client.post(url, content=body, headers=headers)
                answer.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def load(url: str, *, connections: int, seconds: float, headers: dict[str, str], body: bytes | None) -> dict:
    if shutil.which("wrk") is None:
        return asyncio.run(
            httpx_loop(url, connections=connections, seconds=seconds, headers=headers, body=body)
        )
    script = None
    if body is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n')
    try:
        return wrk(url, connections=connections, seconds=seconds, headers=headers, script=script)
    finally:
        if script is not None:
            script.unlink()


def cpu_seconds(server: psutil.Process) -> float:
    """CPU time of the server and its children (granian serves from a child process)."""
    total = 0.0
    for process in (server, *server.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def rounds(server: psutil.Process, measure: Any) -> dict:
    """Medians of ROUNDS measurements, with the server's CPU use (% of one core, µs per request)."""
    results = []
    for _ in range(ROUNDS):
        before, started = cpu_seconds(server), time.monotonic()
        result = measure()
        busy, elapsed = cpu_seconds(server) - before, time.monotonic() - started
        result["cpu_percent"] = 100 * busy / elapsed
        result["cpu_us_per_request"] = 1e6 * busy / (result["rps"] * elapsed)
        results.append(result)
    median = {key: statistics.median(result[key] for result in results) for key in results[0]}
    return median | {"rounds": results}


def measure_server(
    kind: str, user_id: int, env: dict[str, str], signer: Signer, seconds: float
) -> list[dict]:
    """The figures of one server; ``user_id`` owns its templates (each server gets its own)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(kind, port, env, Path(workdir))
        try:
            wait_until_ready(base_url, server)
            user = {"Authorization": f"Bearer {signer.token(user_id)}"}
            template_id = seed(base_url, user)
            process = psutil.Process(server.pid)
            listed = rounds(
                process,
                lambda: load(
                    f"{base_url}/v1/templates",
                    connections=LIST_CONNECTIONS,
                    seconds=seconds,
                    headers=user,
                    body=None,
                ),
            )
            batch = render_batch_body(user_id, template_id)
            rendered = rounds(
                process,
                lambda: load(
                    f"{base_url}/internal/templates/render-batch",
                    connections=BATCH_CONNECTIONS,
                    seconds=seconds,
                    headers={**caller_headers("queue", SERVICE_TOKEN), "Content-Type": "application/json"},
                    body=batch,
                ),
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return report_rows(kind, listed, rendered, seconds)


def render_batch_body(user_id: int, template_id: int) -> bytes:
    from bench_render import make_rows

    request = {"user_id": user_id, "template_id": template_id, "version": 1, "rows": make_rows(BATCH_ROWS)}
    return json.dumps(request).encode()


def report_rows(kind: str, listed: dict, rendered: dict, seconds: float) -> list[dict]:
    tool = "wrk" if shutil.which("wrk") else "an httpx loop"
    setup = f"{kind}, 1 worker, {tool}, median of {ROUNDS} x {seconds:g} s, {os.cpu_count()} cores shared"
    list_rounds = ", ".join(f"{r['rps']:.0f}" for r in listed["rounds"])
    list_notes = (
        f"cached GET /v1/templates ({TEMPLATES} templates) at {LIST_CONNECTIONS} connections; {setup};"
        f" server at {listed['cpu_percent']:.0f}% of one core; rounds: {list_rounds} rps"
    )
    rows_per_second = rendered["rps"] * BATCH_ROWS
    return [
        {
            "name": f"cached list rps ({kind})",
            "value": round(listed["rps"]),
            "unit": "requests/s",
            "goal": ">= 3000 requests/s",
            "notes": list_notes,
        },
        {
            "name": f"cached list p50 ({kind})",
            "value": round(listed["p50"], 2),
            "unit": "ms",
            "goal": None,
            "notes": list_notes,
        },
        {
            "name": f"cached list p99 ({kind})",
            "value": round(listed["p99"], 2),
            "unit": "ms",
            "goal": "<= 20 ms",
            "notes": list_notes,
        },
        {
            "name": f"cached list server CPU ({kind})",
            "value": round(listed["cpu_us_per_request"]),
            "unit": "us CPU/request",
            "goal": "<= 333 us (3000 requests/s on one core)",
            "notes": (
                f"{list_notes}; one dedicated core would serve about"
                f" {1e6 / listed['cpu_us_per_request']:,.0f} requests/s"
            ),
        },
        {
            "name": f"render-batch over HTTP ({kind})",
            "value": round(rows_per_second),
            "unit": "rows/s",
            "goal": None,
            "notes": (
                f"POST /internal/templates/render-batch, {BATCH_ROWS} rows of bench_render.py's template"
                f" per request, {BATCH_CONNECTIONS} connections; {setup};"
                f" server at {rendered['cpu_percent']:.0f}% of one core;"
                f" request p50 {rendered['p50']:.1f} ms, p99 {rendered['p99']:.1f} ms"
            ),
        },
    ]


def profile(env: dict[str, str], signer: Signer, seconds: float) -> str:
    """Where a cached GET's CPU time goes: py-spy samples uvicorn during one round of load."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server("uvicorn", port, env, Path(workdir))
        output = Path(workdir) / "stacks.txt"
        try:
            wait_until_ready(base_url, server)
            user = {"Authorization": f"Bearer {signer.token(1)}"}
            seed(base_url, user)
            record = ["py-spy", "record", "--pid", str(server.pid), "--rate", "500", "--format", "raw"]
            spy = subprocess.Popen([*record, "-o", str(output)])
            load(
                f"{base_url}/v1/templates",
                connections=LIST_CONNECTIONS,
                seconds=seconds,
                headers=user,
                body=None,
            )
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        finally:
            server.terminate()
            server.wait(timeout=30)
        return summarize_stacks(output.read_text())


def summarize_stacks(collapsed: str, top: int = 70) -> str:
    """py-spy's collapsed stacks (on-CPU samples only) as the share of samples each function is in."""
    samples: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in dict.fromkeys(re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")):
            samples[frame] = samples.get(frame, 0) + int(count)
    ranked = sorted(samples.items(), key=lambda item: -item[1])[:top]
    lines = [f"{total} on-CPU samples; share of samples in which each function is on the stack:"]
    lines += [f"{100 * count / total:5.1f}%  {frame}" for frame, count in ranked]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true", help="profile the cached GET with py-spy")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))  # bench_render's template and rows
    signer = Signer()
    try:
        with scratch_infrastructure(signer.url) as env:
            if args.profile:
                print(profile(env, signer, args.seconds))
                return
            results = measure_server("uvicorn", 2, env, signer, args.seconds)
            if importlib.util.find_spec("granian") is not None:
                results += measure_server("granian", 3, env, signer, args.seconds)
    finally:
        signer.close()
    report = {"area": "templates_api", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Storage hot path: upload a 50 MB file through the storage service into a local S3.

The service runs as it does in production — `python -m mailmerger_storage` under uvicorn, in its own
process — with the upload limit raised to 64 MB, against this machine's PostgreSQL and RabbitMQ (a
database and a vhost of its own, removed afterwards) and a moto S3 server in another process. The
client streams a multipart form of fresh random bytes (so dedupe never skips the write) and waits
for the 201. Reports the median of three rounds: throughput, and how much the service process's
RSS grew above its warmed-up baseline while the upload was in flight (sampled every 10 ms with
psutil). Writes bench/results/storage.json and prints it.

Run: uv run python bench/bench_storage.py
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from mailmerger.migrate import migrate
from mailmerger_shared.db import drop_database
from mailmerger_shared.settings import DatabaseSettings

MB = 1_000_000
MiB = 1024 * 1024
FILE_BYTES = 50 * MB
ROUNDS = 3
PART_BYTES = 8 * MiB  # the service's default part size
RESULTS = Path(__file__).parent / "results" / "storage.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
RUN = uuid.uuid4().hex[:8]
BOUNDARY = "bench-boundary-5b1d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Signer:
    """Signs access tokens the way auth does and serves the public key as a JWKS over HTTP."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = json.dumps({"keys": [{**jwk, "kid": "bench", "use": "sig", "alg": "EdDSA"}]}).encode()

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
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": "bench"})

    @contextmanager
    def serving(self) -> Iterator[str]:
        jwks = self.jwks

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        finally:
            server.shutdown()


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def vhost(name: str) -> Iterator[str]:
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"{AMQP_BASE}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


async def form_stream(size: int) -> AsyncIterator[bytes]:
    """A multipart form whose file is ``size`` fresh random bytes after a PDF header, in 64 KiB chunks."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    remaining = size - len(b"%PDF-1.7\n")
    while remaining > 0:
        chunk = os.urandom(min(64 * 1024, remaining))
        remaining -= len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class RssSampler:
    """The peak RSS of a process while sampling runs (every 10 ms, in a thread)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload(client: httpx.AsyncClient, token: str, size: int) -> None:
    response = await client.post(
        "/v1/attachments",
        content=form_stream(size),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")


async def wait_ready(client: httpx.AsyncClient, service: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(
                f"the storage service exited: {service.stderr.read().decode() if service.stderr else ''}"
            )
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the storage service did not become ready within 60 s")


async def measure(env: dict[str, str], signer: Signer, port: int) -> tuple[list[float], list[float], float]:
    """Throughput and RSS growth of each round, and the peak RSS above the idle process."""
    speeds, growths, peak = [], [], 0
    with process([sys.executable, "-m", "mailmerger_storage"], env) as service:
        timeout = httpx.Timeout(120.0, connect=5.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
            await wait_ready(client, service)
            idle = psutil.Process(service.pid).memory_info().rss
            with RssSampler(service.pid) as warm_up:
                await upload(client, signer.token(1), 12 * MiB)  # imports, pools, first multipart
            peak = warm_up.peak
            for round_number in range(ROUNDS):
                baseline = psutil.Process(service.pid).memory_info().rss
                with RssSampler(service.pid) as sampler:
                    started = time.perf_counter()
                    await upload(client, signer.token(100 + round_number), FILE_BYTES)
                    elapsed = time.perf_counter() - started
                speeds.append(FILE_BYTES / MB / elapsed)
                growths.append((sampler.peak - baseline) / MB)
                peak = max(peak, sampler.peak)
    return speeds, growths, (peak - idle) / MB


def main() -> None:
    database = f"{PG_BASE}/mm_bench_storage_{RUN}"
    signer = Signer()
    s3_port, http_port = free_port(), free_port()
    asyncio.run(migrate("storage", database=DatabaseSettings(url=database)))
    try:
        with (
            vhost(f"mm_bench_storage_{RUN}") as amqp_url,
            signer.serving() as jwks_url,
            process(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                dict(os.environ),
            ),
        ):
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
                "MM_DB_URL": database,
                "MM_AMQP_URL": amqp_url,
                "MM_JWT_JWKS_URL": jwks_url,
                "MM_INTERNAL_QUEUE_TOKEN": "bench",
                "MM_HTTP_PORT": str(http_port),
                "MM_LOG_LEVEL": "WARNING",
                "MM_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
                "MM_S3_ACCESS_KEY_ID": "bench",
                "MM_S3_SECRET_ACCESS_KEY": "bench",
                "MM_S3_BUCKET": f"mm-bench-{RUN}",
                "MM_S3_MAX_UPLOAD_BYTES": str(64 * MiB),
                "MM_S3_USER_QUOTA_BYTES": str(1024 * MiB),
                "MM_S3_PART_SIZE_BYTES": str(PART_BYTES),
            }
            speeds, growths, above_idle = asyncio.run(measure(env, signer, http_port))
    finally:
        asyncio.run(drop_database(database))

    machine = f"Python {platform.python_version()} on {platform.machine()}"
    report = {
        "area": "storage",
        "results": [
            {
                "name": "upload 50 MB through the service into S3",
                "value": round(statistics.median(speeds), 1),
                "unit": "MB/s",
                "goal": ">= 20 MB/s against a local moto S3",
                "notes": (
                    f"median of {ROUNDS} rounds; multipart form streamed by httpx, parts of "
                    f"{PART_BYTES // MiB} MiB to moto in another process; rounds: "
                    f"{', '.join(f'{s:.1f}' for s in speeds)}; {machine}"
                ),
            },
            {
                "name": "service RSS growth during a 50 MB upload",
                "value": round(statistics.median(growths), 1),
                "unit": "MB",
                "goal": "flat: about one part in flight, not the file",
                "notes": (
                    f"peak RSS minus the warmed-up baseline, sampled every 10 ms; rounds: "
                    f"{', '.join(f'{g:.1f}' for g in growths)}"
                ),
            },
            {
                "name": "service peak RSS above the idle process",
                "value": round(above_idle, 1),
                "unit": "MB",
                "goal": "well under the file size (50 MB)",
                "notes": "highest RSS over the warm-up and all rounds minus the RSS right after /ready: "
                "first-use imports and pools plus the part buffer",
            },
        ],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: resident memory at idle of the all-in-one process and of each service alone.

Each process is started against a scratch database (every schema migrated), RabbitMQ vhost and
Redis prefix, waited for until ready (``/ready``: HTTP apps on their port, workers on their
metrics port), then left idle for a few seconds; the value is the median of RSS samples (psutil)
over that idle time, children included (the all-in-one's local S3 runs in a child process).

    uv run python bench/bench_rss.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from mailmerger.topology import processes
from mailmerger_shared.db import drop_database, ensure_database
from mailmerger_shared.settings import DatabaseSettings

RESULTS = Path(__file__).parent / "results" / "rss.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
IDLE_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def measure(command: list[str], env: dict[str, str], ready_url: str | None) -> tuple[float, str]:
    """Median RSS (MB) over the idle period, and how readiness was established."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        how = "settled 5 s after start (no HTTP)"
        if ready_url is not None:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited with {process.returncode}")
                try:
                    if httpx.get(ready_url, timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command} was not ready in 90 s")
                time.sleep(0.2)
            how = "after /ready answered 200"
        else:
            time.sleep(5)
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
        watched = psutil.Process(process.pid)
        samples = []
        end = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < end:
            samples.append(tree_rss(watched))
            time.sleep(0.25)
        return statistics.median(samples) / 2**20, how
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    run_id = uuid.uuid4().hex[:8]
    database_url = f"{PG_BASE}/mm_bench_rss_{run_id}"
    vhost = f"mm_bench_rss_{run_id}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    env = {
        **base,
        "MM_DB_URL": database_url,
        "MM_DB_POOL_SIZE": "5",
        "MM_AMQP_URL": f"{AMQP_BASE}/{vhost}",
        "MM_REDIS_URL": REDIS_URL,
        "MM_REDIS_KEY_PREFIX": f"mm_bench_rss_{run_id}:",
        # Each service alone reads the credentials of the callers it accepts or presents as.
        "MM_INTERNAL_QUEUE_TOKEN": "bench-queue",
        "MM_INTERNAL_SENDER_TOKEN": "bench-sender",
        "MM_LOG_LEVEL": "WARNING",
        "MM_LOG_JSON": "false",
    }
    asyncio.run(ensure_database(database_url))
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    results: list[dict[str, Any]] = []
    from mailmerger.local_s3 import LocalS3

    s3_stand_in = LocalS3().start()  # the services alone need a reachable S3 to be ready
    try:
        from mailmerger.migrate import migrate

        asyncio.run(migrate("all", database=DatabaseSettings(url=database_url)))
        port, internal, s3 = free_port(), free_port(), free_port()
        all_env = {
            **env,
            "MM_HTTP_PORT": str(port),
            "MM_HTTP_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "MM_JWT_JWKS_URL": f"http://127.0.0.1:{port}/v1/auth/.well-known/jwks.json",
            "MM_RUN_INTERNAL_PORT": str(internal),
            "MM_RUN_LOCAL_S3_PORT": str(s3),
        }
        command = [
            sys.executable,
            "-c",
            "import sys; from mailmerger.cli import main; sys.exit(main(['run']))",
        ]
        rss, how = measure(command, all_env, f"http://127.0.0.1:{port}/ready")
        results.append(
            {
                "name": "all-in-one RSS at idle",
                "value": round(rss, 1),
                "unit": "MB",
                "goal": "<= 250 MB",
                "notes": f"`mailmerger run` (5 apps, dispatcher, sender, Google emulator) plus its local S3 "
                f"(moto) child; median of RSS samples over {IDLE_SECONDS:.0f} s idle {how}",
            }
        )
        # Every process of the separate-services topology: each HTTP app, each worker (whose
        # /ready is on its metrics port).
        alone = [
            (
                f"mailmerger_{p.service}" + (f" {p.worker}" if p.worker else ""),
                [p.worker] if p.worker else [],
                "MM_HTTP_PORT" if p.http else "MM_METRICS_PORT",
            )
            for p in processes()
        ]
        for name, extra, port_variable in alone:
            port = free_port()
            service_env = {
                **env,
                port_variable: str(port),
                "MM_GMAIL_API_URL": "http://127.0.0.1:9",
                **s3_stand_in.environment(),
            }
            module = name.split()[0]
            try:
                rss, how = measure(
                    [sys.executable, "-m", module, *extra], service_env, f"http://127.0.0.1:{port}/ready"
                )
            except RuntimeError as exc:
                results.append(
                    {
                        "name": f"{name} RSS at idle",
                        "value": "n/a",
                        "unit": "MB",
                        "goal": None,
                        "notes": f"could not measure: {exc}",
                    }
                )
                continue
            results.append(
                {
                    "name": f"{name} RSS at idle",
                    "value": round(rss, 1),
                    "unit": "MB",
                    "goal": None,
                    "notes": f"`python -m {name}`; median RSS over {IDLE_SECONDS:.0f} s idle {how}",
                }
            )
    finally:
        s3_stand_in.stop()
        _rabbitmqctl("delete_vhost", vhost)
        asyncio.run(drop_database(database_url))
    load = os.getloadavg()
    for r in results:
        r["notes"] += f"; {os.cpu_count()} CPUs, load average {load[0]:.2f}"
    report = {"area": "rss", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""A worker's probe server on its metrics port: /health, /ready from the worker's own checks, /metrics.

The dispatcher stands for every worker: it needs only the database and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import run_dispatcher
from mailmerger_shared.db import transaction
from mailmerger_shared.metrics import MetricsSettings
from mailmerger_shared.runtime import Infrastructure
from mailmerger_shared.serving import run_with_probes
from mailmerger_shared.web.probes import Probes, probe_app
from tests.support import eventually, free_port, start_worker_process


@dataclass
class ProbePort:
    """A client for a worker's metrics port, which may not be listening yet."""

    client: httpx.AsyncClient

    async def answers(self, path: str) -> httpx.Response | None:
        try:
            return await self.client.get(path)
        except httpx.TransportError:
            return None

    async def ready(self) -> dict[str, Any] | None:
        """The /ready body once it is 200, else None."""
        response = await self.answers("/ready")
        if response is None or response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body


@contextlib.asynccontextmanager
async def probing(port: int) -> AsyncIterator[ProbePort]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        yield ProbePort(client)


@dataclass
class ProbedDispatcher:
    """A dispatcher run by ``run_with_probes``: its port, and the probes it was handed."""

    port: ProbePort
    handed: list[Probes]


@pytest.fixture
async def probed(settings: QueueSettings) -> AsyncIterator[ProbedDispatcher]:
    port = free_port()
    handed: list[Probes] = []

    async def dispatcher(settings: QueueSettings, *, probes: Probes) -> None:
        handed.append(probes)
        await run_dispatcher(settings, probes=probes)

    task = asyncio.create_task(run_with_probes(dispatcher, settings, MetricsSettings(port=port)))
    try:
        async with probing(port) as probe_port:
            yield ProbedDispatcher(probe_port, handed)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_worker_answers_health_and_is_ready_once_it_dispatches(probed: ProbedDispatcher) -> None:
    """/health is 200 while the process lives; /ready is 200 listing the dispatcher's checks."""
    health = await eventually(lambda: probed.port.answers("/health"))
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await eventually(probed.port.ready)
    assert ready == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_a_failing_check_makes_ready_503_naming_it(probed: ProbedDispatcher) -> None:
    """One failing check: 503 naming it, the others still ok; once it passes again, 200."""
    await eventually(probed.port.ready)

    async def failing() -> None:
        raise ConnectionError("injected outage")

    with probed.handed[0].report({"injected": failing}):
        response = await probed.port.client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["injected"] == "unavailable: ConnectionError: injected outage"
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"
    assert await probed.port.ready()


async def test_a_workers_metrics_are_the_process_registry(probed: ProbedDispatcher) -> None:
    """/metrics on the metrics port serves the mailmerger_ metrics in Prometheus' text format."""
    response = await eventually(lambda: probed.port.answers("/metrics"))
    assert response.status_code == 200
    assert "# TYPE mailmerger_dispatcher_published_total counter" in response.text
    assert "# TYPE mailmerger_dispatch_lag_seconds histogram" in response.text


async def test_stopping_the_worker_runs_its_shutdown_and_stops_the_probe_server(
    settings: QueueSettings, infra: Infrastructure
) -> None:
    """Cancelled: the dispatcher closes its listener connection and the port stops answering."""
    port = free_port()
    task = asyncio.create_task(run_with_probes(run_dispatcher, settings, MetricsSettings(port=port)))
    async with probing(port) as probe_port:
        await eventually(probe_port.ready)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await probe_port.client.get("/health")
    assert infra.sessions is not None
    async with transaction(infra.sessions) as session:
        listening = await session.scalar(
            # This run's database only: other runs on the machine have dispatchers of their own.
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": "queue-dispatcher-listener"},
        )
    assert listening == 0


async def test_ready_is_503_until_the_worker_reports_its_checks() -> None:
    """A worker still opening its infrastructure (or stopped) is not ready, and /ready says why."""
    transport = httpx.ASGITransport(app=probe_app(Probes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"worker": "unavailable: RuntimeError: the worker is not running (starting or stopped)"},
    }


async def test_without_a_metrics_port_the_worker_runs_without_probes(settings: QueueSettings) -> None:
    """MM_METRICS_PORT unset: no listener, and the worker is called as everywhere else."""
    calls: list[dict[str, object]] = []

    async def worker(settings: QueueSettings, **keywords: object) -> None:
        calls.append(keywords)

    await run_with_probes(worker, settings, MetricsSettings())
    assert calls == [{}]


def start_dispatcher(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_worker_process("mailmerger_queue", "dispatcher", env)


async def test_a_dispatcher_process_serves_its_probes_and_stops_cleanly_on_sigterm(
    service_env: dict[str, str], queue_amqp_url: str
) -> None:
    """`python -m mailmerger_queue dispatcher` with MM_METRICS_PORT: ready, then SIGTERM exits 0."""
    port = free_port()
    env = {**service_env, "MM_AMQP_URL": queue_amqp_url, "MM_METRICS_PORT": str(port)}
    process = start_dispatcher(env)
    try:
        async with probing(port) as probe_port:

            async def ready() -> dict[str, Any] | None:
                assert process.poll() is None, "the dispatcher exited"
                return await probe_port.ready()

            await eventually(ready, timeout=30, interval=0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, errors.decode()

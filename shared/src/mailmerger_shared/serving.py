"""Running an ASGI app under uvicorn the same way in every process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, Literal

import uvicorn
import uvloop

from mailmerger_shared.logs import configure_logging
from mailmerger_shared.metrics import MetricsSettings
from mailmerger_shared.registration import ServiceRegistration, Worker
from mailmerger_shared.settings import SettingsError, load, load_service
from mailmerger_shared.tracing import TracingSettings, configure_tracing
from mailmerger_shared.web.probes import Probes, probe_app


def server_config(app: Any, host: str, port: int, *, lifespan: Literal["on", "off"] = "on") -> uvicorn.Config:
    # log_config=None keeps our JSON logging; uvicorn's access log would duplicate the metrics.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )


def main(service: ServiceRegistration, argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m mailmerger_<service> [worker]``.

    Without an argument it serves the service's HTTP app (a service with no app runs its only
    worker); with the name of one of its workers (``dispatcher``, ``worker``) it runs that
    background loop until SIGTERM/SIGINT.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    worker = args[0] if args else None
    if worker is None and service.create_app is None and len(service.workers) == 1:
        worker = next(iter(service.workers))
    runnable = service.create_app is not None if worker is None else worker in service.workers
    if not runnable:
        choices = ", ".join(service.workers) or "none"
        print(f"mailmerger-{service.name}: name a worker (workers: {choices})", file=sys.stderr)
        raise SystemExit(2)
    try:
        settings: Any = load_service(service.settings_type)
    except SettingsError as exc:
        print(f"mailmerger-{service.name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    process = service.process_name(worker)
    configure_logging(settings.log, service=process)
    configure_tracing(load(TracingSettings), service=process)
    if worker is not None:
        run_worker(service.workers[worker], settings, load(MetricsSettings))
        return
    assert service.create_app is not None
    http = settings.http
    uvicorn.Server(server_config(service.create_app(settings), http.host, http.port)).run()


def run_until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; SIGTERM or SIGINT cancels it, so its ``finally`` blocks shut down gracefully."""

    async def runner() -> None:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # The loop every HTTP app runs on (server_config): a worker is at least as busy as an app.
    uvloop.run(runner())


def run_worker(worker: Worker, settings: Any, metrics: MetricsSettings) -> None:
    """Run a worker process until SIGTERM/SIGINT, with its probes on ``metrics.port`` when set."""
    run_until_signalled(run_with_probes(worker, settings, metrics))


async def run_with_probes(worker: Worker, settings: Any, metrics: MetricsSettings) -> None:
    """Run ``worker(settings, probes=...)`` with its probe server (``web.probes``) beside it.

    Both share this event loop. The server starts with the worker, so ``/health`` answers while the
    worker still waits for its infrastructure, and stops once the worker's ``finally`` blocks ran.
    Without a metrics port the worker runs alone.
    """
    if metrics.port is None:
        await worker(settings)
        return
    probes = Probes()
    server = _SharedLoopServer(server_config(probe_app(probes), metrics.host, metrics.port))
    serving = asyncio.create_task(server.serve(), name="probe-server")
    try:
        await worker(settings, probes=probes)
    finally:
        server.should_exit = True
        await serving


class _SharedLoopServer(uvicorn.Server):
    """A uvicorn server sharing a worker's event loop: the worker's runner owns the signals.

    uvicorn would take SIGTERM/SIGINT for itself and stop at once, while the worker may still be
    draining (the sender finishes its sends in flight); here the signal cancels the worker, and
    the server stops after the worker's shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

"""Running an ASGI app under uvicorn the same way in every process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
import uvicorn

from mailmerger_shared.logs import configure_logging
from mailmerger_shared.metrics import MetricsSettings, start_metrics_listener
from mailmerger_shared.settings import SettingsError, load, load_service
from mailmerger_shared.tracing import TracingSettings, configure_tracing

T = TypeVar("T", bound=msgspec.Struct)


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


Worker = Callable[[Any], Coroutine[Any, Any, None]]


def main(
    name: str,
    settings_type: type[T],
    create_app: Callable[[T], Any],
    workers: Mapping[str, Worker] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Entry point of ``python -m mailmerger_<service> [worker]``.

    Without an argument it serves the service's HTTP app; with the name of one of its workers
    (``dispatcher``, ``worker``…) it runs that background loop until SIGTERM/SIGINT.
    """
    workers = dict(workers or {})
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in workers:
        choices = ", ".join(workers) or "none"
        print(f"mailmerger-{name}: unknown worker {args[0]!r} (workers: {choices})", file=sys.stderr)
        raise SystemExit(2)
    try:
        settings = load_service(settings_type)
    except SettingsError as exc:
        print(f"mailmerger-{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    process = name if not args else f"{name}-{args[0]}"
    configure_logging(settings.log, service=process)  # type: ignore[attr-defined]
    configure_tracing(load(TracingSettings), service=process)
    if args:
        start_metrics_listener(load(MetricsSettings))
        run_until_signalled(workers[args[0]](settings))
        return
    http = settings.http  # type: ignore[attr-defined]
    uvicorn.Server(server_config(create_app(settings), http.host, http.port)).run()


def run_until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; SIGTERM or SIGINT cancels it, so its ``finally`` blocks shut down gracefully."""

    async def runner() -> None:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())


def serve_standalone(app: Any, public_url: str) -> None:
    """Serve ``app`` on the host and port of its public URL (stand-ins such as the emulator)."""
    url = urlsplit(public_url)
    uvicorn.Server(server_config(app, url.hostname or "127.0.0.1", url.port or 80)).run()

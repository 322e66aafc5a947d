"""Running an ASGI app under uvicorn the same way in every process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
import uvicorn

from mailmerger_shared.logs import configure_logging
from mailmerger_shared.settings import SettingsError, load_service

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


def main(name: str, settings_type: type[T], create_app: Callable[[T], Any]) -> None:
    """Entry point of ``python -m mailmerger_<service>``: load settings, log, serve."""
    try:
        settings = load_service(settings_type)
    except SettingsError as exc:
        print(f"mailmerger-{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log, service=name)  # type: ignore[attr-defined]
    http = settings.http  # type: ignore[attr-defined]
    uvicorn.Server(server_config(create_app(settings), http.host, http.port)).run()


def serve_standalone(app: Any, public_url: str) -> None:
    """Serve ``app`` on the host and port of its public URL (stand-ins such as the emulator)."""
    url = urlsplit(public_url)
    uvicorn.Server(server_config(app, url.hostname or "127.0.0.1", url.port or 80)).run()

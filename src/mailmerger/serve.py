"""Serving: one service, the Google emulator, or everything in one process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import uvicorn

from mailmerger.addresses import with_derived_addresses
from mailmerger.allinone import PrefixRouter
from mailmerger.listeners import PortUnavailable, describe_bind_error, listen_for
from mailmerger.preflight import StartupError, check_infrastructure
from mailmerger.services import registry
from mailmerger.settings import RunSettings
from mailmerger.standins import StandIns, start_stand_ins
from mailmerger.startup import Console
from mailmerger.topology import CREDENTIALS, internal_servers
from mailmerger_shared.logs import configure_logging
from mailmerger_shared.serving import server_config
from mailmerger_shared.settings import (
    BrokerSettings,
    DatabaseSettings,
    Deployment,
    HttpSettings,
    LogSettings,
    RedisSettings,
    Settings,
    SettingsError,
    environment,
    load,
    load_all,
    load_service,
)
from mailmerger_shared.tracing import TracingSettings, configure_tracing
from mailmerger_shared.web.probes import Probes, probe_app

log = logging.getLogger(__name__)

# Beyond the broker's own start-up wait: opening the rest (database pools, consumers, buckets).
_STARTUP_MARGIN_SECONDS = 60.0


def serve_google_emulator() -> None:
    from mailmerger_emulator.google.app import serve
    from mailmerger_emulator.google.settings import GoogleEmulatorSettings

    serve(load(GoogleEmulatorSettings))


def load_every_service(env: Mapping[str, str], *, also: Iterable[type[Settings]] = ()) -> dict[str, Any]:
    """Every service's settings (and the groups ``also`` names) from ``env``: one ``SettingsError``
    naming every offending variable of all of them, not only the first service's."""
    problems: list[str] = []
    for group in also:
        load(group, env, problems=problems)
    loaded = {
        name: load_service(service.settings_type, env, problems=problems)
        for name, service in registry().items()
    }
    if problems:
        raise SettingsError(problems)
    return loaded


def build_all_in_one(
    env: Mapping[str, str] | None = None, *, local_s3_port: int = 0, internal_port: int = 8081
) -> tuple[PrefixRouter, PrefixRouter, HttpSettings, StandIns]:
    """The public router (gateway prefixes, plus stand-ins) and the internal one (``/internal/…``).

    Addresses left unset follow ``MM_HTTP_PORT`` (``addresses``); every service's settings are
    checked before anything starts.
    """
    env = with_derived_addresses(environment() if env is None else env)
    env.update(_internal_wiring(env, internal_port))
    load_every_service(env)
    http = load(HttpSettings, env)
    try:
        stand_ins = start_stand_ins(env, public_url=http.public_url, local_s3_port=local_s3_port)
    except OSError as exc:
        raise StartupError(
            describe_bind_error(
                exc,
                "127.0.0.1",
                local_s3_port,
                variable="MM_RUN_LOCAL_S3_PORT",
                remedy="stop what listens there, or set MM_RUN_LOCAL_S3_PORT to a free port",
            )
        ) from None
    try:
        env.update(stand_ins.environment)
        settings = load_every_service(env)
        return (*_routers(settings, stand_ins), http, stand_ins)
    except BaseException:
        stand_ins.stop()
        raise


def _routers(settings: Mapping[str, Any], stand_ins: StandIns) -> tuple[PrefixRouter, PrefixRouter]:
    services = registry()
    apps = {
        name: service.create_app(settings[name])
        for name, service in services.items()
        if service.create_app is not None
    }
    # Each worker reports its readiness to its own probes, as it does on its metrics port when
    # it runs alone; /ready asks them under the worker's process name (``sender-worker``).
    workers, probed = {}, {}
    for name, service in services.items():
        for worker, run in service.workers.items():
            probes, process = Probes(), service.process_name(worker)
            workers[process] = functools.partial(run, settings[name], probes=probes)
            probed[process] = probe_app(probes)
    broker_wait = max(
        (group.startup_wait_seconds for one in settings.values() for group in _groups(one, BrokerSettings)),
        default=0.0,
    )
    public = PrefixRouter(
        apps,
        mounts=stand_ins.mounts,
        workers=workers,
        probed=probed,
        startup_timeout=broker_wait + _STARTUP_MARGIN_SECONDS,
    )
    internal = PrefixRouter(apps, owner=_internal_owner)
    return public, internal


def _groups(settings: Any, kind: type[Settings]) -> list[Any]:
    return [
        value for name in settings.__struct_fields__ if isinstance(value := getattr(settings, name), kind)
    ]


def _internal_wiring(env: Mapping[str, str], internal_port: int) -> dict[str, str]:
    """Every internal URL at this process's internal listener; a fresh credential per caller
    unless one is set.

    In one process the credentials never leave it, so random ones serve as well as configured
    ones and nobody has to invent them for a first run.
    """
    wiring = dict.fromkeys(internal_servers(), f"http://127.0.0.1:{internal_port}")
    wiring.update({variable: env.get(variable) or secrets.token_urlsafe(32) for variable in CREDENTIALS})
    return wiring


def _internal_owner(path: str) -> str | None:
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "internal" else None


# --- `mailmerger run` ----------------------------------------------------------------------------


def run_all_in_one(env: Mapping[str, str] | None = None) -> int:
    """Check the configuration and the infrastructure, serve until SIGINT/SIGTERM; the exit code.

    Raises ``SettingsError`` (every offending variable), ``StartupError`` or ``PortUnavailable``
    (one line naming the setting) for the caller to print.
    """
    env = with_derived_addresses(environment() if env is None else env)
    also = (RunSettings, Deployment, LogSettings, TracingSettings)
    load_every_service({**env, **_internal_wiring(env, 0)}, also=also)
    run, deployment, logs, tracing = load_all(*also, env=env)
    configure_logging(logs, service="mailmerger-run")
    configure_tracing(tracing, service="mailmerger-run")
    console = Console(sys.stdout, development=deployment.development)
    try:
        return asyncio.run(_until_signalled(_serve_all_in_one(env, run, console), console))
    except (StartupError, PortUnavailable, SettingsError):
        raise
    except Exception as exc:  # what no check foresaw: still one line, the traceback at DEBUG
        log.debug("start-up failed", exc_info=True)
        root = _root_cause(exc)
        detail = str(root).strip().splitlines()[0] if str(root).strip() else ""
        raise StartupError(
            f"start-up failed: {type(root).__name__}: {detail} (MM_LOG_LEVEL=DEBUG shows the traceback)"
        ) from None


def _root_cause(exc: BaseException) -> BaseException:
    while True:
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            return exc


async def _until_signalled(serving: Any, console: Console) -> int:
    """Run ``serving``: the first SIGINT/SIGTERM stops it gracefully once it serves (at once
    while it starts: nothing is running worth waiting for), a second one at once."""
    task = asyncio.ensure_future(serving)
    loop = asyncio.get_running_loop()
    signalled = 0

    def on_signal() -> None:
        nonlocal signalled
        signalled += 1
        if console.serving and signalled == 1:
            console.stop.set()
        else:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        console.say_stopped()
        return 130
    return 0


async def _serve_all_in_one(env: Mapping[str, str], run: RunSettings, console: Console) -> None:
    http = load(HttpSettings, env)
    # Derived from MM_HTTP_PORT when unset (``addresses``).
    assert run.internal_port is not None
    assert run.local_s3_port is not None
    console.starting(http)
    with contextlib.ExitStack() as sockets:
        public_socket = sockets.enter_context(
            listen_for(
                http.host,
                http.port,
                variable="MM_HTTP_PORT",
                remedy="stop what listens there, or move MailMerger with MM_HTTP_PORT=<free port> "
                "(its internal port and local S3 follow)",
            )
        )
        internal_socket = sockets.enter_context(
            listen_for(
                "127.0.0.1",
                run.internal_port,
                variable="MM_RUN_INTERNAL_PORT",
                remedy="stop what listens there, or set MM_RUN_INTERNAL_PORT (default: MM_HTTP_PORT + 1)",
            )
        )
        public, internal, http, stand_ins = build_all_in_one(
            env, local_s3_port=run.local_s3_port, internal_port=run.internal_port
        )
        try:
            for note in stand_ins.notes:
                console.component(note)
            await check_infrastructure(
                load(DatabaseSettings, env),
                load(RedisSettings, env),
                load(BrokerSettings, env),
                packages=[service.package for service in registry().values()],
                say=console.component,
            )
            await _serve(public, internal, http, [public_socket, internal_socket], console, stand_ins)
        finally:
            stand_ins.stop()


async def _serve(
    public: PrefixRouter,
    internal: PrefixRouter,
    http: HttpSettings,
    sockets: list[socket.socket],
    console: Console,
    stand_ins: StandIns,
) -> None:
    configs = [
        server_config(public, http.host, http.port, lifespan="off"),
        server_config(internal, "127.0.0.1", sockets[1].getsockname()[1], lifespan="off"),
    ]
    servers = [_QuietServer(config) for config in configs]
    async with public.running():  # every app's lifespan (the internal router serves the same apps)
        serving = [
            asyncio.create_task(server.serve(sockets=[sock]), name=f"server-{index}")
            for index, (server, sock) in enumerate(zip(servers, sockets, strict=True))
        ]
        console.serving = True
        stopped = asyncio.create_task(console.stop.wait(), name="stop")
        ready = asyncio.create_task(
            console.until_ready(public, sockets, http, stand_ins.notes), name="readiness"
        )
        await asyncio.wait([*serving, stopped], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        console.say_stopping()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving, ready, return_exceptions=True)
        stopped.cancel()
    console.say_stopped()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to ``run_all_in_one`` (two servers capturing
    them each re-raised the signal on exit, cancelling the apps' shutdown half-way)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

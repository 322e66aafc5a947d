"""What ``mailmerger run`` tells the person who started it.

In development: one human line per component as it comes up (PostgreSQL, Redis, RabbitMQ, the
stand-ins, then each app and worker once its ``/ready`` says so), and a final "ready" line with
the addresses it really listens on, printed only once the whole of ``/ready`` answers 200. The
start-up's informational logs are held back meanwhile (warnings and errors still show); after it,
logging is as configured (until it stops). In production the same facts are logged, nothing printed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TextIO

from mailmerger.allinone import PrefixRouter
from mailmerger_shared.settings import HttpSettings

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_PATIENCE_SECONDS = 15.0  # then say what is still not ready, and again after as long


class Console:
    def __init__(self, out: TextIO, *, development: bool) -> None:
        self._out = out
        self.development = development
        self.serving = False  # the servers run: a signal now stops them gracefully
        self.stop = asyncio.Event()
        self._root_level: int | None = None

    def _print(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def starting(self, http: HttpSettings) -> None:
        if not self.development:
            log.info("starting", extra={"public_url": http.public_url})
            return
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(max(root.level, logging.WARNING))
        self._print("MailMerger is starting (MM_ENVIRONMENT=development; Ctrl-C stops it):")

    def component(self, line: str) -> None:
        """One component is up (or, while waiting, what it waits for)."""
        if self.development:
            self._print(f"  {line}")
        else:
            log.info(line)

    async def until_ready(
        self, router: PrefixRouter, sockets: list[socket.socket], http: HttpSettings, notes: list[str]
    ) -> None:
        """Announce each app and worker as it becomes ready, then the whole system."""
        loop = asyncio.get_running_loop()
        announced: set[str] = set()
        patience = loop.time() + _PATIENCE_SECONDS
        while True:
            ok, services = await router.ready()
            for name, state in services.items():
                if state["ready"] and name not in announced:
                    announced.add(name)
                    self.component(f"{name:<16} ready")
            if ok:
                break
            if loop.time() > patience:
                waiting = ", ".join(
                    f"{name} ({_reason(services[name])})" for name in services if name not in announced
                )
                self.component(f"still waiting for {waiting}")
                patience = loop.time() + _PATIENCE_SECONDS
            await asyncio.sleep(_POLL_SECONDS)
        self._ready(sockets, http, notes)

    def _ready(self, sockets: list[socket.socket], http: HttpSettings, notes: list[str]) -> None:
        public, internal = (_address(sock) for sock in sockets)
        gateway = http.public_url.rstrip("/")
        lines = [
            f"gateway          {gateway}  (listening on {public}; /ready answers 200)",
            f"API docs         {gateway}/schema/<service>  (auth, templates, queue, storage)",
            f"internal API     {internal}/internal/<service>/...  (loopback only)",
            *notes,
            "first campaign   uv run mailmerger demo",
        ]
        if not self.development:
            log.info("ready", extra={"public_url": gateway, "listening_on": public, "internal": internal})
            return
        self._print(f"MailMerger is ready at {gateway}")
        for line in lines:
            self._print(f"  {line}")
        if self._root_level is not None:
            logging.getLogger().setLevel(self._root_level)
            self._root_level = None

    def say_stopping(self) -> None:
        if self.development:
            root = logging.getLogger()  # the servers' and workers' goodbyes, as their hellos
            root.setLevel(max(root.level, logging.WARNING))
            self._print("MailMerger is stopping...")
        else:
            log.info("stopping")

    def say_stopped(self) -> None:
        if self.development:
            self._print("MailMerger stopped.")
        else:
            log.info("stopped")


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _reason(state: dict[str, object]) -> str:
    checks = state.get("checks")
    if isinstance(checks, dict):
        failing = [f"{name}: {value}" for name, value in checks.items() if value != "ok"]
        if failing:
            return "; ".join(failing)
    return str(state.get("error") or state.get("status") or "not ready")

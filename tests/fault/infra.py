"""Private infrastructure the fault suite may kill: its own RabbitMQ node, PostgreSQL cluster and Redis.

The machine's shared servers (5432, 5672, 6379) are never touched. Every class here starts its
server on free ports in a temp directory and can stop, restart or kill it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this run.

    The servers bind their ports later, so a port released by its probe could be handed out
    twice (seen once: the private PostgreSQL and the emulator got the same one, and the suite hung).
    """
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _wait(check: Any, timeout: float, what: str) -> None:
    """Poll a synchronous check (start-up of a server the test owns, before any event loop work)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not up within {timeout}s")
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class PrivateRabbit:
    """A RabbitMQ node of its own (no plugins), controlled with ``rabbitmqctl -n``."""

    def __init__(self, base: Path) -> None:
        self.node = f"mm-chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = base
        (base / "mnesia").mkdir(parents=True, exist_ok=True)
        (base / "log").mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        # rabbitmq-server started by root runs the node as the rabbitmq user.
        for path in (base, base / "mnesia", base / "log", base / "enabled_plugins"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "none"),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        return done.stdout.decode()

    def start(self) -> None:
        with (self.base / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["rabbitmq-server"],
                env=self.env,
                cwd=self.base,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _wait(lambda: _port_open(self.port), 90, "private RabbitMQ")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.ctl("shutdown", timeout=60)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.process.pid, 9)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def consumers(self) -> dict[str, int]:
        """Consumers per queue, by queue name."""
        lines = self.ctl("list_queues", "name", "consumers", "--no-table-headers").splitlines()
        counts: dict[str, int] = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
        return counts


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own, owned by the postgres user, restartable with ``-m immediate``."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.data = base / "data"
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        shutil.chown(base, "postgres", "postgres")
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/mailmerger"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120
        )

    def init(self) -> None:
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nfull_page_writes = off\nmax_connections = 200\n")
        self.start()
        self._as_postgres(
            str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mailmerger"
        )

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        log = str(self.base / "server.log")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", *args)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart_immediate(self) -> None:
        self._ctl("restart", "-m", "immediate")


class PrivateRedis:
    """A redis-server of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
        )
        _wait(lambda: _port_open(self.port), 20, "private Redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


_EMULATOR = """
import sys, uvicorn
from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
uvicorn.run(create_app(load(GoogleEmulatorSettings)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", loop="uvloop", http="httptools")
"""


class Process:
    """A service process (``python -m …``) that the suite can kill and start again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.args], env=self.env, stdout=self._log, stderr=self._log
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        self._close_log()

    def restart_if_exited(self) -> bool:
        """What a supervisor (compose's ``restart: unless-stopped``) does for a process that exited
        by itself, as a sender does when its consumer stalls; killed or stopped ones stay down."""
        if self.process is None or self.process.poll() is None:
            return False
        self._close_log()
        self.start()
        return True

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def emulator_process(port: int, logs: Path) -> Process:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MM_")}
    env.update({"MM_EMULATOR_PUBLIC_URL": f"http://127.0.0.1:{port}", "MM_EMULATOR_QUOTAS_ENABLED": "false"})
    return Process("emulator", ["-c", _EMULATOR, str(port)], env, logs)


class FakeAuth:
    """auth's internal access-token route, answered with real emulator tokens (a thread, a real socket).

    ``accounts`` maps account id → (user id, Gmail address). ``GET`` answers auth's JWKS.
    """

    def __init__(
        self,
        emulator_url: str,
        accounts: dict[int, tuple[int, str]],
        scopes: list[str],
        jwks: dict[str, Any],
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._emulator = httpx.Client(base_url=emulator_url, timeout=10)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(200, jwks)

            def do_POST(self) -> None:
                body = fake.answer(self.path)
                self._reply(200 if body is not None else 404, body or {"status": 404, "title": "Not found"})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                payload = httpx.Response(status, json=body).content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.accounts = accounts
        self.scopes = scopes
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, path: str) -> dict[str, Any] | None:
        parts = path.rstrip("/").split("/")
        try:
            account_id = int(parts[-2])
        except (IndexError, ValueError):
            return None
        if account_id not in self.accounts:
            return None
        user_id, email = self.accounts[account_id]
        with self._lock:
            minted = self._emulator.post("/_emulator/tokens", json={"email": email, "scopes": self.scopes})
        minted.raise_for_status()
        token = minted.json()
        expires = datetime.now(UTC) + timedelta(seconds=int(token["expires_in"]))
        return {
            "account_id": account_id,
            "user_id": user_id,
            "email": email,
            "display_name": None,
            "access_token": token["access_token"],
            "expires_at": expires.isoformat(),
            "scopes": self.scopes,
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._emulator.close()

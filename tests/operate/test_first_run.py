"""`mailmerger run` as a newcomer starts it: a `.env` copied from `.env.example`, moved off port 8080
by MM_HTTP_PORT alone, then used through the CLI, stopped with Ctrl-C and started again."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mailmerger import account_cli, mailmerge_cli
from mailmerger.apiclient import Api
from tests.conftest import RUN_ID
from tests.operate.conftest import private_database, private_vhost
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
READY = "MailMerger is ready at "
# One line each while it starts: the infrastructure, the stand-ins, every app and worker.
COMPONENTS = (
    "PostgreSQL", "Redis", "RabbitMQ", "local S3", "Google emulator",
    "auth", "templates", "queue", "storage", "queue-dispatcher", "sender-worker",
)  # fmt: skip


def free_base_port() -> int:
    """A port that is free, and so are the next two (the internal listener's and the local S3's)."""
    while True:
        base = free_port()
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", base + 1))
                two.bind(("127.0.0.1", base + 2))
        except OSError:
            continue
        return base


class FirstRun:
    """The ``mailmerger run`` process, its output line by line, and whether /ready answered 200 at
    the moment it printed that it was ready."""

    def __init__(self, workdir: Path, env: dict[str, str], base: int) -> None:
        self.workdir, self.env, self.base = workdir, env, base
        self.base_url = f"http://127.0.0.1:{base}"
        self.lines: list[str] = []
        self.ready_status: int | None = None
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.lines, self.ready_status = [], None
        self._ready.clear()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mailmerger.cli", "run"],
            env={**os.environ, **self.env},
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout=120) or self.ready_status is None:
            self.stop()
            raise AssertionError("mailmerger run did not become ready:\n" + "\n".join(self.lines))

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(READY):
                self.ready_status = httpx.get(f"{self.base_url}/ready", timeout=10).status_code
                self._ready.set()
        self._ready.set()  # it exited: stop waiting

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; its exit code."""
        process = self._process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def starting_lines(self) -> list[str]:
        return self.lines[: next(i for i, line in enumerate(self.lines) if line.startswith(READY))]


@pytest.fixture(scope="module")
async def first_run_infrastructure() -> AsyncIterator[dict[str, str]]:
    """A database and vhost of its own: no other all-in-one of the run may share its ledger."""
    vhosts = private_vhost("first_run")
    amqp_url = next(vhosts)
    async for database_url in private_database("first_run"):
        yield {
            "MM_DB_URL": database_url,
            "MM_AMQP_URL": amqp_url,
            "MM_REDIS_KEY_PREFIX": f"mm_test_{RUN_ID}_first_run:",
        }
    next(vhosts, None)


@pytest.fixture(scope="module")
def first_run(
    first_run_infrastructure: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FirstRun]:
    workdir = tmp_path_factory.mktemp("newcomer")
    shutil.copy(ROOT / ".env.example", workdir / ".env")  # what `make run` does on a fresh machine
    base = free_base_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("MM_")}
    run = FirstRun(workdir, {**env, **first_run_infrastructure, "MM_HTTP_PORT": str(base)}, base)
    run.start()
    yield run
    run.stop()


def test_one_base_port_moves_every_address_and_the_banner_prints_them(first_run: FirstRun) -> None:
    """MM_HTTP_PORT alone: the gateway, internal API and local S3 listen on it, +1 and +2, the banner
    says so, and tokens verify (the JWKS address followed the port)."""
    base, banner = first_run.base, "\n".join(first_run.lines)
    assert f"{READY}http://127.0.0.1:{base}" in banner
    assert f"internal API     http://127.0.0.1:{base + 1}/internal/" in banner
    assert f"local S3 (moto)  http://127.0.0.1:{base + 2}" in banner
    discovery = httpx.get(f"{first_run.base_url}/google/.well-known/openid-configuration", timeout=10)
    assert discovery.json()["issuer"] == f"http://127.0.0.1:{base}/google"
    api = Api(first_run.base_url)
    try:
        api.sign_up_confirmed(f"port-{uuid.uuid4().hex[:8]}@example.org", "a long enough passphrase", "Port")
        assert api.http.get("/v1/templates/").status_code == 200
    finally:
        api.close()


def test_start_up_prints_one_human_line_per_component_then_ready_once_ready(first_run: FirstRun) -> None:
    """No JSON log line before the ready line, one line naming each component, and /ready answered
    200 when the ready line appeared."""
    starting = first_run.starting_lines()
    assert not [line for line in starting if line.lstrip().startswith("{")], starting
    for component in COMPONENTS:
        assert len([line for line in starting if line.startswith(f"  {component} ")]) == 1, (
            component,
            starting,
        )
    assert first_run.ready_status == 200


def cli(command: str, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    if command == "send":
        code = mailmerge_cli.main(list(argv), out=out)
    else:
        code = account_cli.main(command, list(argv), out=out)
    return code, out.getvalue()


def test_after_a_restart_send_says_the_emulator_forgot_the_account_and_connect_recovers(
    first_run: FirstRun,
) -> None:
    """Login and connect from the CLI, Ctrl-C and start again: send names the forgotten Gmail account
    and the command that reconnects it; after `connect` the same send goes out."""
    tag = uuid.uuid4().hex[:8]
    email, gmail, url = f"restart-{tag}@example.org", f"restart-{tag}@gmail.local", first_run.base_url
    assert (
        cli("login", "--url", url, "--sign-up", "--email", email, "--password", "a long passphrase")[0] == 0
    )
    assert cli("connect", "--url", url, "--gmail", gmail)[0] == 0
    assert first_run.stop() == 0
    first_run.start()
    send = ("send", "--template", str(EXAMPLES / "template.html"), "--csv", str(EXAMPLES / "recipients.csv"))
    send += ("--limit", "2", "--no-dry-run", "--url", url, "--timeout", "60")
    code, out = cli(*send)
    assert code == 1
    assert out.splitlines() == [
        f"mailmerger send: the Google emulator no longer knows {gmail}: it keeps its accounts and grants in "
        f"memory, so restarting `make run` forgot them; run `mailmerger connect --gmail {gmail}`, then this "
        "command again"
    ]
    assert cli("connect", "--url", url, "--gmail", gmail)[0] == 0
    code, out = cli(*send)
    assert code == 0, out
    assert "2 sent, 0 failed" in out

"""The whole system, in either topology, and the steps a user takes through its gateway.

``SystemUnderTest`` runs the all-in-one (every service, the dispatcher, a sender, the Google
emulator and a local S3) on free loopback ports in a thread of its own, with its own event loop,
so the tests reach it over real HTTP exactly as a client would. ``SplitSystem`` runs the compose
topology instead (``mailmerger run-split``: every service, 2 dispatchers and 3 sender workers as
processes of their own behind nginx), as a subprocess whose state file names each process.
Both offer ``base_url`` (the gateway), ``emulator_url`` and ``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import uvicorn

from mailmerger.allinone import PrefixRouter
from mailmerger.serve import build_all_in_one
from mailmerger.standins import StandIns
from mailmerger_shared.serving import server_config
from tests.support import eventually, mailed_token

# Lines of run-split's log worth showing whatever the tail holds: its own, and errors.
_NOTABLE = re.compile(r"^run-split |failed with|exited with|starting it again|Traceback|ERROR|CRITICAL")

# A minimal valid PDF: storage sniffs the magic bytes and the trailer.
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def system_environment(service_env: Mapping[str, str], port: int) -> dict[str, str]:
    """The run's infrastructure, plus the gateway's port."""
    public_url = f"http://127.0.0.1:{port}"
    return {
        **service_env,
        "MM_HTTP_HOST": "127.0.0.1",
        "MM_HTTP_PORT": str(port),
        "MM_HTTP_PUBLIC_URL": public_url,
        "MM_JWT_JWKS_URL": f"{public_url}/v1/auth/.well-known/jwks.json",
        "MM_EMULATOR_AUTO_APPROVE": "true",
        # Cheaper password hashing (still within the settings' lower bounds) keeps sign-ups quick.
        "MM_AUTH_ARGON2_MEMORY_KIB": str(19 * 1024),
        "MM_AUTH_ARGON2_TIME_COST": "2",
        "MM_AUTH_ARGON2_PARALLELISM": "1",
        # Every test user signs up (and mails a confirmation) from 127.0.0.1: the per-address limit
        # is for one client guessing or mailing on a real network, not for the whole suite.
        "MM_AUTH_LOGIN_ATTEMPTS_PER_ADDRESS": "1000000",
        # Accounts beyond Gmail's real quota (the emulator's is raised to match by the journey), so a
        # 1,000-recipient campaign takes seconds: the default pace of new accounts, and the sender's
        # guard.
        "MM_DISPATCH_PER_MINUTE_LIMIT": "60000",
        "MM_SENDER_ACCOUNT_SENDS_PER_MINUTE": "60000",
        "MM_DISPATCH_TICK_SECONDS": "0.2",
        "MM_DISPATCH_BATCH_SIZE": "500",
        "MM_COMPOSE_PROGRESS_INTERVAL_SECONDS": "0.5",
        # Webhook receivers of the tests listen on this machine (the development allowlist), and a
        # receiver that was down is retried within seconds, not the production schedule's minutes.
        "MM_WEBHOOKS_ALLOWED_HOSTS": "127.0.0.1",
        "MM_WEBHOOKS_RETRY_SCHEDULE_SECONDS": "[1, 2, 4, 8, 10, 10, 10, 10, 10, 10, 10, 10]",
        # Sequences in seconds: an hour of a follow-up's delay lasts 4 s, the emulator answers
        # (replies.example.com, bounces.example.com, ooo.example.com) a second after a message
        # arrives, and the mailbox watcher looks every second.
        "MM_GOOGLE_METADATA_TIER": "true",
        "MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS": "4",
        "MM_EMULATOR_INCOMING_DELAY_SECONDS": "1",
        "MM_WATCHER_POLL_SECONDS": "1",
    }


class RunningSystem(Protocol):
    """What the journeys need of a running system, in either topology."""

    @property
    def topology(self) -> str: ...
    @property
    def base_url(self) -> str: ...  # the gateway
    @property
    def emulator_url(self) -> str: ...  # the Google emulator's own routes (OAuth, Gmail, /_emulator)
    @property
    def env(self) -> dict[str, str]: ...


class SystemUnderTest:
    """The all-in-one behind a public port (the gateway) and an internal one, in its own thread."""

    topology: ClassVar[str] = "all-in-one"

    def __init__(self, service_env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.internal_port = free_port()
        self.env = system_environment(service_env, self.port)
        self.base_url = f"http://127.0.0.1:{self.port}"
        # The all-in-one mounts the emulator under /google on its public port.
        self.emulator_url = f"{self.base_url}/google"
        self.internal_url = f"http://127.0.0.1:{self.internal_port}"
        # The credential each calling service presents to internal routes.
        self.credentials = {
            "queue": self.env["MM_INTERNAL_QUEUE_TOKEN"],
            "sender": self.env["MM_INTERNAL_SENDER_TOKEN"],
        }
        self.public: PrefixRouter
        self.stand_ins: StandIns
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        self.public, internal, _http, self.stand_ins = build_all_in_one(
            self.env, local_s3_port=free_port(), internal_port=self.internal_port
        )
        public_config = server_config(self.public, "127.0.0.1", self.port)
        internal_config = server_config(internal, "127.0.0.1", self.internal_port, lifespan="off")
        for config in (public_config, internal_config):
            config.timeout_graceful_shutdown = 5
        self._servers = [uvicorn.Server(public_config), uvicorn.Server(internal_config)]
        self._thread = threading.Thread(target=self._run, name="system-under-test", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def serve() -> None:
            # The internal listener serves the same app objects, started by the public lifespan;
            # nothing calls it before the system reports ready (``started`` and /ready).
            await asyncio.gather(*(server.serve() for server in self._servers))

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by wait_until_started / stop
            self._failure = exc

    @property
    def started(self) -> bool:
        if self._failure is not None:
            raise RuntimeError("the system under test failed to start") from self._failure
        return all(server.started for server in self._servers)

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.stand_ins.stop()


class SplitSystem:
    """``mailmerger run-split`` as a subprocess: the compose topology behind nginx on ``port``.

    Its output goes to ``log_file``; its state file names every process's pid, port and number of
    starts (the supervisor restarts a process that exits). ``extra_env`` tunes the run further
    (the fault run slows the campaign's pace).
    """

    topology: ClassVar[str] = "split"

    def __init__(
        self, service_env: Mapping[str, str], workdir: Path, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.env = {**system_environment(service_env, self.port), **(extra_env or {})}
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.credentials = {
            "queue": self.env["MM_INTERNAL_QUEUE_TOKEN"],
            "sender": self.env["MM_INTERNAL_SENDER_TOKEN"],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_file = workdir / "run-split.json"
        self.log_file = workdir / "run-split.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")} | self.env
        command = [sys.executable, "-m", "mailmerger.cli", "run-split", "--port", str(self.port)]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [*command, "--state", str(self.state_file)], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def state(self) -> dict[str, Any]:
        """The supervisor's state file as it stands ({} before it is first written)."""
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        return state

    def process(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.state()["processes"][name]
        return found

    @property
    def ready(self) -> bool:
        """Whether every process answers its ready path; raises if run-split itself exited."""
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"run-split exited with {self._process.returncode}")
        return bool(self.state().get("ready"))

    @property
    def emulator_url(self) -> str:
        """The emulator on its own port (not under /google in this topology)."""
        return f"http://127.0.0.1:{self.process('google')['port']}"

    def log_tail(self, lines: int = 120) -> str:
        """The supervisor's own lines and every error line, then the last ``lines`` of the log."""
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no run-split log)"
        notable = [line for line in text if _NOTABLE.search(line)]
        return "\n".join(
            [
                "--- supervisor and errors (last 60):",
                *notable[-60:],
                f"--- last {lines} lines:",
                *text[-lines:],
            ]
        )

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM to run-split (it stops every process, killing any still up after 30 s); after
        ``grace`` seconds run-split and whatever it left are killed."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
            for entry in self.state().get("processes", {}).values():
                if entry.get("pid"):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(entry["pid"], signal.SIGKILL)


# --- a user's steps ----------------------------------------------------------------------------


@dataclass
class User:
    """A signed-up user and the client that carries their token."""

    email: str
    password: str
    client: httpx.AsyncClient
    access_token: str
    refresh_token: str
    user_id: int
    account_id: int | None = None
    gmail: str | None = None

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.org"


async def sign_up(system: RunningSystem, prefix: str = "user") -> User:
    """Sign up through the gateway and confirm the address with the link mailed through the
    emulator's system account: the session that link starts."""
    email, password = unique_email(prefix), "correct horse battery staple"
    client = httpx.AsyncClient(base_url=system.base_url, timeout=30.0)
    response = await client.post(
        "/v1/auth/signup", json={"email": email, "password": password, "name": prefix.title()}
    )
    assert response.status_code == 202, response.text
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=30.0) as emulator:
        token = await mailed_token(emulator, email, "/v1/auth/email/confirm")
    confirmed = await client.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    session = confirmed.json()
    client.headers["Authorization"] = f"Bearer {session['access_token']}"
    return User(
        email=email,
        password=password,
        client=client,
        access_token=session["access_token"],
        refresh_token=session["refresh_token"],
        user_id=session["user_id"],
    )


async def follow_connect_url(base_url: str, url: str, gmail: str) -> str:
    """Open a connect URL in a fresh "browser" (a cookie jar) that picks Google account ``gmail``.

    Returns the final frontend URL (``…/oauth-finish#…``).
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as browser:
        response = await browser.get(url)
        assert response.status_code == 302, response.text
        google = urlsplit(response.headers["location"])
        # The account chooser: the emulator auto-approves the hinted account.
        query = {**{k: v[0] for k, v in parse_qs(google.query).items()}, "login_hint": gmail}
        response = await browser.get(urlunsplit(google._replace(query=urlencode(query))))
        assert response.status_code in (302, 303), response.text
        response = await browser.get(response.headers["location"])  # back to our callback
        assert response.status_code == 302, response.text
        finish: str = response.headers["location"]
        return finish


async def connect_gmail(user: User, base_url: str, *, reply_detection: bool = False) -> int:
    """Connect a fresh emulated Gmail account to ``user`` (with gmail.metadata when
    ``reply_detection``); returns the account id once the queue knows it as a sender."""
    gmail = f"sender-{uuid.uuid4().hex[:10]}@gmail.local"
    body = {"reply_detection": True} if reply_detection else None
    response = await user.client.post("/v1/auth/google/connect-tickets", json=body)
    assert response.status_code == 201, response.text
    finish = await follow_connect_url(base_url, response.json()["url"], gmail)
    assert "#at=" in finish, finish

    async def sender_known() -> int | None:
        senders = (await user.client.get("/v1/senders/")).json()
        return next((s["account_id"] for s in senders if s["email"] == gmail), None)

    user.account_id = await eventually(sender_known, timeout=20)
    user.gmail = gmail
    return user.account_id


async def upload_and_launch(user: User, campaign_id: int, addresses: list[str]) -> None:
    """Upload ``addresses`` as the draft campaign's list (columns ``email`` and ``name``: N0, N1…,
    rows numbered from 1 in this order) and launch it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name"])
    writer.writerows([address, f"N{i}"] for i, address in enumerate(addresses))
    uploaded = await user.client.put(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=buffer.getvalue().encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 200, uploaded.text
    launched = await user.client.post(f"/v1/campaigns/{campaign_id}/launch", json={})
    assert launched.status_code == 200, launched.text


async def emulator_messages(emulator_url: str, gmail: str) -> list[dict[str, Any]]:
    """Every message the emulated mailbox ``gmail`` holds (its sent mail, as delivered)."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30.0) as client:
        response = await client.get("/_emulator/messages", params={"user": gmail})
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def emulator_counts(emulator_url: str, gmail: str | None = None) -> dict[str, Any]:
    """Copies per Message-ID held by the emulator (of ``gmail``'s mailbox, or of every mailbox)."""
    params = {"user": gmail} if gmail else {}
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30.0) as client:
        response = await client.get("/_emulator/messages/counts", params=params)
    assert response.status_code == 200, response.text
    counts: dict[str, Any] = response.json()
    return counts


def header(message: Mapping[str, Any], name: str) -> list[str]:
    return [h["value"] for h in message["headers"] if h["name"].lower() == name.lower()]

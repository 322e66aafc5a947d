"""Building blocks of the auth service's tests: a movable clock, a recording transport to the
Google emulator, the browser's side of the OAuth dance, and reading the ``auth`` schema."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailmerger_auth.letters import CONFIRM_PATH
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import messages_of
from mailmerger_shared.web.internal import caller_headers
from tests.support import eventually, mailed_token

M = TypeVar("M", bound=c.Message)
Sessions = async_sessionmaker[AsyncSession]

PUBLIC_URL = "http://127.0.0.1:8080"
FRONTEND_URL = "http://localhost:5173"
GOOGLE_URL = "http://127.0.0.1:8090"
PASSWORD = "correct horse battery staple"


class MovableClock:
    """Real time plus an offset a test can change (and the harness puts back after each test)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def shift(self, delta: timedelta) -> None:
        self.offset += delta

    def reset(self) -> None:
        self.offset = timedelta()


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Carries auth's calls to the emulator and remembers them: what a test asks Google saw."""

    app: Litestar
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    token_responses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._inner = httpx.ASGITransport(app=self.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        form = dict(parse_qsl(body.decode())) if body else {}
        self.requests.append((request.url.path, form))
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/token":
            content = await response.aread()
            self.token_responses.append(json.loads(content))
            return httpx.Response(response.status_code, headers=response.headers, content=content)
        return response

    def refreshes(self) -> int:
        return sum(
            1
            for path, form in self.requests
            if path == "/token" and form.get("grant_type") == "refresh_token"
        )


@dataclass
class Harness:
    """One running auth app, the browser/client that talks to it, and what it runs against."""

    app: Litestar
    client: httpx.AsyncClient
    settings: AuthSettings
    clock: MovableClock
    google: RecordingTransport
    emulator: httpx.AsyncClient  # the tests' own way into the emulator (admin routes, revocation)
    engine: AsyncEngine

    def caller_headers(self, caller: str) -> dict[str, str]:
        """What the ``queue`` or the ``sender`` presents to auth's internal routes."""
        credentials = {
            "queue": self.settings.queue_credential.queue_token,
            "sender": self.settings.sender_credential.sender_token,
        }
        return caller_headers(caller, credentials[caller])


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read the way the legacy client reads it (base64 of the middle part)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(auth: Harness, email: str | None = None, *, name: str = "Ada") -> dict[str, Any]:
    """Sign up and confirm the address with the mailed link: the session that link starts."""
    email = email or unique_email()
    response = await auth.client.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 202, response.text
    token = await mailed_token(auth.emulator, email.strip().lower(), CONFIRM_PATH)
    confirmed = await auth.client.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    session: dict[str, Any] = confirmed.json()
    return session


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=parts.query + "&" + urlencode(params)))


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def fragment_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).fragment).items()}


@dataclass
class GoogleRoundTrip:
    """The browser's journey: our authorize route, Google's consent (auto-approved), our callback."""

    start: httpx.Response  # our 302 to Google
    google: httpx.Response  # Google's 302 back to our callback
    callback_url: str
    finish: httpx.Response | None = None  # our 302 to the frontend

    @property
    def fragment(self) -> dict[str, str]:
        assert self.finish is not None
        return fragment_of(self.finish.headers["location"])


async def google_round_trip(
    harness: Harness, authorize_path: str, *, google_account: str, complete: bool = True
) -> GoogleRoundTrip:
    """Follow the redirects as a browser would; ``google_account`` is the account the user picks."""
    start = await harness.client.get(authorize_path)
    assert start.status_code == 302, start.text
    google = await harness.emulator.get(with_query(start.headers["location"], login_hint=google_account))
    assert google.status_code == 302, google.text
    trip = GoogleRoundTrip(start=start, google=google, callback_url=google.headers["location"])
    if complete:
        trip.finish = await harness.client.get(trip.callback_url)
        assert trip.finish.status_code == 302, trip.finish.text
    return trip


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def next_event(queue: aio_pika.abc.AbstractQueue, kind: type[M], matches: Callable[[M], bool]) -> M:
    """The first ``kind`` event on the tests' queue that ``matches``; others are acked and skipped."""

    async def found() -> M | None:
        message = await queue.get(fail=False)
        if message is None:
            return None
        await message.ack()
        if message.type != kind.TAG:
            return None
        return next(
            (event for event, _ in messages_of(message) if isinstance(event, kind) and matches(event)), None
        )

    return await eventually(found, timeout=15)

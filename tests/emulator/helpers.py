"""Building blocks for the emulator's tests: messages, PKCE pairs, OAuth round trips."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec

from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import DEV_SYSTEM_MAIL_ADDRESS, load

PUBLIC_URL = "http://127.0.0.1:8090"
CLIENT_ID = "mailmerger-dev"
CLIENT_SECRET = "mailmerger-dev-secret"
REDIRECT_URI = "http://127.0.0.1:8080/v1/auth/google/callback"
SENDER = "alice@gmail.local"

GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"


# ``make_emulator(**settings_overrides)`` from conftest.py.
MakeEmulator = Callable[..., Awaitable[httpx.AsyncClient]]


def emulator_settings(**overrides: Any) -> GoogleEmulatorSettings:
    """The defaults with ``overrides``, validated like settings read from the environment."""
    defaults = msgspec.to_builtins(load(GoogleEmulatorSettings, {}))
    return msgspec.convert({**defaults, **overrides}, GoogleEmulatorSettings)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_message(
    *,
    sender: str | None = SENDER,
    to: Sequence[str] = ("bob@example.com",),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str = "Hello",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    text: str = "Hi Bob,\nsee the attachment.",
    html: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    message = EmailMessage()
    if sender is not None:
        message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)
    message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    if in_reply_to is not None:
        message["In-Reply-To"] = in_reply_to
    if references is not None:
        message["References"] = references
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        filename, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes()


def encode_raw(raw: bytes) -> str:
    """Gmail's ``raw``: base64url without padding."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def redirect_query(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location (first value of each)."""
    return {key: values[0] for key, values in parse_qs(urlsplit(response.headers["location"]).query).items()}


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": f"openid email profile {GMAIL_SEND}",
        "state": "state-123",
        "access_type": "offline",
    }
    params.update(overrides)
    return params


async def authorization_code(client: httpx.AsyncClient, **params: str) -> str:
    """A code from an auto-approving emulator."""
    answer = await client.get("/o/oauth2/v2/auth", params=authorize_params(**params))
    assert answer.status_code == 302, answer.text
    return redirect_query(answer)["code"]


async def exchange_code(client: httpx.AsyncClient, code: str, **form: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    data.update(form)
    return await client.post("/token", data=data)


async def mint_token(
    client: httpx.AsyncClient, email: str = SENDER, scopes: Sequence[str] = (GMAIL_SEND, GMAIL_READONLY)
) -> str:
    """An access token for ``email`` without the browser round trip."""
    answer = await client.post("/_emulator/tokens", json={"email": email, "scopes": list(scopes)})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send(
    client: httpx.AsyncClient, token: str, raw: bytes, *, thread_id: str | None = None, user_id: str = "me"
) -> httpx.Response:
    body: dict[str, Any] = {"raw": encode_raw(raw)}
    if thread_id is not None:
        body["threadId"] = thread_id
    return await client.post(f"/gmail/v1/users/{user_id}/messages/send", json=body, headers=bearer(token))


async def people(emulator: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The emulator's users, without the system's own mail account it holds from the start."""
    users: list[dict[str, Any]] = (await emulator.get("/_emulator/users")).json()["users"]
    return [user for user in users if user["email"] != DEV_SYSTEM_MAIL_ADDRESS]

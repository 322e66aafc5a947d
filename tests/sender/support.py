"""Fakes and helpers for the sender's tests: auth's token route, Gmail's transport, storage, time."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from mailmerger_sender.adapters.attachments import BlobMissing
from mailmerger_shared import contracts as c
from mailmerger_shared.internal_api import AccessTokenRequest, GmailAccessToken

SCOPE = "https://www.googleapis.com/auth/"
SEND = SCOPE + "gmail.send"
READONLY = SCOPE + "gmail.readonly"
METADATA = SCOPE + "gmail.metadata"

_ids = itertools.count(random.randrange(10**9, 2 * 10**9, 10**5))


def next_id() -> int:
    """Ids unique within the run, so tests sharing the database never see each other's rows."""
    return next(_ids)


@dataclass(frozen=True)
class Account:
    account_id: int
    user_id: int
    email: str
    scopes: tuple[str, ...]
    display_name: str | None = None


class FakeAuth:
    """auth's ``POST /internal/auth/gmail-accounts/{id}/access-token``, at the transport.

    Tokens are minted by the emulator's admin API, so Gmail accepts them; ``refusing`` accounts
    are answered 409 ``reconnect_required``; ``stale`` accounts keep getting a revoked token.
    """

    def __init__(self, emulator_url: str) -> None:
        self._emulator = httpx.AsyncClient(base_url=emulator_url, timeout=10)
        self.accounts: dict[int, Account] = {}
        self.refusing: set[int] = set()
        self.stale: dict[int, str] = {}
        self.calls: Counter[int] = Counter()
        self.named_refused: list[str | None] = []  # each request's ``refused``, in order

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._answer)

    async def register(self, account: Account) -> Account:
        created = await self._emulator.post(
            "/_emulator/users", json={"email": account.email, "name": account.display_name}
        )
        assert created.status_code in (201, 409), created.text
        self.accounts[account.account_id] = account
        return account

    async def mint(self, account: Account) -> tuple[str, int]:
        answer = await self._emulator.post(
            "/_emulator/tokens", json={"email": account.email, "scopes": list(account.scopes)}
        )
        answer.raise_for_status()
        body = answer.json()
        return str(body["access_token"]), int(body["expires_in"])

    async def revoke(self, token: str) -> None:
        (await self._emulator.post("/revoke", params={"token": token})).raise_for_status()

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        account_id = int(request.url.path.split("/")[-2])
        self.calls[account_id] += 1
        body = msgspec.json.decode(request.content or b"{}", type=AccessTokenRequest)
        self.named_refused.append(body.refused)
        if account_id in self.refusing:
            problem = {
                "title": "Conflict",
                "status": 409,
                "detail": "refresh refused",
                "reason": "reconnect_required",
            }
            return httpx.Response(409, json=problem)
        account = self.accounts.get(account_id)
        if account is None:
            return httpx.Response(
                404, json={"title": "Not found", "status": 404, "detail": "no such account"}
            )
        if account_id in self.stale:
            token, expires_in = self.stale[account_id], 3600
        else:
            token, expires_in = await self.mint(account)
        issued = GmailAccessToken(
            account_id=account_id,
            user_id=account.user_id,
            email=account.email,
            display_name=account.display_name,
            access_token=token,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            scopes=list(account.scopes),
        )
        return httpx.Response(200, content=msgspec.json.encode(issued))

    async def aclose(self) -> None:
        await self._emulator.aclose()


@dataclass
class Interception:
    """What to do with the next matching Gmail call instead of (or after) forwarding it."""

    path_contains: str
    forward: bool
    late: bool
    error: BaseException


@dataclass
class GmailWire:
    """A transport in front of the real one: records every call, can break the next ones."""

    inner: httpx.AsyncBaseTransport
    calls: list[httpx.Request] = field(default_factory=list)
    interceptions: list[Interception] = field(default_factory=list)
    late_calls: set[asyncio.Task[httpx.Response]] = field(default_factory=set)

    def transport(self) -> httpx.AsyncBaseTransport:
        wire = self

        class _Transport(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                return await wire.handle(request)

        return _Transport()

    def break_next(
        self, path_contains: str, error: BaseException, *, forward: bool, late: bool = False
    ) -> None:
        """The next call whose path contains ``path_contains`` raises ``error``: after reaching Gmail
        when ``forward`` (the send happened, its answer is lost), or while it is still on its way
        when ``late`` (Gmail acts on it after the caller gave up)."""
        self.interceptions.append(Interception(path_contains, forward, late, error))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        for interception in self.interceptions:
            if interception.path_contains in request.url.path:
                self.interceptions.remove(interception)
                if interception.late:
                    late = asyncio.create_task(self._forward_later(request))
                    self.late_calls.add(late)
                    late.add_done_callback(self.late_calls.discard)
                elif interception.forward:
                    response = await self.inner.handle_async_request(request)
                    await response.aread()
                raise interception.error
        return await self.inner.handle_async_request(request)

    async def _forward_later(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)  # after the caller's mailbox lookup
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response

    def sends(self) -> list[httpx.Request]:
        return [call for call in self.calls if call.url.path.endswith("/messages/send")]


class MemoryBlobs:
    """Object storage in memory; counts reads per key."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads: Counter[str] = Counter()

    def put(
        self, data: bytes, *, filename: str = "resume.pdf", content_type: str = "application/pdf"
    ) -> c.AttachmentRef:
        key = f"attachments/{uuid.uuid4().hex}"
        self.objects[key] = data
        return c.AttachmentRef(
            attachment_id=next_id(),
            object_key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            filename=filename,
            content_type=content_type,
            size=len(data),
        )

    async def read(self, key: str) -> bytes:
        self.reads[key] += 1
        await asyncio.sleep(0)  # a real read yields: concurrent readers overlap
        if key not in self.objects:
            raise BlobMissing(key)
        return self.objects[key]


class FakeClock:
    """Real time plus whatever the test skipped ahead."""

    def __init__(self) -> None:
        self.skipped = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += timedelta(seconds=seconds)


def send_email(account: Account, **overrides: Any) -> c.SendEmail:
    message_id = next_id()
    fields: dict[str, Any] = {
        "message_id": message_id,
        "user_id": account.user_id,
        "account_id": account.account_id,
        "from_address": account.email,
        "to": [f"Recipient {message_id} <r{message_id}@example.com>"],
        "subject": f"Hello {message_id}",
        "html": f"<p>Dear reader,</p><p>message {message_id}</p>",
        "rfc_message_id": f"<mm-{message_id}-{uuid.uuid4().hex[:8]}@mailmerger.test>",
    }
    fields.update(overrides)
    return c.SendEmail(**fields)


def envelope() -> c.Envelope:
    return c.Envelope.new(c.SendEmail.TAG)

"""Transports of the system's letters: the Gmail API (one Gmail account of the system) or SMTP.

Both carry the same bytes, written here and nowhere else: every header is ASCII of our own making.
The subject is always an RFC 2047 base64 encoded word and the body base64, so no text of a user
(their name in a greeting) can reach a header or end a line early, whatever Python's ``email``
package does at this patch level.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
import uuid
from datetime import datetime, timedelta
from email.utils import format_datetime

import httpx

from mailmerger_auth.adapters.google import GoogleError, GoogleOAuth
from mailmerger_auth.domain import Clock, is_plain_address
from mailmerger_auth.settings import SystemMailSettings
from mailmerger_auth.system_mail import Letter, LetterRefused

_WORD_BYTES = 45  # base64 of 45 bytes is 60 characters: with "=?utf-8?b??=" one word stays under 75


def encoded_words(text: str) -> str:
    """``text`` as RFC 2047 base64 encoded words, split on character boundaries, folded."""
    words, chunk = [], b""
    for char in text:
        encoded = char.encode()
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(word).decode()}?=" for word in words)


def letter_bytes(letter: Letter, *, sender: str, now: datetime) -> bytes:
    if not is_plain_address(letter.recipient):
        raise LetterRefused(
            f"the system mail transport sends only to plain ASCII addresses, not {letter.recipient!r}"
        )
    domain = sender.rsplit("@", 1)[1]
    body = base64.encodebytes(letter.body.encode()).decode().replace("\n", "\r\n")
    headers = [
        f"From: MailMerger <{sender}>",
        f"To: <{letter.recipient}>",
        f"Subject: {encoded_words(letter.subject)}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{uuid.uuid4()}@{domain}>",
        "Auto-Submitted: auto-generated",  # RFC 3834: out-of-office replies stay away
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")


class GmailMailer:
    """Sends as the system's Gmail account: its refresh token buys access tokens (kept until
    shortly before they expire), and ``messages.send`` takes the letter."""

    def __init__(
        self, settings: SystemMailSettings, google: GoogleOAuth, http: httpx.AsyncClient, clock: Clock
    ):
        self._settings = settings
        self._google = google
        self._http = http
        self._clock = clock
        self._access: tuple[str, datetime] | None = None

    async def send(self, letter: Letter) -> None:
        raw = base64.urlsafe_b64encode(
            letter_bytes(letter, sender=self._settings.from_address, now=self._clock())
        )
        url = self._settings.gmail_api_url.rstrip("/") + "/gmail/v1/users/me/messages/send"
        response = await self._http.post(
            url,
            json={"raw": raw.decode()},
            headers={"Authorization": f"Bearer {await self._access_token()}"},
            timeout=self._settings.timeout_seconds,
        )
        if response.status_code == 401:
            self._access = None  # revoked or expired early: the next attempt refreshes
        if response.status_code == 400:
            raise LetterRefused(f"Gmail refused the letter: {response.text[:300]}")
        if response.status_code != 200:
            raise RuntimeError(f"Gmail answered HTTP {response.status_code}: {response.text[:300]}")

    async def _access_token(self) -> str:
        if self._access is not None and self._access[1] - timedelta(seconds=60) > self._clock():
            return self._access[0]
        try:
            grant = await self._google.refresh(self._settings.gmail_refresh_token)
        except GoogleError as exc:
            raise RuntimeError(
                f"the system's Gmail account gave no access token ({exc}); "
                "check MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN"
            ) from exc
        self._access = (grant.access_token, grant.expires_at)
        return grant.access_token


class SmtpMailer:
    """Sends through the operator's SMTP relay (smtplib in a thread: a few letters an hour)."""

    def __init__(self, settings: SystemMailSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def send(self, letter: Letter) -> None:
        message = letter_bytes(letter, sender=self._settings.from_address, now=self._clock())
        await asyncio.to_thread(self._send, letter.recipient, message)

    def _send(self, recipient: str, message: bytes) -> None:
        s = self._settings
        assert s.smtp_host is not None, "checked by SystemMailSettings"
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.timeout_seconds, context=context)
            if s.smtp_security == "tls"
            else smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_seconds)
        )
        with smtp:
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password or "")
            try:
                smtp.sendmail(s.from_address, [recipient], message)
            except smtplib.SMTPRecipientsRefused as exc:
                raise LetterRefused(f"the SMTP relay refused {recipient}: {exc.recipients}") from exc

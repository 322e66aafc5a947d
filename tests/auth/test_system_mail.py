"""The system post and its transports: retries, refusals, the SMTP conversation, encoded subjects."""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from mailmerger_auth.adapters.system_mail import SmtpMailer, encoded_words, letter_bytes
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.settings import SystemMailSettings
from mailmerger_auth.system_mail import MAX_LETTER_AGE, Letter, LetterRefused, SystemPost, post_letter
from tests.auth.support import MovableClock, Sessions

SEALER = Sealer({"k1": bytes(32)}, "k1")
LETTER = Letter(
    recipient="ada@example.org", subject="Confirm your email address", body="Hello Ada,\nthe link"
)


class FlakyMailer:
    """Fails the first ``failures`` sends (or refuses every letter), then records what it sends."""

    def __init__(self, failures: int = 0, *, refuse: bool = False) -> None:
        self.failures = failures
        self.refuse = refuse
        self.sent: list[Letter] = []

    async def send(self, letter: Letter) -> None:
        if self.refuse:
            raise LetterRefused("no such mailbox")
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the relay is down")
        self.sent.append(letter)


@pytest.fixture
async def sessions(private_sessions: Sessions) -> AsyncIterator[Sessions]:
    """The auth-only database with no letter queued, before and after."""
    async with private_sessions.begin() as session:
        await session.execute(text("DELETE FROM auth.system_mail"))
    yield private_sessions
    async with private_sessions.begin() as session:
        await session.execute(text("DELETE FROM auth.system_mail"))


async def _queued(sessions: Sessions) -> list[tuple[int, str | None]]:
    async with sessions() as session:
        rows = await session.execute(text("SELECT attempts, last_error FROM auth.system_mail"))
        return [(row.attempts, row.last_error) for row in rows]


async def test_a_failed_letter_is_retried_after_a_backoff_and_then_sent(sessions: Sessions) -> None:
    """The first attempt fails: the letter stays with its error and is not due again at once."""
    clock = MovableClock()
    mailer = FlakyMailer(failures=1)
    post = SystemPost(sessions, SEALER, mailer, clock)
    async with sessions.begin() as session:
        await post_letter(session, SEALER, LETTER, now=clock())
    await post.deliver_due()
    assert await _queued(sessions) == [(1, "the relay is down")]
    await post.deliver_due()
    assert mailer.sent == []  # not due yet
    clock.shift(timedelta(seconds=3))
    await post.deliver_due()
    assert mailer.sent == [LETTER]
    assert await _queued(sessions) == []


async def test_a_refused_letter_is_dropped(sessions: Sessions) -> None:
    """A transport's final refusal is not retried."""
    clock = MovableClock()
    post = SystemPost(sessions, SEALER, FlakyMailer(refuse=True), clock)
    async with sessions.begin() as session:
        await post_letter(session, SEALER, LETTER, now=clock())
    await post.deliver_due()
    assert await _queued(sessions) == []


async def test_a_letter_older_than_its_links_is_dropped_after_a_failure(sessions: Sessions) -> None:
    """Past MAX_LETTER_AGE its links have expired: a failing letter is given up."""
    clock = MovableClock()
    post = SystemPost(sessions, SEALER, FlakyMailer(failures=10), clock)
    async with sessions.begin() as session:
        await post_letter(session, SEALER, LETTER, now=clock())
    clock.shift(MAX_LETTER_AGE)
    await post.deliver_due()
    assert await _queued(sessions) == []


def test_a_long_non_ascii_subject_becomes_short_encoded_words_that_read_back() -> None:
    """Every word fits RFC 2047's 75 characters, and decoding gives the subject back."""
    subject = "Bestätigen Sie Ihre E-Mail-Adresse — 确认您的电子邮件地址 " * 3
    folded = encoded_words(subject)
    assert all(len(word.strip()) <= 75 for word in folded.split("\r\n"))
    decoded = "".join(
        part.decode(charset) if isinstance(part, bytes) else part
        for part, charset in email.header.decode_header(folded.replace("\r\n", ""))
        if charset
    )
    assert decoded == subject


def test_a_recipient_that_is_not_a_plain_address_is_refused() -> None:
    """No quoting, no blanks, no line breaks: such a recipient is refused for good."""
    with pytest.raises(LetterRefused):
        letter_bytes(
            Letter(recipient="a@b.org\r\nBcc: x@y.org", subject="s", body="b"),
            sender="system@example.org",
            now=datetime.now(UTC),
        )


async def test_the_smtp_transport_speaks_to_a_relay() -> None:
    """SmtpMailer delivers the letter's bytes, envelope sender and recipient to an SMTP server."""
    received: dict[str, object] = {}

    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 relay ESMTP\r\n")
        data_mode, lines = False, []
        while line := await reader.readline():
            if data_mode:
                if line == b".\r\n":
                    received["data"] = b"".join(lines)
                    data_mode = False
                    writer.write(b"250 queued\r\n")
                else:
                    lines.append(line)
                continue
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250 relay\r\n")
            elif verb == "MAIL":
                received["from"] = command
                writer.write(b"250 ok\r\n")
            elif verb == "RCPT":
                received["to"] = command
                writer.write(b"250 ok\r\n")
            elif verb == "DATA":
                data_mode = True
                writer.write(b"354 go on\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(conversation, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = SystemMailSettings(
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        from_address="sys@example.org",
    )
    async with server:
        await SmtpMailer(settings, lambda: datetime.now(UTC)).send(LETTER)
    assert received["from"] == "mail FROM:<sys@example.org>"
    assert received["to"] == "rcpt TO:<ada@example.org>"
    message = email.message_from_bytes(received["data"], policy=email.policy.default)  # type: ignore[arg-type]
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    assert message["Subject"] == LETTER.subject
    assert message.get_content() == LETTER.body

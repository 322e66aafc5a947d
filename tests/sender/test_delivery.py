"""Delivering one SendEmail against the emulator: every outcome class, recorded in ledger and outbox."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from mailmerger_sender import mime
from mailmerger_shared import contracts as c
from tests.sender.conftest import Harness
from tests.sender.support import Account, envelope, next_id, send_email


async def test_accepted_send_is_recorded_and_announced(harness: Harness) -> None:
    """Gmail's 200 makes the message sent in the ledger and stages EmailSent with Gmail's ids."""
    account = await harness.account()
    command = send_email(account)
    await harness.deliver(command)
    stored = await harness.stored(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailSent)
    assert (event.gmail_id, event.thread_id) == (stored["id"], stored["threadId"])
    assert event.rfc_message_id == command.rfc_message_id
    assert not event.reconciled
    assert (await harness.row(command.message_id)).state == "sent"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "backendError"),
        (503, "backendError"),
        (429, "rateLimitExceeded"),  # "Too many concurrent requests for user"
    ],
)
async def test_transient_refusals_defer_with_backoff(harness: Harness, status: int, reason: str) -> None:
    """5xx and concurrency limits defer the message at least a second; nothing is sent."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=status, reason=reason, count=1)
    command = send_email(account)
    before = harness.clock()
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailDeferred)
    assert event.reason == reason
    assert event.retry_at >= before + timedelta(seconds=1)
    assert (await harness.row(command.message_id)).state == "deferred"
    assert await harness.copies(command) == 0


async def test_deferred_message_is_sent_by_its_next_attempt(harness: Harness) -> None:
    """A newer command claims a deferred message again and sends it."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=500, reason="backendError", count=1)
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(msgspec.structs.replace(command, attempt=2))
    assert await harness.copies(command) == 1
    assert [type(e) for e in await harness.events(account)] == [c.EmailDeferred, c.EmailSent]


async def test_redelivered_deferral_does_nothing(harness: Harness) -> None:
    """The same command delivered again after its deferral neither sends nor announces anything."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=500, reason="backendError", count=1)
    command = send_email(account)
    first = await harness.deliver(command)
    await harness.deliver(command, first)
    assert await harness.copies(command) == 0
    assert [type(e) for e in await harness.events(account)] == [c.EmailDeferred]


async def test_mail_sending_limit_parks_the_account_until_gmails_retry_time(harness: Harness) -> None:
    """429 "(Mail sending)" stages SenderThrottled until the time Gmail names, and defers to it."""
    account = await harness.account()
    message = "User-rate limit exceeded.  Retry after 2030-01-02T03:04:05.000Z (Mail sending)"
    await harness.fault(
        account, kind="error", status=429, reason="rateLimitExceeded", message=message, count=1
    )
    command = send_email(account)
    await harness.deliver(command)
    throttled, deferred = await harness.events(account)
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert throttled == c.SenderThrottled(
        account_id=account.account_id, until=until, reason="mail_sending_limit"
    )
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.retry_at == until


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (403, "userRateLimitExceeded", None),
        (403, "rateLimitExceeded", None),
        (429, "rateLimitExceeded", "Too many requests: User-rate limit exceeded"),
    ],
)
async def test_a_per_minute_quota_refusal_pauses_the_whole_account(
    harness: Harness, status: int, reason: str, message: str | None
) -> None:
    """The account is throttled for the brief pause and its next send waits it out without calling
    Gmail (it would only be refused too)."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=status, reason=reason, message=message, count=1)
    before = harness.clock()
    first, second = send_email(account), send_email(account)
    await harness.deliver(first)
    await harness.deliver(second)
    throttled, deferred, held = await harness.events(account)
    pause = timedelta(seconds=harness.settings.rate_limit_pause_seconds)
    assert isinstance(throttled, c.SenderThrottled)
    assert before + pause <= throttled.until <= harness.clock() + pause
    assert isinstance(deferred, c.EmailDeferred)
    assert (deferred.reason, deferred.retry_at) == (reason, throttled.until)
    assert isinstance(held, c.EmailDeferred)
    assert held.reason == "account_paused"
    assert held.retry_at >= throttled.until - timedelta(seconds=1)
    assert len(harness.wire.sends()) == 1


async def test_a_retry_time_google_names_without_mail_sending_is_honoured(harness: Harness) -> None:
    """ "User-rate limit exceeded.  Retry after <time>" (no "(Mail sending)") defers to that time,
    not from 1 s."""
    account = await harness.account()
    retry_at = (harness.clock() + timedelta(minutes=7)).replace(microsecond=0)
    message = f"User-rate limit exceeded.  Retry after {retry_at.strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
    await harness.fault(
        account, kind="error", status=429, reason="rateLimitExceeded", message=message, count=1
    )
    await harness.deliver(send_email(account))
    throttled, deferred = await harness.events(account)
    assert isinstance(throttled, c.SenderThrottled)
    assert throttled.until == retry_at
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.retry_at == retry_at


async def test_one_google_account_connected_twice_shares_one_send_window(harness: Harness) -> None:
    """Two MailMerger connections of the same Gmail account count into one sliding minute."""
    harness.configure(account_sends_per_minute=1)
    first = await harness.account()
    second = await harness.auth.register(
        Account(account_id=next_id(), user_id=next_id(), email=first.email.upper(), scopes=first.scopes)
    )
    await harness.deliver(send_email(first))
    later = send_email(second)
    await harness.deliver(later)
    [deferred] = await harness.events(second)
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.reason == "rate_limited"
    assert await harness.copies(later) == 0


async def test_daily_limit_exceeded_parks_the_account(harness: Harness) -> None:
    """403 dailyLimitExceeded (the project's quota) parks the account for the configured pause."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=403, reason="dailyLimitExceeded", count=1)
    before = harness.clock()
    await harness.deliver(send_email(account))
    throttled, deferred = await harness.events(account)
    assert isinstance(throttled, c.SenderThrottled)
    assert throttled.reason == "dailyLimitExceeded"
    assert throttled.until >= before + timedelta(seconds=harness.settings.daily_limit_pause_seconds)
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.retry_at == throttled.until


@pytest.mark.parametrize(
    ("status", "reason"),
    [("mail_service_not_enabled", "failedPrecondition"), ("domain_policy", "domainPolicy")],
)
async def test_account_refusals_fail_the_message(harness: Harness, status: str, reason: str) -> None:
    """An account without Gmail, or whose admin disabled Gmail apps, fails the message for good."""
    account = await harness.account()
    (
        await harness.emulator.patch(f"/_emulator/users/{account.email}", json={"status": status})
    ).raise_for_status()
    command = send_email(account)
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == reason
    assert (await harness.row(command.message_id)).state == "failed"


async def test_message_gmail_refuses_as_invalid_fails(harness: Harness) -> None:
    """A 400 about the message itself (here: too many recipients) fails it with Gmail's reason."""
    account = await harness.account()
    command = send_email(account, to=[f"r{n}@example.com" for n in range(101)])
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "invalidArgument"
    assert "recipients" in event.detail


async def test_redelivered_sent_message_is_announced_again_not_resent(harness: Harness) -> None:
    """A message already sent is acknowledged with its EmailSent re-published from the ledger."""
    account = await harness.account()
    command = send_email(account)
    first = await harness.deliver(command)
    await harness.deliver(command, first)
    await harness.deliver(msgspec.structs.replace(command, attempt=2))
    sent = await harness.events(account)
    assert len(sent) == 3
    assert all(event == sent[0] for event in sent)
    assert await harness.copies(command) == 1
    assert len(harness.wire.sends()) == 1


async def test_concurrent_deliveries_of_one_message_send_it_once(harness: Harness) -> None:
    """Two commands for one message at the same moment: one claims and sends, the other does not."""
    account = await harness.account()
    command = send_email(account)
    await asyncio.gather(*(harness.deliver(command, envelope()) for _ in range(4)))
    assert await harness.copies(command) == 1
    assert sum(isinstance(e, c.EmailSent) for e in await harness.events(account)) == 1


async def test_expired_token_is_refreshed_and_the_send_retried_once(harness: Harness) -> None:
    """Gmail's 401 drops the cached token; the send is repeated once with a fresh one."""
    account = await harness.account()
    await harness.deliver(send_email(account))
    token = harness.wire.sends()[0].headers["authorization"].removeprefix("Bearer ")
    await harness.auth.revoke(token)  # what Gmail sees of an expired token: 401 authError
    command = send_email(account)
    await harness.deliver(command)
    assert await harness.copies(command) == 1
    assert harness.auth.calls[account.account_id] == 2
    assert harness.auth.named_refused == [None, token]  # so auth refreshes instead of repeating it
    assert len(harness.wire.sends()) == 3


async def test_token_refused_after_refresh_means_reconnect_required(harness: Harness) -> None:
    """A second 401 after refreshing announces GmailReconnectRequired and defers the message."""
    account = await harness.account()
    token, _ = await harness.auth.mint(account)
    await harness.auth.revoke(token)
    harness.auth.stale[account.account_id] = token
    command = send_email(account)
    await harness.deliver(command)
    reconnect, deferred = await harness.events(account)
    assert reconnect == c.GmailReconnectRequired(
        user_id=account.user_id, account_id=account.account_id, reason="token_refused"
    )
    assert isinstance(deferred, c.EmailDeferred)
    assert len(harness.wire.sends()) == 2
    assert await harness.copies(command) == 0


async def test_auth_reconnect_required_defers_without_calling_gmail(harness: Harness) -> None:
    """auth's 409 reconnect_required announces GmailReconnectRequired and defers; Gmail is not called."""
    account = await harness.account()
    harness.auth.refusing.add(account.account_id)
    await harness.deliver(send_email(account))
    reconnect, deferred = await harness.events(account)
    assert isinstance(reconnect, c.GmailReconnectRequired)
    assert reconnect.reason == "reconnect_required"
    assert isinstance(deferred, c.EmailDeferred)
    assert harness.wire.calls == []


async def test_message_above_the_threshold_goes_through_the_upload_endpoint(harness: Harness) -> None:
    """A raw message above upload_threshold_bytes is uploaded as message/rfc822, not base64 JSON."""
    harness.configure(upload_threshold_bytes=20_000)
    account = await harness.account()
    attachment = harness.blobs.put(os.urandom(30_000))
    command = send_email(account, attachments=[attachment])
    await harness.deliver(command)
    [call] = harness.wire.sends()
    assert call.url.path == "/upload/gmail/v1/users/me/messages/send"
    assert call.url.params["uploadType"] == "media"
    assert call.headers["content-type"] == "message/rfc822"
    stored = await harness.stored(command)
    assert stored["attachments"][0]["size"] == 30_000


async def test_threaded_upload_carries_the_thread_id(harness: Harness) -> None:
    """A large reply is uploaded multipart, with its threadId, and joins the thread."""
    harness.configure(upload_threshold_bytes=20_000)
    account = await harness.account()
    first = send_email(account, subject="Our meeting")
    await harness.deliver(first)
    thread = (await harness.stored(first))["threadId"]
    reply = send_email(
        account,
        subject="Re: Our meeting",
        thread_id=thread,
        in_reply_to=first.rfc_message_id,
        attachments=[harness.blobs.put(os.urandom(30_000))],
    )
    await harness.deliver(reply)
    assert harness.wire.sends()[-1].url.params["uploadType"] == "multipart"
    assert (await harness.stored(reply))["threadId"] == thread


async def test_message_above_gmails_limit_fails_before_any_call(harness: Harness) -> None:
    """Attachments summing past 35 MB fail the message with message_too_large; nothing is called."""
    account = await harness.account()
    huge = c.AttachmentRef(
        attachment_id=1,
        object_key="k",
        sha256="0" * 64,
        filename="video.mp4",
        content_type="video/mp4",
        size=36 * 2**20,
    )
    command = send_email(account, attachments=[huge])
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "message_too_large"
    assert "above Gmail's limit" in event.detail
    assert harness.wire.calls == []
    assert harness.auth.calls[account.account_id] == 0
    assert not harness.blobs.reads


async def test_built_message_above_the_limit_fails_before_gmail_is_called(harness: Harness) -> None:
    """The exact size of the built message is checked too, before the Gmail call."""
    harness.configure(max_message_bytes=3_000)
    account = await harness.account()
    await harness.deliver(send_email(account, html="<p>" + "x" * 2_500 + "</p>"))
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "message_too_large"
    assert harness.wire.calls == []


@pytest.mark.parametrize(
    "hostile",
    [
        {"subject": "Hello\r\nBcc: victim@evil.test"},
        {"subject": "Hello\nX-Injected: yes"},
        {"to": ["friend@example.com\r\nBcc: victim@evil.test"]},
        {"to": ["friend@example.com, victim@evil.test"]},
        {"cc": ['"Friend" <friend@example.com>\nBcc: victim@evil.test']},
        {"from_name": "Boss\r\nBcc: victim@evil.test"},
        {"in_reply_to": "<a@example.com>\r\nBcc: victim@evil.test"},
        {"references": ["<a@example.com> <b@example.com>"]},
        {"rfc_message_id": "<x@example.com>\r\nBcc: victim@evil.test"},
        {"reply_to": ["replies@example.com\r\nBcc: victim@evil.test"]},
        {"reply_to": ["replies@example.com, victim@evil.test"]},
        {"reply_to": ['"Team\u2028Bcc: victim@evil.test" <team@example.com>']},
        {"reply_to": ["=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com"]},
    ],
)
async def test_header_injection_attempts_fail_without_sending(
    harness: Harness, hostile: dict[str, object]
) -> None:
    """A CR/LF or a second address smuggled into any header fails the message; Gmail is never called."""
    account = await harness.account()
    await harness.deliver(send_email(account, **hostile))
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "invalid_message"
    assert harness.wire.sends() == []


async def test_hostile_attachment_filename_fails_without_sending(harness: Harness) -> None:
    """A filename carrying a line break cannot add headers to its part."""
    account = await harness.account()
    attachment = harness.blobs.put(b"%PDF-1.4", filename="cv.pdf\r\nContent-Type: text/html")
    await harness.deliver(send_email(account, attachments=[attachment]))
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "invalid_message"
    assert harness.wire.sends() == []


ENCODED_WORD_ATTACK = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="


@pytest.mark.parametrize("where", ["subject", "from_name", "account_name", "recipient_name", "filename"])
async def test_an_encoded_word_is_sent_as_the_text_it_is(harness: Harness, where: str) -> None:
    """An RFC 2047 look-alike decoding to CRLF + Bcc, in any header text, reaches Gmail as that
    literal text: exactly the expected headers and recipients, no Bcc."""
    attack = ENCODED_WORD_ATTACK
    account = await harness.account(display_name=attack if where == "account_name" else "Ada Lovelace")
    attachment = harness.blobs.put(b"%PDF-1.4", filename=attack if where == "filename" else "cv.pdf")
    command = send_email(
        account,
        to=[f'"{attack}" <bob@example.com>' if where == "recipient_name" else "Bob <bob@example.com>"],
        subject=attack if where == "subject" else "Hello",
        from_name=attack if where == "from_name" else None,
        attachments=[attachment],
    )
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailSent)
    stored = await harness.stored(command)
    assert [header["name"] for header in stored["headers"]] == [
        "From", "To", "Subject", "Date", "MIME-Version", "Message-ID", "Content-Type",
    ]  # fmt: skip
    assert (stored["to"], stored["cc"], stored["bcc"]) == (["bob@example.com"], [], [])
    headers = {header["name"]: header["value"] for header in stored["headers"]}
    sender_name = attack if where in ("from_name", "account_name") else "Ada Lovelace"
    assert headers["From"] == f"{sender_name} <{account.email}>"
    assert headers["To"] == f"{attack if where == 'recipient_name' else 'Bob'} <bob@example.com>"
    assert stored["subject"] == (attack if where == "subject" else "Hello")
    assert stored["attachments"][0]["filename"] == (attack if where == "filename" else "cv.pdf")


async def test_reply_to_is_written_and_reaches_no_one(harness: Harness) -> None:
    """Reply-To names the command's addresses (a non-ASCII display name encoded); Gmail sends to
    the To alone."""
    account = await harness.account()
    command = send_email(
        account,
        to=["Bob <bob@example.com>"],
        reply_to=["replies@example.com", "Équipe Ventes <team@example.com>"],
    )
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailSent)
    stored = await harness.stored(command)
    assert (stored["to"], stored["cc"], stored["bcc"]) == (["bob@example.com"], [], [])
    headers = {header["name"]: header["value"] for header in stored["headers"]}
    assert headers["Reply-To"] == "replies@example.com, Équipe Ventes <team@example.com>"
    assert [header["name"] for header in stored["headers"]].count("Reply-To") == 1


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
async def test_a_subject_that_crashed_the_builder_fails_the_message_at_once(
    harness: Harness, separator: str
) -> None:
    """A Unicode line separator in the subject (which made the email package raise, so the message
    was retried until it ended "unconfirmed") fails it permanently, saying why; Gmail is not called."""
    account = await harness.account()
    command = send_email(account, subject=f"Hello{separator}Bcc: x@evil.test")
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "invalid_message"
    assert event.detail.startswith("subject contains a ")
    assert f"U+{ord(separator):04X})" in event.detail
    assert (await harness.row(command.message_id)).state == "failed"
    assert harness.wire.sends() == []


async def test_whatever_the_builder_raises_fails_the_message_permanently(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while building is an invalid_message failure naming it, not an
    exception the consumer would retry until the message ends "unconfirmed"."""

    def broken(html: str) -> str:
        raise RuntimeError("the text alternative could not be made")

    monkeypatch.setattr(mime, "html_to_text", broken)
    account = await harness.account()
    command = send_email(account)
    await harness.deliver(command)
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "invalid_message"
    assert event.detail == (
        "the message could not be built: RuntimeError('the text alternative could not be made')"
    )
    assert (await harness.row(command.message_id)).state == "failed"
    assert harness.wire.sends() == []


async def test_non_ascii_names_subjects_and_filenames_round_trip(harness: Harness) -> None:
    """Display names, subject and filename in any script arrive intact at Gmail's stored copy."""
    account = await harness.account(display_name="Zoë Ünïcødé 山田")
    attachment = harness.blobs.put(b"%PDF-1.4 resume", filename="Lebenslauf Jürgen \u2013 履歴書.pdf")
    command = send_email(
        account,
        to=['"Renée O\'Brien, PhD" <renee@example.com>'],
        subject="Grüße — 你好 🎉 " + "long subject words " * 6,
        attachments=[attachment],
    )
    await harness.deliver(command)
    stored = await harness.stored(command)
    headers = {header["name"]: header["value"] for header in stored["headers"]}
    assert headers["From"] == f"Zoë Ünïcødé 山田 <{account.email}>"
    # One recipient: the comma stayed inside the (encoded) display name.
    assert stored["to"] == ["renee@example.com"]
    assert headers["To"] == "Renée O'Brien, PhD <renee@example.com>"
    assert stored["subject"] == command.subject
    assert stored["attachments"][0]["filename"] == "Lebenslauf Jürgen \u2013 履歴書.pdf"
    assert stored["attachments"][0]["contentType"] == "application/pdf"


async def test_reply_joins_the_thread_with_in_reply_to_and_references(harness: Harness) -> None:
    """threadId plus In-Reply-To/References and the same subject keep the reply in the thread."""
    account = await harness.account()
    first = send_email(account, subject="Application for the role")
    await harness.deliver(first)
    thread = (await harness.stored(first))["threadId"]
    reply = send_email(
        account, subject="Re: Application for the role", thread_id=thread, in_reply_to=first.rfc_message_id
    )
    await harness.deliver(reply)
    stored = await harness.stored(reply)
    headers = {header["name"]: header["value"] for header in stored["headers"]}
    assert stored["threadId"] == thread
    assert headers["In-Reply-To"] == first.rfc_message_id
    assert headers["References"] == first.rfc_message_id


async def test_html_only_message_gets_a_text_alternative(harness: Harness) -> None:
    """Without a text body, one is derived from the HTML: readable text, no markup."""
    account = await harness.account()
    command = send_email(
        account, html="<h1>Hi Ada</h1><p>See <a href='https://x.test/cv'>my CV</a>.</p><script>x()</script>"
    )
    await harness.deliver(command)
    stored = await harness.stored(command)
    assert stored["mimeType"] == "multipart/alternative"
    assert stored["text"].replace("\r\n", "\n") == "Hi Ada\n\nSee my CV (https://x.test/cv).\n"


async def test_attachment_not_matching_its_hash_fails(harness: Harness) -> None:
    """Bytes whose sha256 differs from the command's are never attached."""
    account = await harness.account()
    attachment = harness.blobs.put(b"the real resume")
    harness.blobs.objects[attachment.object_key] = b"something else"
    await harness.deliver(send_email(account, attachments=[attachment]))
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "attachment_corrupt"


async def test_missing_attachment_fails(harness: Harness) -> None:
    """An attachment gone from storage fails the message (it cannot be sent as composed)."""
    account = await harness.account()
    attachment = harness.blobs.put(b"resume")
    del harness.blobs.objects[attachment.object_key]
    await harness.deliver(send_email(account, attachments=[attachment]))
    [event] = await harness.events(account)
    assert isinstance(event, c.EmailFailed)
    assert event.reason == "attachment_missing"


async def test_account_over_its_send_rate_is_deferred_not_failed(harness: Harness) -> None:
    """The shared sliding minute defers a send it has no room for until the oldest send leaves it."""
    harness.configure(account_sends_per_minute=1)
    account = await harness.account()
    first, second = send_email(account), send_email(account)
    await harness.deliver(first)
    await harness.deliver(second)
    sent, deferred = await harness.events(account)
    assert isinstance(sent, c.EmailSent)
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.reason == "rate_limited"
    assert deferred.retry_at > harness.clock() + timedelta(seconds=55)
    assert await harness.copies(second) == 0


async def test_second_email_with_the_same_message_id_fails_without_sending(harness: Harness) -> None:
    """Two emails may not share a Message-ID (reconciliation would confuse them): the later fails."""
    account = await harness.account()
    first = send_email(account)
    twin = send_email(account, rfc_message_id=first.rfc_message_id)
    others = [send_email(account) for _ in range(3)]
    await asyncio.gather(*(harness.deliver(command) for command in [first, *others]))
    await asyncio.gather(
        *(harness.deliver(command) for command in [twin, *(send_email(account) for _ in range(3))])
    )
    failed = [e for e in await harness.events(account) if isinstance(e, c.EmailFailed)]
    assert [(e.message_id, e.reason) for e in failed] == [(twin.message_id, "duplicate_message_id")]
    assert await harness.copies(first) == 1
    assert len(harness.wire.sends()) == 7

"""The mailbox watcher against the real Gmail emulator and PostgreSQL: what comes back is found once."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from mailmerger_sender.adapters.gmail import GmailAnswer
from mailmerger_sender.settings import WatcherSettings
from mailmerger_sender.watcher import mailboxes, readback, reading, responses
from mailmerger_sender.watcher.classify import IncomingMessage
from mailmerger_sender.watcher.mailboxes import MailboxLease
from mailmerger_sender.watcher.ports import WatcherPorts
from mailmerger_sender.watcher.responses import OurMessage
from mailmerger_sender.watcher.run import run_watcher
from mailmerger_sender.watcher.sync import PassReport, sync_mailbox
from mailmerger_shared import contracts as c
from mailmerger_shared.db import autocommit, transaction
from tests.sender.conftest import Harness
from tests.sender.support import METADATA, SEND, Account, next_id, send_email
from tests.support import eventually

WATCH = WatcherSettings(poll_seconds=1, lease_seconds=30, scope_recheck_seconds=3600)


class Watch:
    """One test's view of the watcher: passes over one mailbox, and what they staged."""

    def __init__(self, harness: Harness, settings: WatcherSettings = WATCH) -> None:
        self.harness = harness
        self.settings = settings
        self.ports = self.with_settings(settings)
        self.accounts: set[int] = set()

    def with_settings(self, settings: WatcherSettings) -> WatcherPorts:
        return WatcherPorts(
            sessions=self.harness.sessions,
            gmail=self.harness.gmail,
            tokens=self.harness.ports.tokens,
            settings=settings,
            clock=self.harness.clock,
        )

    async def hold(self, account: Account) -> MailboxLease:
        """Enroll, then lease ``account``'s mailbox (whatever its next poll time)."""
        self.accounts.add(account.account_id)
        now = self.harness.clock()
        async with autocommit(self.harness.sessions) as session:
            await mailboxes.enroll(session, now=now, watch_days=self.settings.watch_days)
        async with transaction(self.harness.sessions) as session:
            row = (
                await session.execute(
                    text(
                        "UPDATE sender.mailboxes SET leased_until = :until, next_poll_at = :now"
                        " WHERE account_id = :account_id"
                        " RETURNING account_id, history_id, state, failures, leased_until"
                    ),
                    {"until": now + timedelta(seconds=30), "now": now, "account_id": account.account_id},
                )
            ).one()
        return MailboxLease(
            account_id=row.account_id,
            history_id=row.history_id,
            state=row.state,
            failures=row.failures,
            token=row.leased_until,
        )

    async def run_pass(self, account: Account, settings: WatcherSettings | None = None) -> PassReport:
        ports = self.with_settings(settings) if settings else self.ports
        return await sync_mailbox(await self.hold(account), ports)

    async def mailbox(self, account: Account) -> Any:
        async with transaction(self.harness.sessions) as session:
            return (
                await session.execute(
                    text("SELECT * FROM sender.mailboxes WHERE account_id = :a"), {"a": account.account_id}
                )
            ).one()

    async def responses(self, account: Account) -> list[c.ResponseReceived]:
        return [e for e in await self.harness.events(account) if isinstance(e, c.ResponseReceived)]

    async def forget_staged(self) -> None:
        """Delete what the test's passes staged: no other test's relay should have to publish it."""
        async with transaction(self.harness.sessions) as session:
            await session.execute(
                text(
                    "DELETE FROM sender.outbox WHERE tag = ANY(:tags)"
                    " AND (convert_from(body, 'UTF8')::jsonb ->> 'account_id')::bigint = ANY(:accounts)"
                ),
                {"tags": WATCHER_TAGS, "accounts": sorted(self.accounts)},
            )


WATCHER_TAGS = [c.ResponseReceived.TAG, c.MessageIdRead.TAG, c.SenderThrottled.TAG]


@pytest.fixture
async def watch(harness: Harness) -> AsyncIterator[Watch]:
    watching = Watch(harness)
    yield watching
    await watching.forget_staged()


async def incoming(harness: Harness, **body: Any) -> dict[str, Any]:
    answer = await harness.emulator.post("/_emulator/incoming", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def sent(harness: Harness, account: Account, **overrides: Any) -> tuple[c.SendEmail, dict[str, Any]]:
    command = send_email(account, **overrides)
    await harness.deliver(command)
    return command, await harness.stored(command)


async def test_reply_auto_reply_bounce_and_delay_are_each_found_once(harness: Harness, watch: Watch) -> None:
    """Each kind is staged once, for our newest message of the thread sent before it arrived."""
    account = await harness.account(SEND, METADATA)
    first, stored = await sent(harness, account, subject="Application for the role")
    first_pass = await watch.run_pass(account)
    assert first_pass.full_sync
    assert first_pass.units == 1 + 5 + 5  # getProfile, one INBOX page, the read-back of ``first``
    follow_up, _ = await sent(
        harness,
        account,
        subject="Re: Application for the role",
        thread_id=stored["threadId"],
        in_reply_to=first.rfc_message_id,
    )
    recipient = first.to[0].split("<")[1].rstrip(">")
    arrived = {}
    for kind in ("reply", "auto_reply", "bounce", "delay"):
        arrived[kind] = (await incoming(harness, kind=kind, message_id=stored["id"]))["id"]

    report = await watch.run_pass(account)
    again = await watch.run_pass(account)

    found = await watch.responses(account)
    assert {r.kind: r.gmail_id for r in found} == arrived
    assert len(found) == 4
    assert {r.message_id for r in found} == {follow_up.message_id}
    by_kind = {r.kind: r for r in found}
    assert by_kind["bounce"].failed_recipient == recipient
    assert by_kind["bounce"].from_address == "mailer-daemon@googlemail.com"
    assert by_kind["reply"].from_address == recipient
    assert "Auto-Submitted: auto-replied" in by_kind["auto_reply"].detail
    assert not report.full_sync
    assert again.responses == []
    assert again.units == 2  # an idle pass: one history.list
    # history.list 2 + 4 messages.get of 5, plus the Message-ID read-back of the follow-up.
    assert report.units == 2 + 4 * 5 + 5


async def test_a_reply_is_found_within_seconds_by_the_running_watcher(harness: Harness, watch: Watch) -> None:
    """With poll_seconds=1 the watcher started in a worker finds a reply within about two seconds."""
    account = await harness.account(SEND, METADATA)
    watch.accounts.add(account.account_id)
    task = asyncio.create_task(run_watcher(watch.ports))
    try:
        _, stored = await sent(harness, account)
        await asyncio.sleep(0)
        started = time.monotonic()
        await incoming(harness, kind="reply", message_id=stored["id"])
        await eventually(lambda: watch.responses(account), timeout=5, interval=0.05)
        elapsed = time.monotonic() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert elapsed < 3.5, elapsed
    assert [r.kind for r in await watch.responses(account)] == ["reply"]


async def test_a_crash_before_the_commit_loses_nothing(
    harness: Harness, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging and advancing the historyId are one transaction: after a crash the next pass finds it."""
    account = await harness.account(SEND, METADATA)
    _, stored = await sent(harness, account)
    await watch.run_pass(account)
    before = (await watch.mailbox(account)).history_id
    await incoming(harness, kind="reply", message_id=stored["id"])
    advance = mailboxes.advance

    async def crash(*args: Any, **kwargs: Any) -> None:
        await advance(*args, **kwargs)
        raise RuntimeError("the process died before COMMIT")

    monkeypatch.setattr(mailboxes, "advance", crash)
    with pytest.raises(RuntimeError):
        await watch.run_pass(account)
    assert await watch.responses(account) == []
    assert (await watch.mailbox(account)).history_id == before

    monkeypatch.setattr(mailboxes, "advance", advance)
    await watch.run_pass(account)
    assert [r.kind for r in await watch.responses(account)] == ["reply"]


async def test_an_expired_history_id_is_followed_by_a_full_sync_that_finds_the_reply_once(
    harness: Harness, watch: Watch
) -> None:
    """Gmail's 404 for the stored historyId means a full sync; the reply is found, once."""
    account = await harness.account(SEND, METADATA)
    _, stored = await sent(harness, account)
    await watch.run_pass(account)
    reply = await incoming(harness, kind="reply", message_id=stored["id"])
    await harness.fault(
        account, kind="error", methods=["history.list"], status=404, reason="notFound", count=1
    )

    report = await watch.run_pass(account)

    assert report.full_sync
    assert [r.gmail_id for r in await watch.responses(account)] == [reply["id"]]
    profile = await harness.gmail.get_profile(
        (await harness.ports.tokens.get(account.account_id)).access_token
    )
    assert (await watch.mailbox(account)).history_id == int(
        profile.body.split(b'"historyId":"')[1].split(b'"')[0]
    )
    assert (await watch.run_pass(account)).responses == []


async def test_a_send_only_account_makes_no_gmail_call(harness: Harness, watch: Watch) -> None:
    """Without a read scope the mailbox is send-only, re-checked after scope_recheck_seconds."""
    account = await harness.account(SEND)
    await sent(harness, account)
    calls = len(harness.wire.calls)

    report = await watch.run_pass(account)

    assert report.outcome == "send_only"
    assert len(harness.wire.calls) == calls
    row = await watch.mailbox(account)
    assert row.state == "send_only"
    assert row.history_id is None
    assert row.leased_until is None
    assert row.next_poll_at > harness.clock() + timedelta(seconds=WATCH.scope_recheck_seconds - 60)


async def test_two_watchers_never_hold_one_mailbox_at_once(harness: Harness, watch: Watch) -> None:
    """Concurrent leases take a mailbox once; a pass whose lease was taken over writes nothing."""
    account = await harness.account(SEND, METADATA)
    _, stored = await sent(harness, account)
    await watch.run_pass(account)
    await incoming(harness, kind="reply", message_id=stored["id"])
    async with transaction(harness.sessions) as session:
        await session.execute(
            text(
                "UPDATE sender.mailboxes SET next_poll_at = now() - interval '1 second' WHERE account_id = :a"
            ),
            {"a": account.account_id},
        )

    async def lease(now: datetime) -> list[MailboxLease]:
        async with autocommit(harness.sessions) as session:
            return await mailboxes.lease(session, now=now, room=100_000, lease_seconds=30)

    now = harness.clock()
    taken = await asyncio.gather(*(lease(now) for _ in range(4)))
    mine = [held for batch in taken for held in batch if held.account_id == account.account_id]
    others = [held.account_id for batch in taken for held in batch if held.account_id != account.account_id]
    assert len(mine) == 1
    assert len(others) == len(set(others))
    # The first holder stalls past its lease; a second replica takes the mailbox over.
    [late] = [
        held for held in await lease(now + timedelta(seconds=31)) if held.account_id == account.account_id
    ]

    stale = await sync_mailbox(mine[0], watch.ports)
    fresh = await sync_mailbox(late, watch.ports)

    assert stale.outcome == "lease_lost"
    assert fresh.outcome == "synced"
    assert [r.kind for r in await watch.responses(account)] == ["reply"]
    async with transaction(harness.sessions) as session:  # let the other tests' mailboxes go
        await session.execute(
            text("UPDATE sender.mailboxes SET leased_until = NULL WHERE account_id = ANY(:ids)"),
            {"ids": others},
        )


async def test_the_budget_stops_a_pass_and_the_next_continues(harness: Harness, watch: Watch) -> None:
    """A small budget reads one answer per pass; later passes continue where it stopped, none twice."""
    account = await harness.account(SEND, METADATA)
    _, stored = await sent(harness, account)
    await watch.run_pass(account)
    for kind in ("reply", "auto_reply", "bounce"):
        await incoming(harness, kind=kind, message_id=stored["id"])
    tight = WatcherSettings(poll_seconds=1, units_per_pass=9, readback=False)

    reports = [await watch.run_pass(account, tight) for _ in range(4)]

    assert [r.outcome for r in reports] == ["backlog", "backlog", "synced", "synced"]
    assert [len(r.responses) for r in reports] == [1, 1, 1, 0]
    assert all(r.units <= 9 for r in reports)
    kinds = Counter(r.kind for r in await watch.responses(account))
    assert kinds == Counter({"reply": 1, "auto_reply": 1, "bounce": 1})


async def test_read_back_publishes_message_id_read_only_when_gmail_stored_another(
    harness: Harness, watch: Watch
) -> None:
    """Every sent message is read back once; only one whose stored Message-ID differs is published."""
    account = await harness.account(SEND, METADATA)
    same, _ = await sent(harness, account)
    other, _ = await sent(harness, account)
    ours = f"<ours-{other.message_id}@mailmerger.test>"  # as if Gmail had replaced the one we wrote
    async with transaction(harness.sessions) as session:
        await session.execute(
            text("UPDATE sender.deliveries SET rfc_message_id = :ours WHERE message_id = :id"),
            {"ours": ours, "id": other.message_id},
        )

    await watch.run_pass(account)
    calls = len(harness.wire.calls)
    await watch.run_pass(account)

    read = [e for e in await harness.events(account) if isinstance(e, c.MessageIdRead)]
    assert read == [
        c.MessageIdRead(
            message_id=other.message_id, account_id=account.account_id, rfc_message_id=other.rfc_message_id
        )
    ]
    assert (await harness.row(same.message_id)).stored_message_id == same.rfc_message_id
    assert (await harness.row(other.message_id)).read_back_at is not None
    assert len(harness.wire.calls) == calls + 1  # the second pass: one history.list, no read-back


async def test_a_sending_limit_bounce_parks_the_account(harness: Harness, watch: Watch) -> None:
    """Gmail's "reached a limit for sending mail" DSN publishes SenderThrottled for a day."""
    account = await harness.account(SEND, METADATA)
    _, stored = await sent(harness, account)
    await watch.run_pass(account)
    raw = (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        f"To: {account.email}\r\nSubject: Delivery Status Notification (Failure)\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "Message not delivered. You have reached a limit for sending mail. Your message was not sent.\r\n"
    )
    encoded = base64.urlsafe_b64encode(raw.encode()).decode()
    await incoming(harness, kind="raw", user=account.email, raw=encoded, thread_id=stored["threadId"])

    await watch.run_pass(account)

    [throttled] = [e for e in await harness.events(account) if isinstance(e, c.SenderThrottled)]
    assert throttled.reason == "sending_limit_bounce"
    assert throttled.until > harness.clock() + timedelta(hours=23)
    assert await watch.responses(account) == []


async def test_gmail_refusals_set_the_mailbox_state(harness: Harness, watch: Watch) -> None:
    """Rate limits back off and keep watching; other errors set state error; 401 drops the token."""
    account = await harness.account(SEND, METADATA)
    await sent(harness, account)
    await watch.run_pass(account)

    await harness.fault(
        account, kind="error", methods=["history.list"], status=429, reason="rateLimitExceeded", count=1
    )
    assert (await watch.run_pass(account)).outcome == "throttled"
    assert (await watch.mailbox(account)).state == "watching"

    await harness.fault(account, kind="error", methods=["history.list"], status=500, count=1)
    assert (await watch.run_pass(account)).outcome == "error"
    row = await watch.mailbox(account)
    assert (row.state, row.failures) == ("error", 1)
    assert "backendError" in row.last_error

    fetched = harness.auth.calls[account.account_id]
    await harness.fault(account, kind="error", methods=["history.list"], shape="unauthenticated", count=1)
    assert (await watch.run_pass(account)).outcome == "unauthorized"
    assert (await watch.run_pass(account)).outcome == "synced"
    assert harness.auth.calls[account.account_id] == fetched + 1  # a fresh token after the 401
    row = await watch.mailbox(account)
    assert (row.state, row.failures, row.last_error) == ("watching", 0, None)


def test_message_id_read_only_when_it_differs() -> None:
    """MessageIdRead is made only for a stored Message-ID other than ours."""
    ours = "<mm-1@mailmerger.test>"
    assert readback.message_id_read(1, 2, ours, ours) is None
    assert readback.message_id_read(1, 2, ours, f"  {ours} ") is None
    assert readback.message_id_read(1, 2, ours, None) is None
    changed = readback.message_id_read(1, 2, ours, "<CAF=abc@mail.gmail.com>")
    assert changed == c.MessageIdRead(message_id=1, account_id=2, rfc_message_id="<CAF=abc@mail.gmail.com>")


def _reply_at(seconds: float) -> IncomingMessage:
    return IncomingMessage(
        gmail_id="18c0000000000001",
        thread_id="18c0000000000000",
        label_ids=("INBOX", "UNREAD"),
        headers=[("From", "bob@example.com"), ("Subject", "Re: Hello")],
        internal_date_ms=int((T0 + timedelta(seconds=seconds)).timestamp() * 1000),
    )


T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
THREAD = [OurMessage(1, T0), OurMessage(2, T0 + timedelta(hours=1)), OurMessage(3, T0 + timedelta(hours=2))]


@pytest.mark.parametrize(
    ("arrived_after_seconds", "answered"),
    [(1800, 1), (3 * 3600, 3), (3600 + 60, 2), (2 * 3600 - 60, 3), (-3600, None)],
    ids=["after-the-first", "after-the-last", "after-the-second", "within-clock-skew", "before-ours"],
)
def test_a_response_answers_our_newest_message_sent_before_it(
    arrived_after_seconds: float, answered: int | None
) -> None:
    """message_id is our newest message sent before the response arrived (2 min of skew allowed)."""
    events = responses.answer_events(
        _reply_at(arrived_after_seconds), "me@gmail.test", THREAD, account_id=7, now=T0, settings=WATCH
    )
    assert [getattr(e, "message_id", None) for e in events] == ([answered] if answered else [])


def _error(code: int, reason: str, message: str = "", **extra: Any) -> GmailAnswer:
    body = {"error": {"code": code, "message": message or reason, "errors": [{"reason": reason}], **extra}}
    return GmailAnswer(code, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (_error(401, "authError", "Invalid Credentials"), "unauthorized"),
        (
            _error(403, "insufficientPermissions", "Request had insufficient authentication scopes."),
            "no_scope",
        ),
        (_error(403, "userRateLimitExceeded"), "throttled"),
        (_error(403, "rateLimitExceeded"), "throttled"),
        (_error(403, "dailyLimitExceeded"), "throttled"),
        (_error(429, "rateLimitExceeded", "Too many concurrent requests for user"), "throttled"),
        (
            _error(429, "", "Resource has been exhausted (e.g. check quota).", status="RESOURCE_EXHAUSTED"),
            "throttled",
        ),
        (_error(404, "notFound"), "not_found"),
        (_error(500, "backendError"), "error"),
        (_error(400, "failedPrecondition", "Mail service not enabled"), "error"),
        (_error(403, "domainPolicy"), "error"),
        (GmailAnswer(502, b"<html>bad gateway</html>"), "error"),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value.status}",
)
def test_gmail_refusals_are_sorted_by_what_the_pass_does(answer: GmailAnswer, kind: str) -> None:
    """401 drops the token, a scope refusal is send-only, quota refusals back off, the rest are errors."""
    assert reading.refusal(answer, T0).kind == kind


async def test_enrollment_forgets_ended_watches_and_keeps_enrolling_after_a_shorter_window(
    harness: Harness, watch: Watch
) -> None:
    """A mailbox whose watch ended is deleted (every lease would step over it); a shorter
    ``watch_days`` still enrolls the next send (the bound is the latest send, not a window)."""
    account = await harness.account(SEND, METADATA)
    watch.accounts.add(account.account_id)
    now = harness.clock()
    ended = next_id()
    async with transaction(harness.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO sender.mailboxes (account_id, last_sent_at, watch_until, next_poll_at)"
                " VALUES (:a, :sent, :until, :until)"
            ),
            {"a": ended, "sent": now - timedelta(days=40), "until": now - timedelta(days=10)},
        )
    async with autocommit(harness.sessions) as session:
        await mailboxes.enroll(session, now=now, watch_days=30)
    command, _ = await sent(harness, account)
    async with autocommit(harness.sessions) as session:
        await mailboxes.enroll(session, now=harness.clock(), watch_days=7)
    async with transaction(harness.sessions) as session:
        rows = {
            row.account_id: row
            for row in await session.execute(
                text(
                    "SELECT m.account_id, m.last_sent_at, m.watch_until, d.sent_at FROM sender.mailboxes m"
                    " LEFT JOIN sender.deliveries d ON d.message_id = :message"
                    " WHERE m.account_id = ANY(:accounts)"
                ),
                {"message": command.message_id, "accounts": [ended, account.account_id]},
            )
        }
    assert set(rows) == {account.account_id}
    enrolled = rows[account.account_id]
    assert enrolled.last_sent_at == enrolled.sent_at
    assert enrolled.watch_until == enrolled.sent_at + timedelta(days=7)

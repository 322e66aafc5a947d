"""Every Gmail error shape of GMAIL_FACTS.md 2.5b, as the emulator answers it (its ``shape``
faults), through a real delivery: what the sender does with each is what the shape means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailmerger_shared import contracts as c
from tests.sender.conftest import Harness
from tests.sender.support import send_email


@pytest.mark.parametrize("shape", ["resource_exhausted", "quota_metric"])
async def test_a_per_minute_quota_in_either_wild_shape_pauses_the_account_briefly(
    harness: Harness, shape: str
) -> None:
    """429 ``RESOURCE_EXHAUSTED`` "Resource has been exhausted" and 403 "Quota exceeded for quota
    metric 'Queries'" are the per-minute quota: the account waits the brief pause, the message is
    deferred (not failed), and nothing was sent."""
    account = await harness.account()
    await harness.fault(account, kind="error", shape=shape, count=1)
    before = harness.clock()
    command = send_email(account)
    await harness.deliver(command)
    throttled, deferred = await harness.events(account)
    pause = timedelta(seconds=harness.settings.rate_limit_pause_seconds)
    assert isinstance(throttled, c.SenderThrottled)
    assert before + pause <= throttled.until <= harness.clock() + pause
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.retry_at == throttled.until
    assert await harness.copies(command) == 0


@pytest.mark.parametrize("shape", ["mail_sending", "retry_after"])
async def test_a_retry_time_in_either_wild_shape_parks_the_account_until_then(
    harness: Harness, shape: str
) -> None:
    """ "User-rate limit exceeded.  Retry after <RFC 3339 time>", with or without "(Mail
    sending)": the account is parked until exactly that time, and the message waits for it."""
    account = await harness.account()
    await harness.fault(account, kind="error", shape=shape, retry_after_seconds=5400, count=1)
    command = send_email(account)
    await harness.deliver(command)
    throttled, deferred = await harness.events(account)
    assert isinstance(throttled, c.SenderThrottled)
    # The emulator names its own wall-clock time plus 90 minutes (to the millisecond).
    expected = datetime.now(UTC) + timedelta(seconds=5400)
    assert abs((throttled.until - expected).total_seconds()) < 30
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.retry_at == throttled.until
    assert await harness.copies(command) == 0


async def test_a_401_with_googles_status_field_refreshes_the_token_and_sends_once(harness: Harness) -> None:
    """401 ``UNAUTHENTICATED`` ("Request had invalid authentication credentials…"): the token is
    refreshed (auth is told which one was refused) and the send repeated once; one copy arrives."""
    account = await harness.account()
    await harness.fault(account, kind="error", shape="unauthenticated", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    [sent] = await harness.events(account)
    assert isinstance(sent, c.EmailSent)
    assert await harness.copies(command) == 1
    assert harness.auth.calls[account.account_id] == 2


async def test_a_403_scope_insufficient_asks_the_user_to_reconnect(harness: Harness) -> None:
    """403 with ``details[].reason = ACCESS_TOKEN_SCOPE_INSUFFICIENT``: the grant cannot send, and
    only the user reconnecting helps; the message waits instead of failing."""
    account = await harness.account()
    await harness.fault(account, kind="error", shape="scope_insufficient", count=1)
    command = send_email(account)
    await harness.deliver(command)
    events = await harness.events(account)
    assert any(isinstance(event, c.GmailReconnectRequired) for event in events), events
    assert not any(isinstance(event, (c.EmailSent, c.EmailFailed)) for event in events), events
    assert await harness.copies(command) == 0


async def test_the_json_paths_payload_limit_is_never_met_because_large_mail_is_uploaded(
    harness: Harness,
) -> None:
    """Gmail's JSON send path refuses bodies over about 1 MB with 413 "Request payload size
    exceeds the limit: 1048576 bytes."; a 2 MB message goes through ``/upload`` and arrives."""
    account = await harness.account()
    command = send_email(account, html="<p>" + "x" * 2_000_000 + "</p>")
    await harness.deliver(command)
    [sent] = await harness.events(account)
    assert isinstance(sent, c.EmailSent)
    [call] = harness.wire.sends()
    assert "/upload/" in str(call.url)


async def test_a_413_from_the_json_path_fails_the_message_saying_why(harness: Harness) -> None:
    """Were the upload threshold set above Gmail's JSON limit, the 413 would fail the message with
    Gmail's words, not retry it forever."""
    harness.configure(upload_threshold_bytes=8 * 1024 * 1024)
    account = await harness.account()
    command = send_email(account, html="<p>" + "x" * 2_000_000 + "</p>")
    await harness.deliver(command)
    [failed] = await harness.events(account)
    assert isinstance(failed, c.EmailFailed), failed
    assert "1048576" in failed.detail
    assert await harness.copies(command) == 0

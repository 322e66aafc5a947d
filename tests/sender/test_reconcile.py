"""Sends whose answer was lost: looked up in the mailbox, never resent blindly."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from mailmerger_shared import contracts as c
from tests.sender.conftest import REQUEST_TIMEOUT, Harness
from tests.sender.support import METADATA, READONLY, SEND, envelope, send_email
from tests.support import eventually


def _settle(harness: Harness) -> None:
    """Move the clock past the settle time of any claim taken so far."""
    s = harness.settings
    harness.clock.advance(s.prepare_timeout_seconds + REQUEST_TIMEOUT + s.settle_margin_seconds + 1)


def _next_attempt(command: c.SendEmail) -> c.SendEmail:
    return msgspec.structs.replace(command, attempt=command.attempt + 1)


@pytest.mark.parametrize("read_scope", [READONLY, METADATA])
async def test_dropped_connection_is_reconciled_as_sent(harness: Harness, read_scope: str) -> None:
    """Gmail stored the message and the connection died: the mailbox lookup finds it, 0 duplicates."""
    account = await harness.account(SEND, read_scope)
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    [event] = await harness.events(account)
    stored = await harness.stored(command)
    assert isinstance(event, c.EmailSent)
    assert event.reconciled
    assert (event.gmail_id, event.thread_id) == (stored["id"], stored["threadId"])
    await harness.deliver(_next_attempt(command))
    assert await harness.copies(command) == 1


async def test_metadata_scope_reads_the_sent_label_without_searching(harness: Harness) -> None:
    """gmail.metadata forbids q=: the lookup scans SENT with format=metadata instead."""
    account = await harness.account(SEND, METADATA)
    for _ in range(3):
        await harness.deliver(send_email(account))
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    assert isinstance((await harness.events(account))[-1], c.EmailSent)
    lists = [call for call in harness.wire.calls if call.url.path.endswith("/messages")]
    assert lists
    assert all("q" not in call.url.params and call.url.params["labelIds"] == "SENT" for call in lists)


async def test_dropped_connection_without_read_scope_is_unconfirmed(harness: Harness) -> None:
    """With gmail.send alone nothing can be checked: EmailUnconfirmed, and never a resend."""
    account = await harness.account(SEND)
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    _settle(harness)
    await harness.deliver(_next_attempt(command))
    unconfirmed, again = await harness.events(account)
    assert isinstance(unconfirmed, c.EmailUnconfirmed)
    assert unconfirmed.rfc_message_id == command.rfc_message_id
    assert again == unconfirmed
    assert (await harness.row(command.message_id)).state == "unconfirmed"
    assert len(harness.wire.sends()) == 1
    assert await harness.copies(command) == 1


async def test_lost_request_that_never_landed_is_resent_only_once_settled(harness: Harness) -> None:
    """A read timeout whose request Gmail never stored: deferred until the claim settles, then resent once."""
    account = await harness.account(SEND, READONLY)
    harness.wire.break_next("/messages/send", httpx.ReadTimeout("no answer"), forward=False)
    command = send_email(account)
    await harness.deliver(command)
    first = (await harness.events(account))[-1]
    assert isinstance(first, c.EmailDeferred)
    assert first.reason == "awaiting_reconciliation"
    row = await harness.row(command.message_id)
    assert row.state == "ambiguous"
    assert first.retry_at == row.settles_at

    await harness.deliver(_next_attempt(command))  # before it settled: still not resent
    assert len(harness.wire.sends()) == 1
    _settle(harness)
    await harness.deliver(_next_attempt(_next_attempt(command)))
    assert isinstance((await harness.events(account))[-1], c.EmailSent)
    assert await harness.copies(command) == 1


async def test_lost_answer_whose_request_lands_late_is_not_resent(harness: Harness) -> None:
    """The call timed out but Gmail stores the message later: the next attempt finds it, 0 duplicates."""
    account = await harness.account(SEND, READONLY)
    harness.wire.break_next("/messages/send", httpx.ReadTimeout("no answer"), forward=False, late=True)
    command = send_email(account)
    await harness.deliver(command)
    assert (await harness.row(command.message_id)).state == "ambiguous"

    async def landed() -> bool:
        return await harness.copies(command) == 1

    await eventually(landed)
    await harness.deliver(_next_attempt(command))
    sent = (await harness.events(account))[-1]
    assert isinstance(sent, c.EmailSent)
    assert sent.reconciled
    assert await harness.copies(command) == 1


async def test_process_killed_mid_call_is_reconciled_on_redelivery(harness: Harness) -> None:
    """A claim left "sending" by a dead process is looked up when its command comes back."""
    account = await harness.account(SEND, READONLY)
    harness.wire.break_next("/messages/send", RuntimeError("process killed"), forward=True)
    command = send_email(account)
    first = envelope()
    with pytest.raises(RuntimeError, match="process killed"):
        await harness.deliver(command, first)
    assert (await harness.row(command.message_id)).state == "sending"
    await harness.deliver(command, first)  # the broker redelivers the unacknowledged command
    [sent] = await harness.events(account)
    assert isinstance(sent, c.EmailSent)
    assert sent.reconciled
    assert await harness.copies(command) == 1


async def test_claim_of_a_killed_process_without_trace_is_resent_once_settled(harness: Harness) -> None:
    """Killed before its request left: after the claim settles the mailbox is read, then it is sent."""
    account = await harness.account(SEND, READONLY)
    harness.wire.break_next("/messages/send", RuntimeError("process killed"), forward=False)
    command = send_email(account)
    first = envelope()
    with pytest.raises(RuntimeError):
        await harness.deliver(command, first)
    await harness.deliver(command, first)
    [deferred] = await harness.events(account)
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.reason == "delivery_unresolved"
    _settle(harness)
    await harness.deliver(command, first)
    assert isinstance((await harness.events(account))[-1], c.EmailSent)
    assert await harness.copies(command) == 1


async def test_unresolved_claim_without_read_scope_becomes_unconfirmed_once_settled(harness: Harness) -> None:
    """A dead process's claim on a send-only account: deferred while it may be live, then unconfirmed."""
    account = await harness.account(SEND)
    harness.wire.break_next("/messages/send", RuntimeError("process killed"), forward=True)
    command = send_email(account)
    first = envelope()
    with pytest.raises(RuntimeError):
        await harness.deliver(command, first)
    await harness.deliver(command, first)
    _settle(harness)
    await harness.deliver(command, first)
    deferred, unconfirmed = await harness.events(account)
    assert isinstance(deferred, c.EmailDeferred)
    assert isinstance(unconfirmed, c.EmailUnconfirmed)
    assert len(harness.wire.sends()) == 1


async def test_reconciliation_switched_off_resends_blindly(harness: Harness) -> None:
    """With reconcile off (chaos tests) a dropped send is retried without a lookup: a duplicate."""
    harness.configure(reconcile=False)
    account = await harness.account(SEND, READONLY)
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    deferred = (await harness.events(account))[-1]
    assert isinstance(deferred, c.EmailDeferred)
    assert deferred.reason == "answer_lost"
    await harness.deliver(_next_attempt(command))
    assert await harness.copies(command) == 2
    assert not any(call.url.path.endswith("/messages") for call in harness.wire.calls)

"""The user's resends: a newer generation is new work for the ledger, never a replay of the old one."""

from __future__ import annotations

import dataclasses

import msgspec

from mailmerger_shared import contracts as c
from tests.sender.conftest import Harness
from tests.sender.support import READONLY, SEND, send_email


def _resent(command: c.SendEmail) -> c.SendEmail:
    """The command the queue publishes after the user sends the message again."""
    return msgspec.structs.replace(command, attempt=command.attempt + 1, generation=command.generation + 1)


async def test_a_failed_message_sent_again_really_reaches_gmail(harness: Harness) -> None:
    """A newer generation claims a failed row and calls Gmail; the failure is not repeated."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=400, reason="badRequest", count=1)
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(_resent(command))
    failed, sent = await harness.events(account)
    assert isinstance(failed, c.EmailFailed)
    assert isinstance(sent, c.EmailSent)
    assert len(harness.wire.sends()) == 2
    assert await harness.copies(command) == 1
    row = await harness.row(command.message_id)
    assert (row.state, row.generation) == ("sent", 1)


async def test_a_new_attempt_of_the_same_generation_only_repeats_the_failure(harness: Harness) -> None:
    """Without the user's resend, a later attempt (a re-dispatch) is answered from the final row."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=400, reason="badRequest", count=1)
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(msgspec.structs.replace(command, attempt=2))
    first, again = await harness.events(account)
    assert isinstance(first, c.EmailFailed)
    assert again == first
    assert len(harness.wire.sends()) == 1


async def test_a_command_of_an_older_generation_changes_nothing(harness: Harness) -> None:
    """The failed generation's command arriving after the resend sent the message is answered as sent."""
    account = await harness.account()
    await harness.fault(account, kind="error", status=400, reason="badRequest", count=1)
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(_resent(command))
    await harness.deliver(msgspec.structs.replace(command, attempt=3))
    events = await harness.events(account)
    assert isinstance(events[-1], c.EmailSent)
    assert events[-1] == events[-2]
    assert len(harness.wire.sends()) == 2


async def test_a_sent_message_is_never_sent_by_a_newer_generation(harness: Harness) -> None:
    """Even a resend cannot claim a sent row: its EmailSent is published again, Gmail is not called."""
    account = await harness.account()
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(_resent(command))
    first, again = await harness.events(account)
    assert isinstance(first, c.EmailSent)
    assert again == first
    assert await harness.copies(command) == 1
    assert len(harness.wire.sends()) == 1


async def test_an_unconfirmed_message_resent_anyway_is_sent_again(harness: Harness) -> None:
    """With gmail.send alone nothing can be checked: resending an unconfirmed message sends it (a
    second copy when the first had landed, which is what the user accepted)."""
    account = await harness.account(SEND)
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    await harness.deliver(_resent(command))
    unconfirmed, sent = await harness.events(account)
    assert isinstance(unconfirmed, c.EmailUnconfirmed)
    assert isinstance(sent, c.EmailSent)
    assert not sent.reconciled
    assert await harness.copies(command) == 2


async def test_a_resend_looks_the_unconfirmed_message_up_first_once_a_read_scope_exists(
    harness: Harness,
) -> None:
    """The account reconnected with gmail.readonly since: the resend finds the earlier copy in the
    mailbox and records it as sent instead of sending it twice."""
    account = await harness.account(SEND)
    await harness.fault(account, kind="drop_connection", methods=["messages.send"], count=1)
    command = send_email(account)
    await harness.deliver(command)
    assert (await harness.row(command.message_id)).state == "unconfirmed"
    await harness.auth.register(dataclasses.replace(account, scopes=(SEND, READONLY)))
    harness.configure()  # a fresh token cache: the next token carries the new scopes
    await harness.deliver(_resent(command))
    sent = (await harness.events(account))[-1]
    assert isinstance(sent, c.EmailSent)
    assert sent.reconciled
    assert await harness.copies(command) == 1
    assert len(harness.wire.sends()) == 1

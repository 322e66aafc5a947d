"""Incoming mail: the admin API that delivers into a mailbox, and the test-domain rules.

Shapes per GMAIL_FACTS.md 2.5: replies cite the sent Message-ID and thread with it; auto-replies
carry RFC 3834 ``Auto-Submitted``; delivery reports come from the mailer daemon as
``multipart/report; report-type=delivery-status`` with ``X-Failed-Recipients``, threaded with the
original. Rule delays run on the emulator's clock: the tests move it, they never sleep.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulator.helpers import (
    GMAIL_READONLY,
    GMAIL_SEND,
    SENDER,
    FakeClock,
    MakeEmulator,
    bearer,
    build_message,
    encode_raw,
    mint_token,
    send,
)


def header(message: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in message["headers"] if h["name"].lower() == name.lower()), None)


async def sent_message(
    client: httpx.AsyncClient, to: str = "bob@example.com", subject: str = "Quick question"
) -> tuple[str, dict[str, Any]]:
    """A token for SENDER and the admin view of one message SENDER sent to ``to``."""
    token = await mint_token(client, scopes=(GMAIL_SEND, GMAIL_READONLY))
    answer = await send(
        client, token, build_message(to=(to,), subject=subject, message_id="<orig-1@mm.test>")
    )
    assert answer.status_code == 200, answer.text
    detail = (await client.get(f"/_emulator/messages/{answer.json()['id']}")).json()
    return token, detail


async def deliver(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/_emulator/incoming", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def inbox(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        await client.get("/_emulator/messages", params={"user": SENDER, "label": "INBOX"})
    ).json()["messages"]
    return messages


async def test_reply_threads_with_the_sent_message(emulator: httpx.AsyncClient) -> None:
    """A reply is from the recipient, "Re: <subject>", cites the Message-ID and shares the thread."""
    _, original = await sent_message(emulator)
    reply = await deliver(emulator, kind="reply", message_id=original["id"], text="Yes, let's talk.")
    assert reply["threadId"] == original["threadId"]
    assert reply["from"] == "bob@example.com"
    assert reply["to"] == [SENDER]
    assert reply["subject"] == "Re: Quick question"
    assert header(reply, "In-Reply-To") == "<orig-1@mm.test>"
    assert header(reply, "References") == "<orig-1@mm.test>"
    assert reply["labelIds"] == ["INBOX", "UNREAD"]
    assert reply["text"].strip() == "Yes, let's talk."


async def test_reply_references_carry_the_whole_chain(emulator: httpx.AsyncClient) -> None:
    """Replying to a follow-up keeps its References and appends its Message-ID."""
    token, original = await sent_message(emulator)
    follow_up = build_message(
        subject="Re: Quick question",
        message_id="<orig-2@mm.test>",
        in_reply_to="<orig-1@mm.test>",
        references="<orig-1@mm.test>",
    )
    second = (await send(emulator, token, follow_up, thread_id=original["threadId"])).json()
    reply = await deliver(emulator, kind="reply", message_id=second["id"])
    assert header(reply, "References") == "<orig-1@mm.test> <orig-2@mm.test>"
    assert header(reply, "In-Reply-To") == "<orig-2@mm.test>"
    assert reply["subject"] == "Re: Quick question"
    assert reply["threadId"] == original["threadId"]


async def test_reply_from_a_named_sender(emulator: httpx.AsyncClient) -> None:
    """sender overrides who replies (say, a colleague of the recipient)."""
    _, original = await sent_message(emulator)
    reply = await deliver(emulator, kind="reply", message_id=original["id"], sender="carol@example.com")
    assert reply["from"] == "carol@example.com"


async def test_auto_reply_is_rfc3834_and_threaded(emulator: httpx.AsyncClient) -> None:
    """An auto-reply says Auto-Submitted: auto-replied, "Automatic reply:", in the original's thread."""
    _, original = await sent_message(emulator)
    auto = await deliver(emulator, kind="auto_reply", message_id=original["id"])
    assert header(auto, "Auto-Submitted") == "auto-replied"
    assert auto["subject"] == "Automatic reply: Quick question"
    assert auto["threadId"] == original["threadId"]
    assert auto["labelIds"] == ["INBOX", "UNREAD"]


async def test_hard_bounce_is_a_failure_dsn_from_the_mailer_daemon(emulator: httpx.AsyncClient) -> None:
    """A bounce: mailer-daemon, multipart/report delivery-status, X-Failed-Recipients, "(Failure)"."""
    _, original = await sent_message(emulator)
    dsn = await deliver(emulator, kind="bounce", message_id=original["id"])
    assert header(dsn, "From") == "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    assert dsn["subject"] == "Delivery Status Notification (Failure)"
    assert dsn["mimeType"] == "multipart/report"
    content_type = header(dsn, "Content-Type") or ""
    assert "report-type=delivery-status" in content_type
    assert header(dsn, "X-Failed-Recipients") == "bob@example.com"
    assert header(dsn, "In-Reply-To") == "<orig-1@mm.test>"
    assert dsn["threadId"] == original["threadId"]


async def test_delay_is_a_soft_dsn(emulator: httpx.AsyncClient) -> None:
    """A delay notice says "(Delay)" and names no failed recipient (nothing failed yet)."""
    _, original = await sent_message(emulator)
    dsn = await deliver(emulator, kind="delay", message_id=original["id"], recipient="bob@example.com")
    assert dsn["subject"] == "Delivery Status Notification (Delay)"
    assert header(dsn, "X-Failed-Recipients") is None
    assert dsn["threadId"] == original["threadId"]


async def test_raw_mail_threads_by_its_references(emulator: httpx.AsyncClient) -> None:
    """Raw mail citing a sent message with a matching subject joins its thread; other mail does not."""
    _, original = await sent_message(emulator)
    cited = build_message(
        sender="bob@example.com",
        to=(SENDER,),
        subject="RE: Quick question",
        in_reply_to="<orig-1@mm.test>",
    )
    joined = await deliver(emulator, kind="raw", user=SENDER, raw=encode_raw(cited))
    assert joined["threadId"] == original["threadId"]
    unrelated = build_message(sender="news@example.com", to=(SENDER,), subject="Weekly digest")
    apart = await deliver(emulator, kind="raw", user=SENDER, raw=encode_raw(unrelated))
    assert apart["threadId"] == apart["id"]
    assert apart["labelIds"] == ["INBOX", "UNREAD"]


async def test_incoming_for_an_unknown_message_is_404(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.post("/_emulator/incoming", json={"kind": "reply", "message_id": "0" * 16})
    assert answer.status_code == 404


async def test_incoming_reply_without_a_message_is_refused(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.post("/_emulator/incoming", json={"kind": "reply", "user": SENDER})
    assert answer.status_code == 400


async def test_delayed_incoming_arrives_when_the_clock_passes(
    emulator: httpx.AsyncClient, clock: FakeClock
) -> None:
    """delay_seconds schedules the mail on the emulator's clock."""
    _, original = await sent_message(emulator)
    answer = await emulator.post(
        "/_emulator/incoming", json={"kind": "reply", "message_id": original["id"], "delay_seconds": 60}
    )
    assert answer.status_code == 202
    assert await inbox(emulator) == []
    clock.advance(60)
    assert [m["subject"] for m in await inbox(emulator)] == ["Re: Quick question"]


async def test_bounces_test_domain_bounces_after_the_delay(
    emulator: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Mail to an address at bounces.example.com comes back as a Failure DSN once the delay has passed."""
    _, original = await sent_message(emulator, to="nobody@bounces.example.com")
    clock.advance(2.9)
    assert await inbox(emulator) == []
    clock.advance(0.1)
    [dsn] = await inbox(emulator)
    assert dsn["subject"] == "Delivery Status Notification (Failure)"
    assert header(dsn, "X-Failed-Recipients") == "nobody@bounces.example.com"
    assert dsn["threadId"] == original["threadId"]


async def test_replies_test_domain_replies(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    _, original = await sent_message(emulator, to="dana@replies.example.com")
    clock.advance(3)
    [reply] = await inbox(emulator)
    assert (reply["from"], reply["subject"], reply["threadId"]) == (
        "dana@replies.example.com",
        "Re: Quick question",
        original["threadId"],
    )


async def test_ooo_test_domain_auto_replies(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    await sent_message(emulator, to="erin@ooo.example.com")
    clock.advance(3)
    [auto] = await inbox(emulator)
    assert header(auto, "Auto-Submitted") == "auto-replied"


async def test_delays_test_domain_soft_bounces(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    await sent_message(emulator, to="frank@delays.example.com")
    clock.advance(3)
    [dsn] = await inbox(emulator)
    assert dsn["subject"] == "Delivery Status Notification (Delay)"


async def test_other_domains_get_nothing_back(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    await sent_message(emulator, to="bob@example.com")
    clock.advance(3600)
    assert await inbox(emulator) == []
    assert (await emulator.get("/_emulator/incoming")).json() == {"pending": 0}


async def test_rule_delay_is_configurable(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    client = await make_emulator(incoming_delay_seconds=600)
    await sent_message(client, to="nobody@bounces.example.com")
    clock.advance(599)
    assert await inbox(client) == []
    clock.advance(1)
    assert len(await inbox(client)) == 1


async def test_rules_can_be_turned_off(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    client = await make_emulator(incoming_rules_enabled=False)
    await sent_message(client, to="nobody@bounces.example.com")
    clock.advance(3600)
    assert await inbox(client) == []


async def test_each_rule_recipient_gets_its_own_answer(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """One message to a bouncing and a replying address brings back one DSN and one reply."""
    token = await mint_token(emulator)
    await send(
        emulator, token, build_message(to=("a@bounces.example.com", "b@replies.example.com", "c@example.com"))
    )
    clock.advance(3)
    subjects = sorted(m["subject"] for m in await inbox(emulator))
    assert subjects == ["Delivery Status Notification (Failure)", "Re: Hello"]


async def test_reset_drops_scheduled_mail(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    await sent_message(emulator, to="nobody@bounces.example.com")
    assert (await emulator.get("/_emulator/incoming")).json() == {"pending": 1}
    await emulator.post("/_emulator/reset")
    clock.advance(3)
    assert (await emulator.get("/_emulator/messages")).json()["messages"] == []


async def test_incoming_mail_is_read_through_the_gmail_api(
    emulator: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The DSN is visible to messages.list in:inbox, with INBOX and UNREAD."""
    token, original = await sent_message(emulator, to="nobody@bounces.example.com")
    clock.advance(3)
    listed = await emulator.get(
        "/gmail/v1/users/me/messages", params={"q": "in:inbox"}, headers=bearer(token)
    )
    [entry] = listed.json()["messages"]
    assert entry["threadId"] == original["threadId"]
    got = await emulator.get(
        f"/gmail/v1/users/me/messages/{entry['id']}", params={"format": "minimal"}, headers=bearer(token)
    )
    assert got.json()["labelIds"] == ["INBOX", "UNREAD"]


async def test_reply_to_a_non_ascii_subject_threads(emulator: httpx.AsyncClient) -> None:
    """The reply's subject is RFC 2047-encoded and still matches the original's for threading."""
    _, original = await sent_message(emulator, subject="Café crème à 10 h")
    reply = await deliver(emulator, kind="reply", message_id=original["id"])
    assert reply["subject"] == "Re: Café crème à 10 h"
    assert reply["threadId"] == original["threadId"]

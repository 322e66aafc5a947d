"""Header injection, end to end: hostile text through every way it reaches a header, read back
from the mailbox Gmail (the emulator) keeps.

Each test puts a corpus (RFC 2047 encoded words decoding to CRLF + ``Bcc:``, folded values, Unicode
line separators, NEL, controls, overlong text) through one path: direct compose, template fields,
campaign CSV cells, attachment file names, the Google profile name. What was delivered is read raw
(``messages.get format=raw``) and must have exactly the header fields expected in every part,
exactly the recipients given (the emulator records Bcc apart), and a subject, sender name and
file names that decode to the text as typed, or as cleaned where the text is cleaned rather than
refused (file names, Google's profile name). What can never be sent is a 4xx naming the field,
and a row problem in a campaign.

The all-in-one only: the sender's code is the same in both topologies, and the split run would
repeat every send for nothing.
"""

from __future__ import annotations

import base64
import csv
import email
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import PDF, RunningSystem, User, follow_connect_url, sign_up

pytestmark = pytest.mark.system

READONLY = "https://www.googleapis.com/auth/gmail.readonly"
RECIPIENT = "recipient@example.org"
TOP_FIELDS = ["From", "To", "Subject", "Date", "MIME-Version", "Message-ID", "Content-Type"]
CAMPAIGN_TOP_FIELDS = [*TOP_FIELDS[:-1], "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type"]
PART_FIELDS = {
    "text/plain": ["Content-Type", "Content-Transfer-Encoding"],
    "text/html": ["Content-Type", "Content-Transfer-Encoding"],
    "multipart/alternative": ["Content-Type"],
}
ATTACHMENT_FIELDS = ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"]
ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")

BCC_LINE = "x\r\nBcc: someone@example.org"
# Sendable text that a lenient reader would turn into a Bcc line: each must arrive as typed.
ENCODED_WORDS = [
    "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=",
    f"=?UTF-8?B?{base64.b64encode(BCC_LINE.encode()).decode()}?=",
    "Hello =?utf-8?q?=0D=0A?=Bcc: someone@example.org",
    "=?iso-8859-1?q?a=0ABcc:_someone@example.org?= and =?utf-8?Q?=0D=0ACc:_x@example.org?=",
    "Grüße =?utf-8?q?x=0D=0ABcc:_someone@example.org?= " * 12,  # ~640 characters: many encoded words
]
# Text no header can hold: refused at compose, naming the field.
UNSENDABLE = [
    "Hello\r\n Bcc: someone@example.org",  # folded
    "Hello\u2028Bcc: someone@example.org",
    "Hello\u2029Bcc: someone@example.org",
    "Hello\x85Bcc: someone@example.org",
    "Hello\x1b[31m",
]


@pytest.fixture(scope="module")
def topology() -> str:
    return "all-in-one"


@pytest.fixture
async def mailbox(system: RunningSystem) -> AsyncIterator[Mailbox]:
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=30.0) as google:
        yield Mailbox(google)


@dataclass
class Mailbox:
    """The emulator's view of what was delivered: its listing, and the raw message Gmail keeps."""

    google: httpx.AsyncClient

    async def delivered(self, gmail: str, rfc_message_id: str) -> tuple[dict[str, Any], bytes]:
        answer = await self.google.get(
            "/_emulator/messages", params={"user": gmail, "rfc822msgid": rfc_message_id}
        )
        [stored] = answer.json()["messages"]
        minted = await self.google.post("/_emulator/tokens", json={"email": gmail, "scopes": [READONLY]})
        assert minted.status_code == 200, minted.text
        answer = await self.google.get(
            f"/gmail/v1/users/me/messages/{stored['id']}",
            params={"format": "raw"},
            headers={"Authorization": f"Bearer {minted.json()['access_token']}"},
        )
        assert answer.status_code == 200, answer.text
        encoded: str = answer.json()["raw"]
        return stored, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))

    async def of_email(
        self, user: User, email_id: int, gmail: str | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """``delivered`` for the user's email ``email_id``, once the sender settled it as sent."""
        email_ = await sent(user, email_id)
        return await self.delivered(gmail or user.gmail or "", email_["rfc_message_id"])


def display_name(header: AddressHeader, raw_head: bytes, field: str) -> str:
    """The display name of a one-mailbox field as RFC 2047 reads it: the stdlib's phrase parser
    (3.11) keeps the blanks between encoded words, which RFC 2047 drops, so encoded words are
    decoded here (after checking the stdlib saw the same words)."""
    [address] = header.addresses
    unfolded = raw_head.decode("ascii").replace("\r\n ", " ")
    [value] = [line for line in unfolded.split("\r\n") if line.startswith(f"{field}:")]
    words = [base64.b64decode(word).decode() for word in ENCODED_WORD.findall(value)]
    if not words:
        return address.display_name
    assert " ".join(words).split() == address.display_name.split()
    return "".join(words)


def check_delivered(
    stored: dict[str, Any],
    raw: bytes,
    *,
    sender: str,
    sender_name: str,
    recipient: str,
    subject: str,
    filenames: list[str] | None = None,
    campaign: bool = False,
) -> None:
    """Exactly the fields, recipients, subject, sender name and file names meant, in the raw
    message; campaign mail also carries RFC 8058's two unsubscribe fields."""
    assert (stored["to"], stored["cc"], stored["bcc"]) == ([recipient], [], [])
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert not [line for line in head.split(b"\r\n") if line.lower().startswith((b"bcc", b"cc:"))]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.keys() == (CAMPAIGN_TOP_FIELDS if campaign else TOP_FIELDS)
    assert [a.addr_spec for a in message["From"].addresses] == [sender]
    assert [a.addr_spec for a in message["To"].addresses] == [recipient]
    assert display_name(message["From"], head, "From") == sender_name
    assert str(message["Subject"]) == subject
    parts = list(message.walk())[1:]
    attachments = [part for part in parts if part.get_content_disposition() == "attachment"]
    for part in parts:
        expected = ATTACHMENT_FIELDS if part in attachments else PART_FIELDS[part.get_content_type()]
        assert part.keys() == expected, (part.get_content_type(), part.keys())
    found = [part["Content-Disposition"].params["filename"] for part in attachments]
    assert found == (filenames or [])


async def compose(user: User, **fields: Any) -> httpx.Response:
    body = {"account_id": user.account_id, "to": [RECIPIENT], "subject": "Hello", "html": "<p>Hi</p>"}
    return await user.client.post("/v1/emails/", json={**body, **fields})


async def account_name(user: User) -> str:
    """The display name the user's connected account sends under (its Google profile name)."""
    senders = (await user.client.get("/v1/senders/")).json()
    [name] = [s["display_name"] or "" for s in senders if s["account_id"] == user.account_id]
    return str(name)


async def sent(user: User, email_id: int) -> dict[str, Any]:
    """The email once the sender settled it, which must be as sent."""

    async def settled() -> dict[str, Any] | None:
        found: dict[str, Any] = (await user.client.get(f"/v1/emails/{email_id}")).json()
        return found if found["state"] not in ("scheduled", "dispatched") else None

    settled_email = await eventually(settled, timeout=30, interval=0.2)
    assert settled_email["state"] == "sent", settled_email
    return settled_email


async def test_hostile_subjects_composed_directly_arrive_as_typed(
    sending_user: User, mailbox: Mailbox
) -> None:
    """Encoded words decoding to CRLF + Bcc, composed as subjects, are delivered as that very
    text, to exactly the one recipient, with exactly the fields a message has."""
    for subject in ENCODED_WORDS:
        response = await compose(sending_user, subject=subject)
        assert response.status_code == 201, response.text
        stored, raw = await mailbox.of_email(sending_user, response.json()["id"])
        check_delivered(
            stored,
            raw,
            sender=sending_user.gmail or "",
            sender_name=await account_name(sending_user),
            recipient=RECIPIENT,
            subject=subject,
        )
        assert stored["subject"] == subject


@pytest.mark.parametrize("subject", UNSENDABLE)
async def test_subjects_no_header_can_hold_are_refused_at_compose(sending_user: User, subject: str) -> None:
    """A folded value, a Unicode line or paragraph separator, NEL or a control in a subject is a
    422 naming the subject and the character; nothing is queued."""
    response = await compose(sending_user, subject=subject)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("subject: contains a ")
    assert (await sending_user.client.get("/v1/emails/")).json()["items"] == []


async def test_a_nul_in_a_subject_is_refused(sending_user: User) -> None:
    """A NUL is the input guard's 422, naming the subject."""
    response = await compose(sending_user, subject="Hello\x00Bcc: someone@example.org")
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("$.subject contains a NUL character")


async def test_an_overlong_subject_is_refused(sending_user: User) -> None:
    """A 10,000-character subject is past the API's 998 (RFC 5322's line): a 400 naming the
    subject and its limit."""
    response = await compose(sending_user, subject="x" * 10_000)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [
        {"message": "Expected `str` of length <= 998", "key": "subject", "source": "body"}
    ]


async def create_template(user: User, subject: str) -> dict[str, Any]:
    response = await user.client.post(
        "/v1/templates/", json={"name": f"t-{uuid.uuid4().hex[:6]}", "subject": subject, "html": "<p>Hi</p>"}
    )
    assert response.status_code == 201, response.text
    template: dict[str, Any] = response.json()
    return template


async def test_template_fields_rendered_into_the_subject_arrive_as_typed(
    sending_user: User, mailbox: Mailbox
) -> None:
    """A template field holding an encoded word is subject text; one holding a line separator is
    folded to a space by the renderer; one holding a control is a 422 naming the fields."""
    template = await create_template(sending_user, "Re: {{ name }}")
    fill = {"template_id": template["id"], "version": template["version"]}
    cases = [(name, f"Re: {name.strip()}") for name in ENCODED_WORDS]
    cases.append(("Ada\u2028Bcc: someone@example.org", "Re: Ada Bcc: someone@example.org"))
    for name, subject in cases:
        response = await compose(
            sending_user, subject=None, html=None, template={**fill, "fields": {"name": name}}
        )
        assert response.status_code == 201, response.text
        stored, raw = await mailbox.of_email(sending_user, response.json()["id"])
        check_delivered(
            stored,
            raw,
            sender=sending_user.gmail or "",
            sender_name=await account_name(sending_user),
            recipient=RECIPIENT,
            subject=subject,
        )
    response = await compose(
        sending_user, subject=None, html=None, template={**fill, "fields": {"name": "Ada\x1b[31m"}}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("template.fields (the rendered subject): contains a control")


async def test_campaign_cells_rendered_into_subjects_arrive_as_typed(
    sending_user: User, mailbox: Mailbox
) -> None:
    """CSV cells with encoded words are sent as subject text, each to its own row's recipient
    only; a cell with a control is the row's invalid_subject problem, left out at launch."""
    client = sending_user.client
    template = await create_template(sending_user, "Hi {{ name }}")
    response = await client.post(
        "/v1/campaigns/",
        json={
            "name": "Hostile cells",
            "account_id": sending_user.account_id,
            "template_id": template["id"],
            "template_version": template["version"],
        },
    )
    assert response.status_code == 201, response.text
    campaign_id = response.json()["id"]
    names = [*ENCODED_WORDS, "Ada\u2028Lovelace", "Ada\x1b[31m"]
    rows = [[f"row{i}@example.org", name] for i, name in enumerate(names)]
    table = io.StringIO()
    csv.writer(table).writerows([["email", "name"], *rows])
    response = await client.put(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=table.getvalue().encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"rows": len(rows), "valid": len(rows) - 1, "problems": {"invalid_subject": 1}}
    report = (await client.get(f"/v1/campaigns/{campaign_id}/report")).json()
    assert [(p["row"], p["problem"]) for p in report["problems"]] == [(len(rows), "invalid_subject")]
    response = await client.post(f"/v1/campaigns/{campaign_id}/launch", json={"skip_invalid": True})
    assert response.status_code == 200, response.text

    async def finished() -> dict[str, Any] | None:
        progress: dict[str, Any] = (await client.get(f"/v1/campaigns/{campaign_id}/progress")).json()
        return progress if progress["state"] == "completed" else None

    progress = await eventually(finished, timeout=60, interval=0.3)
    assert {state: n for state, n in progress["counts"].items() if n} == {"sent": len(rows) - 1}
    page = (await client.get("/v1/emails/", params={"campaign_id": campaign_id, "limit": 100})).json()
    by_address = {item["to"][0]: item for item in page["items"]}
    expected = {address: f"Hi {name.strip()}" for address, name in rows[:-2]}
    expected[rows[-2][0]] = "Hi Ada Lovelace"
    assert set(by_address) == set(expected)
    for address, subject in expected.items():
        stored, raw = await mailbox.delivered(sending_user.gmail or "", by_address[address]["rfc_message_id"])
        check_delivered(
            stored,
            raw,
            sender=sending_user.gmail or "",
            sender_name=await account_name(sending_user),
            recipient=address,
            subject=subject,
            campaign=True,
        )


async def test_hostile_attachment_file_names_arrive_as_stored(sending_user: User, mailbox: Mailbox) -> None:
    """File names with encoded words, line separators or 300 characters are cleaned at upload
    (separators become spaces, 200 characters and 255 bytes at most, the extension kept) and
    delivered as RFC 2231 parameters decoding to exactly the stored name, each part with its
    three fields."""
    uploads = [
        (
            "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=.pdf",
            "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=.pdf",
        ),
        ("cv\u2028Bcc: someone@example.org\u2029.pdf", "cv Bcc: someone@example.org .pdf"),
        ("r" * 296 + ".pdf", "r" * 196 + ".pdf"),
        ("Lebenslauf Jürgen \u2013 履歴書 " * 11 + ".pdf", None),
    ]
    ids, stored_names = [], []
    for name, cleaned in uploads:
        response = await sending_user.client.post(
            "/v1/attachments/", files={"file": (name, PDF, "application/pdf")}, data={"kind": "other"}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        stored_names.append(response.json()["filename"])
        if cleaned is not None:
            assert response.json()["filename"] == cleaned
    assert stored_names[-1].startswith("Lebenslauf Jürgen \u2013 履歴書 ")
    assert stored_names[-1].endswith(".pdf")
    assert len(stored_names[-1].encode()) <= 255  # storage's limit: many RFC 2231 sections
    response = await compose(sending_user, attachment_ids=ids)
    assert response.status_code == 201, response.text
    stored, raw = await mailbox.of_email(sending_user, response.json()["id"])
    assert [a["filename"] for a in stored["attachments"]] == stored_names
    check_delivered(
        stored,
        raw,
        sender=sending_user.gmail or "",
        sender_name=await account_name(sending_user),
        recipient=RECIPIENT,
        subject="Hello",
        filenames=stored_names,
    )


async def connect_named_gmail(system: RunningSystem, user: User, mailbox: Mailbox, profile_name: str) -> str:
    """Connect a Google account whose profile name is ``profile_name``; returns its address once
    the queue knows it as a sender."""
    gmail = f"named-{uuid.uuid4().hex[:10]}@gmail.local"
    created = await mailbox.google.post("/_emulator/users", json={"email": gmail, "name": profile_name})
    assert created.status_code == 201, created.text
    response = await user.client.post("/v1/auth/google/connect-tickets")
    assert response.status_code == 201, response.text
    finish = await follow_connect_url(system.base_url, response.json()["url"], gmail)
    assert "#at=" in finish, finish

    async def sender_known() -> int | None:
        senders = (await user.client.get("/v1/senders/")).json()
        return next((s["account_id"] for s in senders if s["email"] == gmail), None)

    user.account_id = await eventually(sender_known, timeout=20)
    return gmail


@pytest.mark.parametrize(
    ("profile_name", "sender_name"),
    [
        ("=?utf-8?q?x=0D=0ABcc:_someone@example.org?=", "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="),
        ("Ada\r\nBcc: someone@example.org", "Ada Bcc: someone@example.org"),
        ("Ada\u2028Bcc: someone@example.org\x00\u2029", "Ada Bcc: someone@example.org"),
        ("Zoë\x85Ünïcødé 山田 " * 20, ("Zoë Ünïcødé 山田 " * 20)[:200].rstrip()),
    ],
)
async def test_the_google_profile_name_names_the_sender_cleaned(
    system: RunningSystem, mailbox: Mailbox, profile_name: str, sender_name: str
) -> None:
    """Google's profile name, which the user cannot fix, becomes the From name cleaned (line
    breaks as spaces, controls and separators gone, 200 characters at most) and encoded: the
    message has exactly its fields and its one recipient."""
    user = await sign_up(system, "named")
    try:
        gmail = await connect_named_gmail(system, user, mailbox, profile_name)
        response = await compose(user)
        assert response.status_code == 201, response.text
        stored, raw = await mailbox.of_email(user, response.json()["id"], gmail)
        check_delivered(
            stored, raw, sender=gmail, sender_name=sender_name, recipient=RECIPIENT, subject="Hello"
        )
    finally:
        await user.client.aclose()


async def test_a_plain_message_still_has_exactly_its_fields(sending_user: User, mailbox: Mailbox) -> None:
    """The control case: an ordinary email passes the same checks."""
    response = await compose(sending_user, subject="Quarterly update")
    assert response.status_code == 201, response.text
    stored, raw = await mailbox.of_email(sending_user, response.json()["id"])
    check_delivered(
        stored,
        raw,
        sender=sending_user.gmail or "",
        sender_name=await account_name(sending_user),
        recipient=RECIPIENT,
        subject="Quarterly update",
    )

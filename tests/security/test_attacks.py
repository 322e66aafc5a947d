"""An attack corpus against the running system: each attack is refused, with the right status,
within a bounded time, and nothing it tried reaches a delivered message.

Bounds (``BOUND_SECONDS``) are generous ceilings that only a hang or an unbounded computation can
cross; they are not benchmarks.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import PDF, SystemUnderTest, User, connect_gmail, emulator_messages, sign_up

pytestmark = pytest.mark.system

BOUND_SECONDS = 5.0
T = TypeVar("T")


async def within(answer: Awaitable[T], seconds: float = BOUND_SECONDS) -> T:
    async with asyncio.timeout(seconds):
        return await answer


# --- template injection -------------------------------------------------------------------------

SANDBOX_ESCAPES = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals-os-popen": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "dunder-class": "{{ name.__class__ }}",
    "attr-filter": "{{ name|attr('__class__') }}",
    "include-file": "{% include '/etc/passwd' %}",
    "import": "{% import 'os' as os %}",
}

RESOURCE_BOMBS = {
    "huge-range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested-loops": "{% for i in range(9999) %}{% for j in range(9999) %}x{% endfor %}{% endfor %}",
    "huge-string": "{{ 'a' * 100000000 }}",
}


@pytest.mark.parametrize("payload", SANDBOX_ESCAPES.values(), ids=SANDBOX_ESCAPES.keys())
async def test_template_reaching_python_internals_is_refused_at_create(user: User, payload: str) -> None:
    """Creating a template that escapes the sandbox is a 422 naming the problem."""
    response = await within(
        user.client.post("/v1/templates/", json={"name": "evil", "subject": "s", "html": payload})
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("payload", SANDBOX_ESCAPES.values(), ids=SANDBOX_ESCAPES.keys())
async def test_template_reaching_python_internals_is_refused_by_validate(user: User, payload: str) -> None:
    """The validate route refuses the same templates (422)."""
    response = await within(
        user.client.post("/v1/templates/validate", json={"subject": payload, "html": "x"})
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("payload", RESOURCE_BOMBS.values(), ids=RESOURCE_BOMBS.keys())
async def test_template_exhausting_resources_is_refused_at_preview(user: User, payload: str) -> None:
    """A template whose rendering would explode is stopped by the engine's limits: 422, quickly."""
    created = await user.client.post("/v1/templates/", json={"name": "bomb", "subject": "s", "html": payload})
    if created.status_code == 422:  # refused already at create: as good
        return
    assert created.status_code == 201, created.text
    response = await within(
        user.client.post(f"/v1/templates/{created.json()['id']}/preview", json={"fields": {}})
    )
    assert response.status_code == 422, response.text


async def test_field_values_are_data_never_template_code(user: User) -> None:
    """A field holding template syntax and HTML is rendered literally, and escaped in the HTML body."""
    created = (
        await user.client.post(
            "/v1/templates/", json={"name": "t", "subject": "Hi {{ name }}", "html": "<p>{{ name }}</p>"}
        )
    ).json()
    value = "{{ 7*7 }}<script>alert(1)</script>"
    response = await within(
        user.client.post(f"/v1/templates/{created['id']}/preview", json={"fields": {"name": value}})
    )
    assert response.status_code == 200, response.text
    assert response.json()["html"] == "<p>{{ 7*7 }}&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert "49" not in response.json()["subject"]


# --- campaigns carrying injections ----------------------------------------------------------------


@dataclass
class Attacker:
    user: User
    template_id: int


@pytest.fixture(scope="module")
async def attacker(system: SystemUnderTest) -> AsyncIterator[Attacker]:
    signed_up = await sign_up(system, "attacker")
    await connect_gmail(signed_up, system.base_url)
    template = await signed_up.client.post(
        "/v1/templates/",
        json={"name": "t", "subject": "Hi {{ name }}", "html": "<p>Dear {{ name }}</p>"},
    )
    # The control: a clean email from this account reaches the mailbox, so an empty mailbox below
    # could only mean "refused", never "the pipeline is down".
    control = await signed_up.client.post(
        "/v1/emails/",
        json={
            "account_id": signed_up.account_id,
            "to": ["control@example.org"],
            "subject": "Control",
            "html": "<p>control</p>",
        },
    )
    assert control.status_code == 201, control.text

    async def control_sent() -> bool:
        email = (await signed_up.client.get(f"/v1/emails/{control.json()['id']}")).json()
        return bool(email["state"] == "sent")

    await eventually(control_sent, timeout=20)
    try:
        yield Attacker(signed_up, template.json()["id"])
    finally:
        await signed_up.client.aclose()


async def build_campaign(attacker: Attacker, template_id: int, rows: list[dict[str, str]]) -> tuple[int, Any]:
    client = attacker.user.client
    campaign = await client.post(
        "/v1/campaigns/",
        json={
            "name": "c",
            "account_id": attacker.user.account_id,
            "template_id": template_id,
            "template_version": 1,
        },
    )
    assert campaign.status_code == 201, campaign.text
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    built = await within(
        client.put(
            f"/v1/campaigns/{campaign.json()['id']}/recipients",
            content=buffer.getvalue().encode(),
            headers={"Content-Type": "text/csv"},
        )
    )
    assert built.status_code == 200, built.text
    return campaign.json()["id"], built.json()


async def test_campaign_row_values_are_not_rendered_as_template_code(attacker: Attacker) -> None:
    """In a campaign build, a cell with template syntax and a script tag stays literal and escaped."""
    campaign_id, summary = await build_campaign(
        attacker,
        attacker.template_id,
        [{"email": "row@example.org", "name": "{{ 7*7 }}<script>x</script>"}],
    )
    assert summary["valid"] == 1
    row = (await attacker.user.client.get(f"/v1/campaigns/{campaign_id}/rows/1")).json()
    assert row["html"] == "<p>Dear {{ 7*7 }}&lt;script&gt;x&lt;/script&gt;</p>"


async def test_campaign_on_an_exploding_template_marks_rows_unrenderable_quickly(attacker: Attacker) -> None:
    """Building a list on a template that would explode reports render_error per row, in bounded time."""
    bomb = await attacker.user.client.post(
        "/v1/templates/", json={"name": "bomb", "subject": "s", "html": RESOURCE_BOMBS["huge-range"]}
    )
    assert bomb.status_code == 201, bomb.text
    rows = [{"email": f"r{i}@example.org", "name": "n"} for i in range(50)]
    _, summary = await build_campaign(attacker, bomb.json()["id"], rows)
    assert summary == {"rows": 50, "valid": 0, "problems": {"render_error": 50}}


# --- header injection ---------------------------------------------------------------------------

EVIL = "evil@example.org"
CRLF_BCC = f"\r\nBcc: {EVIL}"
INJECTED = "\r\nX-Injected: yes"


def compose(attacker: Attacker, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": attacker.user.account_id,
        "to": ["victim@example.org"],
        "subject": "Hello",
        "html": "<p>hi</p>",
        **fields,
    }


def legacy(**fields: Any) -> dict[str, Any]:
    return {"subject": "Hello", "body": "<p>hi</p>", "to_email": "victim@example.org", **fields}


V1_INJECTIONS = {
    "subject": {"subject": "Hello" + CRLF_BCC},
    "subject-lf-only": {"subject": "Hello\nX-Injected: yes"},
    "to": {"to": ["victim@example.org" + CRLF_BCC]},
    "to-display-name": {"to": [f'"Victim{INJECTED}" <victim@example.org>']},
    "cc": {"cc": ["friend@example.org" + INJECTED]},
    "bcc": {"bcc": ["friend@example.org" + INJECTED]},
}

LEGACY_INJECTIONS = {
    "subject": {"subject": "Hello" + CRLF_BCC},
    "to_email": {"to_email": "victim@example.org" + CRLF_BCC},
    "cc_email": {"cc_email": "friend@example.org" + INJECTED},
    "bcc_email": {"bcc_email": "friend@example.org" + INJECTED},
}


@pytest.mark.parametrize("fields", V1_INJECTIONS.values(), ids=V1_INJECTIONS.keys())
async def test_line_breaks_in_a_composed_emails_headers_are_422(attacker: Attacker, fields: Any) -> None:
    """CR/LF in subject, to, cc, bcc or a display name of POST /v1/emails is a 422."""
    response = await within(attacker.user.client.post("/v1/emails/", json=compose(attacker, **fields)))
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("fields", LEGACY_INJECTIONS.values(), ids=LEGACY_INJECTIONS.keys())
@pytest.mark.parametrize("route", ["/api/email/send-email-now", "/api/queue/add-to-queue"])
async def test_line_breaks_in_a_legacy_emails_headers_are_422(
    attacker: Attacker, route: str, fields: Any
) -> None:
    """CR/LF in the legacy routes' subject or address fields is a 422 in the envelope."""
    response = await within(attacker.user.client.post(route, json=legacy(**fields)))
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False


async def test_line_break_in_a_field_rendered_into_the_subject_never_becomes_a_header(
    attacker: Attacker, system: SystemUnderTest
) -> None:
    """CR/LF in a field merged into the subject (email, campaign) never yields a header or recipient."""
    client = attacker.user.client
    evil_name = "Mallory" + CRLF_BCC + INJECTED
    composed = await client.post(
        "/v1/emails/",
        json={
            "account_id": attacker.user.account_id,
            "to": ["victim@example.org"],
            "template": {"template_id": attacker.template_id, "version": 1, "fields": {"name": evil_name}},
        },
    )
    assert composed.status_code in (201, 422), composed.text
    campaign_id, summary = await build_campaign(
        attacker, attacker.template_id, [{"email": "row@example.org", "name": evil_name}]
    )
    launched = await client.post(f"/v1/campaigns/{campaign_id}/launch", json={"skip_invalid": True})
    assert launched.status_code == 200, launched.text
    expected = (composed.status_code == 201) + summary["valid"]
    assert expected > 0, "both refused: then nothing can be checked at the mailbox (fine, but say so)"

    pending: list[Any] = []

    async def settled() -> bool:
        page = (await client.get("/v1/emails/", params={"state": ["scheduled", "dispatched"]})).json()
        pending[:] = page["items"]
        return not pending

    try:
        await eventually(settled, timeout=30, interval=0.2)
    except AssertionError:
        details = [(await client.get(f"/v1/emails/{e['id']}")).json() for e in pending]
        raise AssertionError(f"still pending: {details}") from None
    messages = await emulator_messages(system.emulator_url, attacker.user.gmail or "")
    assert len(messages) >= expected
    for message in messages:
        names = [h["name"].lower() for h in message["headers"]]
        assert "x-injected" not in names
        assert "bcc" not in names
        assert EVIL not in message["to"] + message["cc"] + message["bcc"]
        assert "\r" not in message["subject"]
        assert "\n" not in message["subject"]


# --- upload spoofing ------------------------------------------------------------------------------

SPOOFED = {
    "exe-bytes-named-pdf": ("resume.pdf", b"MZ\x90\x00\x03\x00\x00\x00" * 32, "application/pdf"),
    "double-extension-exe": ("resume.pdf.exe", PDF, "application/pdf"),
    "double-extension-html": ("resume.pdf.html", PDF, "text/html"),
    "html-page": ("page.html", b"<html><script>alert(1)</script></html>", "text/html"),
    "binary-named-txt": ("notes.txt", b"\x00\x01\x02\x03binary", "text/plain"),
    "svg-script": ("logo.svg", b"<svg onload='alert(1)'/>", "image/svg+xml"),
}


@pytest.mark.parametrize(("name", "content", "media"), SPOOFED.values(), ids=SPOOFED.keys())
async def test_spoofed_upload_is_415(user: User, name: str, content: bytes, media: str) -> None:
    """Wrong magic bytes, a dangerous or double extension: 415 on the v1 upload."""
    response = await within(
        user.client.post("/v1/attachments/", files={"file": (name, content, media)}, data={"kind": "other"})
    )
    assert response.status_code == 415, response.text


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.pdf", "..\\..\\windows\\win.pdf", "/abs/path.pdf", "evil\r\nX-Injected: 1.pdf"]
)
async def test_path_or_line_breaks_in_an_upload_name_are_stripped(user: User, name: str) -> None:
    """A file name with a path or CR/LF is stored by its plain base name, never with separators."""
    response = await within(
        user.client.post(
            "/v1/attachments/", files={"file": (name, PDF, "application/pdf")}, data={"kind": "other"}
        )
    )
    assert response.status_code == 201, response.text
    stored = response.json()["filename"]
    assert stored.endswith(".pdf")
    assert not any(bad in stored for bad in ("/", "\\", "..", "\r", "\n"))


async def test_spoofed_legacy_upload_is_200_with_success_false_and_415(user: User) -> None:
    """The legacy upload answers a spoofed PDF as HTTP 200, success:false, status_code 415."""
    response = await within(
        user.client.post(
            "/api/storage/upload-file",
            files={"uploaded_file": ("resume.pdf", b"MZ" * 100, "application/pdf")},
            data={"filecontent": "resume"},
        )
    )
    assert response.status_code == 200
    assert (response.json()["success"], response.json()["status_code"]) == (False, 415)


# --- oversized and malformed bodies -------------------------------------------------------------


async def test_oversized_json_body_is_413_quickly(user: User) -> None:
    """An 11 MB JSON body is refused with 413 before it is decoded."""
    body = b'{"name": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    response = await within(
        user.client.post("/v1/templates/", content=body, headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 413


async def test_oversized_upload_is_413_quickly(user: User) -> None:
    """A 30 MB upload is refused with 413 (the limit is 10 MB)."""
    big = PDF + b"0" * (30 * 1024 * 1024)
    response = await within(
        user.client.post(
            "/v1/attachments/", files={"file": ("big.pdf", big, "application/pdf")}, data={"kind": "other"}
        )
    )
    assert response.status_code == 413


async def test_oversized_legacy_upload_is_200_with_success_false_and_413(user: User) -> None:
    """The legacy upload answers a 6 MB PDF (limit 5 MB) as HTTP 200, success:false, status_code 413."""
    big = PDF + b"0" * (6 * 1024 * 1024)
    response = await within(
        user.client.post(
            "/api/storage/upload-file",
            files={"uploaded_file": ("big.pdf", big, "application/pdf")},
            data={"filecontent": "resume"},
        )
    )
    assert (response.status_code, response.json()["status_code"]) == (200, 413)


async def test_huge_password_is_refused_before_hashing(gateway: httpx.AsyncClient) -> None:
    """A 100 KB password is refused by validation (400), not fed to argon2."""
    response = await within(
        gateway.post("/v1/auth/login", json={"email": "a@example.org", "password": "x" * 100_000}), 2.0
    )
    assert response.status_code == 400


async def test_deeply_nested_json_is_a_client_error(user: User) -> None:
    """100,000 nested arrays as a JSON body are a 400, not a server error."""
    response = await within(
        user.client.post(
            "/v1/templates/", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
    )
    assert response.status_code == 400


# --- login brute force ----------------------------------------------------------------------------


async def guess(client: httpx.AsyncClient, route: str, email: str, password: str) -> httpx.Response:
    return await within(client.post(route, json={"email": email, "password": password}))


@pytest.fixture
async def victim(system: SystemUnderTest) -> AsyncIterator[User]:
    """A user of their own, so that the attempts counted against them disturb no other test."""
    signed_up = await sign_up(system, "bruteforced")
    yield signed_up
    await signed_up.client.aclose()


async def test_login_brute_force_is_429_with_retry_after(victim: User) -> None:
    """Ten wrong passwords are 401s; the eleventh is 429 with a Retry-After in seconds."""
    client = victim.client
    statuses = [
        (await guess(client, "/v1/auth/login", victim.email, f"guess {i}")).status_code for i in range(10)
    ]
    assert statuses == [401] * 10
    response = await guess(client, "/v1/auth/login", victim.email, "guess 10")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_locked_account_refuses_even_the_right_password(victim: User) -> None:
    """Once locked, the correct password is also a 429 (guessing cannot confirm a hit)."""
    for i in range(11):
        await guess(victim.client, "/v1/auth/login", victim.email, f"guess {i}")
    response = await guess(victim.client, "/v1/auth/login", victim.email, victim.password)
    assert response.status_code == 429


async def test_legacy_login_brute_force_is_429_in_the_envelope(victim: User) -> None:
    """The legacy login is throttled the same way, answering the envelope with 429 and Retry-After."""
    for i in range(10):
        await guess(victim.client, "/api/auth/login", victim.email, f"guess {i}")
    response = await guess(victim.client, "/api/auth/login", victim.email, "guess 10")
    assert response.status_code == 429
    assert response.json()["status_code"] == 429
    assert int(response.headers["retry-after"]) > 0

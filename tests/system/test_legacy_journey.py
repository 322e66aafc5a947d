"""The existing web client's journey through the legacy routes (shared/LEGACY_API.md), end to end.

The module plays the client once, in order: sign up, log in, add a template, upload a resume, try
to send without Gmail (and follow the redirect it is given), send with the resume, queue two
emails, send one and delete the other. Each test checks one answer or one delivered message.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mailmerger_storage.api.early_answers import MAX_REQUEST_BYTES
from tests.support import eventually
from tests.system.harness import PDF, RunningSystem, User, emulator_messages, follow_connect_url, unique_email

pytestmark = pytest.mark.system

ENVELOPE = {"success", "status_code", "message", "data"}
EMAIL_FIELDS = {
    "eid",
    "uid",
    "subject",
    "body",
    "is_sent",
    "to_email",
    "cc_email",
    "bcc_email",
    "send_at",
    "include_resume",
}


@dataclass
class LegacyRun:
    gmail: str
    answers: dict[str, httpx.Response] = field(default_factory=dict)
    finish_url: str = ""
    delivered: list[dict[str, Any]] = field(default_factory=list)

    def data(self, step: str) -> Any:
        return self.answers[step].json()["data"]


def email(to: str, subject: str, *, include_resume: bool = False) -> dict[str, Any]:
    return {
        "subject": subject,
        "body": f"<p>{subject}</p>",
        "to_email": to,
        "cc_email": None,
        "bcc_email": None,
        "send_at": None,
        "include_resume": include_resume,
        "is_sent": False,
    }


async def play_client(system: RunningSystem, client: httpx.AsyncClient) -> LegacyRun:
    """What the React client does, step by step; every answer is kept for the tests."""
    run = LegacyRun(gmail=f"legacy-{unique_email('g').split('@')[0]}@gmail.local")
    address, password = unique_email("legacy"), "legacy password 123"
    ask = run.answers
    ask["signup"] = await client.post(
        "/api/auth/signup", json={"email": address, "password": password, "name": "Legacy"}
    )
    ask["login"] = await client.post("/api/auth/login", json={"email": address, "password": password})
    client.headers["Authorization"] = f"Bearer {run.data('login')['jwt_token']}"
    ask["add-template"] = await client.post(
        "/api/templates/add-template", json={"t_body": "<p>Hi {{name}}</p>", "t_key": "name"}
    )
    ask["get-all-templates"] = await client.get("/api/templates/get-all-templates")
    ask["upload-file"] = await client.post(
        "/api/storage/upload-file",
        files={"uploaded_file": ("my-resume.pdf", PDF, "application/pdf")},
        data={"filecontent": "resume"},
    )
    ask["send-without-gmail"] = await client.post(
        "/api/email/send-email-now", json=email("hr@example.org", "Before Gmail")
    )
    run.finish_url = await follow_connect_url(
        system.base_url, run.data("send-without-gmail")["redirect_url"], run.gmail
    )

    async def connected() -> bool:
        return any(s["email"] == run.gmail for s in (await client.get("/v1/senders/")).json())

    await eventually(connected, timeout=20)
    ask["send-now"] = await client.post(
        "/api/email/send-email-now", json=email("hr@example.org", "Application", include_resume=True)
    )

    async def delivered(count: int) -> list[dict[str, Any]]:
        messages = await emulator_messages(system.emulator_url, run.gmail)
        return messages if len(messages) >= count else []

    await eventually(lambda: delivered(1), timeout=20)  # no longer in the queue
    ask["add-first"] = await client.post("/api/queue/add-to-queue", json=email("a@example.org", "Queued A"))
    ask["add-second"] = await client.post("/api/queue/add-to-queue", json=email("b@example.org", "Queued B"))
    ask["queue"] = await client.get("/api/queue/get-email-queue")
    first, second = (e["eid"] for e in run.data("queue")["emails"])
    ask["send-queued"] = await client.post("/api/queue/send-queued-emails", json=[first])
    ask["delete-queued"] = await client.request("DELETE", "/api/queue/delete-queue-email", json=[second])
    run.delivered = await eventually(lambda: delivered(2), timeout=20)
    ask["queue-after"] = await client.get("/api/queue/get-email-queue")
    return run


@pytest.fixture(scope="module")
async def legacy_run(system: RunningSystem) -> AsyncIterator[LegacyRun]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30.0) as client:
        yield await play_client(system, client)


def jwt_exp(token: str) -> int:
    payload = token.split(".")[1]
    exp: int = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    return exp


async def test_every_legacy_answer_is_the_envelope(legacy_run: LegacyRun) -> None:
    """Each answer is exactly {success, status_code, message, data}, status_code the HTTP status."""
    for step, response in legacy_run.answers.items():
        body = response.json()
        assert set(body) == ENVELOPE, step
        assert body["status_code"] == response.status_code, step


async def test_signup_answers_a_decodable_jwt_and_a_refresh_token(legacy_run: LegacyRun) -> None:
    """Sign-up is 200/201 with data.jwt_token (numeric exp in its payload) and data.refresh_token."""
    response = legacy_run.answers["signup"]
    assert response.status_code in (200, 201)
    data = response.json()["data"]
    assert set(data) == {"jwt_token", "refresh_token"}
    assert isinstance(jwt_exp(data["jwt_token"]), int)


async def test_login_answers_the_token_and_name_and_sets_an_httponly_refresh_cookie(
    legacy_run: LegacyRun,
) -> None:
    """Login's data is {jwt_token, user_name}; a refresh_token cookie is set httpOnly."""
    response = legacy_run.answers["login"]
    assert response.status_code == 200
    assert response.json()["data"]["user_name"] == "Legacy"
    assert set(response.json()["data"]) == {"jwt_token", "user_name"}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("refresh_token=")
    assert "httponly" in cookie.lower()


async def test_added_template_is_listed_with_the_legacy_fields(legacy_run: LegacyRun) -> None:
    """add-template answers its id; get-all-templates lists it as {template_id, uid, t_body, t_key}."""
    template_id = legacy_run.data("add-template")["template_id"]
    [template] = legacy_run.data("get-all-templates")["templates"]
    assert template["template_id"] == template_id
    assert set(template) == {"template_id", "uid", "t_body", "t_key"}
    assert (template["t_body"], template["t_key"]) == ("<p>Hi {{name}}</p>", "name")


async def test_resume_upload_succeeds_with_empty_data(legacy_run: LegacyRun) -> None:
    """upload-file with a PDF resume is HTTP 200, success:true, data {}."""
    body = legacy_run.answers["upload-file"].json()
    assert (legacy_run.answers["upload-file"].status_code, body["success"], body["data"]) == (200, True, {})


async def test_send_without_gmail_is_success_false_with_a_connect_redirect(legacy_run: LegacyRun) -> None:
    """send-email-now before Gmail is HTTP 200, success:false, data.redirect_url to gmail-authorize."""
    response = legacy_run.answers["send-without-gmail"]
    assert response.status_code == 200
    assert response.json()["success"] is False
    assert "/api/oauth/gmail-authorize?purpose=authorize" in response.json()["data"]["redirect_url"]


async def test_following_the_redirect_url_connects_gmail_and_ends_on_oauth_finish(
    legacy_run: LegacyRun,
) -> None:
    """The redirect URL works without a bearer token and ends at /oauth-finish#at=…&rt=…."""
    assert "/oauth-finish#at=" in legacy_run.finish_url
    assert "&rt=" in legacy_run.finish_url


async def test_send_email_now_delivers_once_with_the_resume_attached(legacy_run: LegacyRun) -> None:
    """send-email-now with include_resume delivers one message carrying my-resume.pdf."""
    assert isinstance(legacy_run.data("send-now")["email_id"], int)
    [message] = [m for m in legacy_run.delivered if m["subject"] == "Application"]
    assert message["to"] == ["hr@example.org"]
    assert [a["filename"] for a in message["attachments"]] == ["my-resume.pdf"]


async def test_get_email_queue_lists_the_unsent_emails_in_the_legacy_shape(legacy_run: LegacyRun) -> None:
    """After two add-to-queue calls the queue holds two unsent Email objects with the legacy fields."""
    assert legacy_run.data("add-second")["queue_length"] == 2
    queue = legacy_run.data("queue")
    assert queue["queue_length"] == 2
    assert all(set(e) == EMAIL_FIELDS and e["is_sent"] is False for e in queue["emails"])
    assert [e["to_email"] for e in queue["emails"]] == ["a@example.org", "b@example.org"]


async def test_send_queued_emails_sends_only_the_chosen_one(legacy_run: LegacyRun) -> None:
    """send-queued-emails answers the eids it sends, and only that email is delivered."""
    first = legacy_run.data("queue")["emails"][0]["eid"]
    assert legacy_run.data("send-queued")["sent_emails"] == [first]
    subjects = sorted(m["subject"] for m in legacy_run.delivered)
    assert subjects == ["Application", "Queued A"]


async def test_delete_queue_email_removes_it_and_reports_the_remaining_length(legacy_run: LegacyRun) -> None:
    """delete-queue-email answers the deleted ids and a remaining length that excludes them."""
    second = legacy_run.data("queue")["emails"][1]["eid"]
    data = legacy_run.data("delete-queued")
    assert data["deleted_emails_ids"] == [second]
    assert data["remaining_queue_length"] in (0, 1)  # the sent one may still be on its way
    assert legacy_run.data("queue-after") == {"queue_length": 0, "emails": []}


async def test_mail_queued_before_gmail_is_sent_from_the_gmail_connected_later(
    system: RunningSystem, user: User
) -> None:
    """Queueing works without Gmail; sending the queue asks to connect (redirect_url); once connected,
    the queued mail goes out from that Gmail."""
    client = user.client
    queued = await client.post("/api/queue/add-to-queue", json=email("early@example.org", "Queued early"))
    assert (queued.status_code, queued.json()["data"]) == (200, {"queue_length": 1})
    [eid] = [e["eid"] for e in (await client.get("/api/queue/get-email-queue")).json()["data"]["emails"]]
    asked = await client.post("/api/queue/send-queued-emails", json=[eid])
    assert (asked.status_code, asked.json()["success"]) == (200, False)
    gmail = f"early-{uuid.uuid4().hex[:10]}@gmail.local"
    await follow_connect_url(system.base_url, asked.json()["data"]["redirect_url"], gmail)

    async def connected() -> bool:
        return any(s["email"] == gmail for s in (await client.get("/v1/senders/")).json())

    await eventually(connected, timeout=20)
    sent = await client.post("/api/queue/send-queued-emails", json=[eid])
    assert sent.json()["data"] == {"sent_emails": [eid]}
    delivered = await eventually(lambda: emulator_messages(system.emulator_url, gmail), timeout=20)
    assert [m["subject"] for m in delivered] == ["Queued early"]


def resume_form(size: int) -> dict[str, Any]:
    """What the upload page posts (FormData): the file and filecontent=resume."""
    pdf = PDF[:9] + bytes(size - len(PDF)) + PDF[9:]
    return {
        "files": {"uploaded_file": ("resume.pdf", pdf, "application/pdf")},
        "data": {"filecontent": "resume"},
    }


async def test_an_oversized_resume_gets_the_envelope_through_the_gateway(user: User) -> None:
    """A 6 MB resume is answered HTTP 200, success false, status_code 413 and what to fix."""
    response = await user.client.post("/api/storage/upload-file", **resume_form(6 * 1024 * 1024))
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 413)
    assert "5 MB" in body["message"]


async def test_a_large_upload_without_a_token_gets_a_401_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    """No token and a 6 MB body: a real 401 in the envelope, not a reset."""
    response = await gateway.post("/api/storage/upload-file", **resume_form(6 * 1024 * 1024))
    assert response.status_code == 401
    assert (response.json()["success"], response.json()["status_code"]) == (False, 401)


# Only the gateway refuses a body over the limit for the service: the all-in-one (development,
# no nginx) stops reading at the same limit and closes the connection, which a client still
# sending sees as a reset. So this behaviour exists, and is tested, in the split topology only.
@pytest.mark.parametrize("topology", [pytest.param("split", marks=pytest.mark.split)], indirect=True)
async def test_a_body_over_the_gateway_limit_gets_the_envelope_with_cors(
    system: RunningSystem, user: User
) -> None:
    """Over nginx's client_max_body_size the client still reads the envelope (413) with CORS headers."""
    origin = "http://localhost:5173"
    response = await user.client.post(
        "/api/storage/upload-file", headers={"Origin": origin}, **resume_form(MAX_REQUEST_BYTES + 1024 * 1024)
    )
    assert response.status_code == 200
    assert (response.json()["success"], response.json()["status_code"]) == (False, 413)
    assert response.headers["access-control-allow-origin"] == origin

"""Proving an address: confirmation and reset links, the v1 sign-up that enumerates nothing, and
the owner of an address taking back an account someone else registered with it (pre-hijacking)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from mailmerger_auth.crypto import Sealer
from mailmerger_auth.letters import CONFIRM_PATH, RESET_PATH
from mailmerger_auth.system_mail import Letter, post_letter
from tests.auth.support import (
    PASSWORD,
    Harness,
    Sessions,
    bearer,
    google_round_trip,
    path_and_query,
    sign_up,
    unique_email,
)
from tests.support import eventually, mailed_letters, mailed_token


async def _sign_up_unconfirmed(
    auth: Harness, email: str, password: str = PASSWORD, name: str = "Ada"
) -> None:
    response = await auth.client.post(
        "/v1/auth/signup", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 202, response.text


async def _login(auth: Harness, email: str, password: str = PASSWORD) -> int:
    return (await auth.client.post("/v1/auth/login", json={"email": email, "password": password})).status_code


async def _subject_arrives(auth: Harness, recipient: str, subject: str) -> bool:
    async def arrived() -> bool:
        return subject in [letter["subject"] for letter in await mailed_letters(auth.emulator, recipient)]

    return await eventually(arrived)


async def _count(auth: Harness, recipient: str, count: int) -> bool:
    return len(await mailed_letters(auth.emulator, recipient)) == count


async def test_v1_sign_up_answers_a_known_address_exactly_like_a_new_one(auth: Harness) -> None:
    """Same status and body for a new and a registered address; the owner is told by mail instead."""
    known = unique_email()
    await sign_up(auth, known)
    new = unique_email()
    first = await auth.client.post("/v1/auth/signup", json={"email": new, "password": PASSWORD})
    second = await auth.client.post("/v1/auth/signup", json={"email": known, "password": PASSWORD})
    assert first.status_code == second.status_code == 202
    assert {**first.json(), "email": None} == {**second.json(), "email": None}
    assert await _subject_arrives(auth, known, "You already have an account")


async def test_an_unconfirmed_account_cannot_sign_in_through_v1(auth: Harness) -> None:
    """The right password of an unconfirmed account answers 403 email_unconfirmed; after the link, 200."""
    email = unique_email()
    await _sign_up_unconfirmed(auth, email)
    refused = await auth.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["reason"] == "email_unconfirmed"
    token = await mailed_token(auth.emulator, email, CONFIRM_PATH)
    assert (
        await auth.client.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    ).status_code == 200
    assert await _login(auth, email) == 200


async def test_a_confirmation_link_works_once_and_not_after_it_expires(auth: Harness) -> None:
    """A used link and an expired link both answer 422 invalid_link."""
    used, late = unique_email(), unique_email()
    await _sign_up_unconfirmed(auth, used)
    await _sign_up_unconfirmed(auth, late)
    token = await mailed_token(auth.emulator, used, CONFIRM_PATH)
    assert (
        await auth.client.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    ).status_code == 200
    again = await auth.client.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    assert again.status_code == 422
    assert again.json()["reason"] == "invalid_link"
    late_token = await mailed_token(auth.emulator, late, CONFIRM_PATH)
    auth.clock.shift(timedelta(hours=25))
    expired = await auth.client.post("/v1/auth/email-confirmations/confirm", json={"token": late_token})
    assert expired.status_code == 422


async def test_opening_the_link_changes_nothing_until_the_form_is_sent(auth: Harness) -> None:
    """GET (what a mail scanner does) shows a form; only its POST confirms the address."""
    email = unique_email()
    await _sign_up_unconfirmed(auth, email)
    token = await mailed_token(auth.emulator, email, CONFIRM_PATH)
    page = await auth.client.get(CONFIRM_PATH, params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert await _login(auth, email) == 403
    confirmed = await auth.client.post(CONFIRM_PATH, data={"token": token})
    assert confirmed.status_code == 200
    assert "Address confirmed" in confirmed.text
    assert await _login(auth, email) == 200


async def test_resending_the_confirmation_answers_alike_for_any_address(auth: Harness) -> None:
    """An unknown, a confirmed and an unconfirmed address get the same 202; only the last gets mail."""
    unconfirmed, confirmed = unique_email(), unique_email()
    await _sign_up_unconfirmed(auth, unconfirmed)
    await sign_up(auth, confirmed)
    before = len(await mailed_letters(auth.emulator, confirmed))
    answers = [
        await auth.client.post("/v1/auth/email-confirmations", json={"email": address})
        for address in (unique_email(), confirmed, unconfirmed)
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    await eventually(lambda: _count(auth, unconfirmed, 2))
    assert len(await mailed_letters(auth.emulator, confirmed)) == before


async def test_password_reset_sets_the_password_and_ends_every_session(auth: Harness) -> None:
    """The reset link sets a new password once; the old password and the old sessions stop working."""
    email = unique_email()
    session = await sign_up(auth, email)
    unknown = await auth.client.post("/v1/auth/password-resets", json={"email": unique_email()})
    known = await auth.client.post("/v1/auth/password-resets", json={"email": email})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    token = await mailed_token(auth.emulator, email, RESET_PATH)
    reset = await auth.client.post(
        "/v1/auth/password-resets/confirm", json={"token": token, "new_password": "a brand new passphrase"}
    )
    assert reset.status_code == 200, reset.text
    assert await _login(auth, email) == 401
    assert await _login(auth, email, "a brand new passphrase") == 200
    renewed = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert renewed.status_code == 401
    replay = await auth.client.post(
        "/v1/auth/password-resets/confirm", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert replay.status_code == 422


async def test_only_the_newest_reset_link_works(auth: Harness) -> None:
    """Asking twice replaces the first link: it answers 422, the second sets the password."""
    email = unique_email()
    await sign_up(auth, email)
    await auth.client.post("/v1/auth/password-resets", json={"email": email})
    first = await mailed_token(auth.emulator, email, RESET_PATH)
    count = len(await mailed_letters(auth.emulator, email))
    await auth.client.post("/v1/auth/password-resets", json={"email": email})
    second = await mailed_token(auth.emulator, email, RESET_PATH, after=count)
    body = {"new_password": "a brand new passphrase"}
    assert (
        await auth.client.post("/v1/auth/password-resets/confirm", json={"token": first, **body})
    ).status_code == 422
    assert (
        await auth.client.post("/v1/auth/password-resets/confirm", json={"token": second, **body})
    ).status_code == 200


async def test_a_short_new_password_keeps_the_reset_link_usable(auth: Harness) -> None:
    """422 naming the password, and the link still works with a good one."""
    email = unique_email()
    await sign_up(auth, email)
    await auth.client.post("/v1/auth/password-resets", json={"email": email})
    token = await mailed_token(auth.emulator, email, RESET_PATH)
    short = await auth.client.post(
        "/v1/auth/password-resets/confirm", json={"token": token, "new_password": "short"}
    )
    assert short.status_code == 422
    assert short.json()["field"] == "password"
    good = await auth.client.post(
        "/v1/auth/password-resets/confirm", json={"token": token, "new_password": "long enough now"}
    )
    assert good.status_code == 200


async def test_the_owner_signing_in_with_google_takes_back_a_pre_hijacked_account(auth: Harness) -> None:
    """An attacker signs up (legacy route: signed in at once) with the victim's address and connects
    their own Gmail; the victim's Google sign-in secures the account: the attacker's password,
    sessions and Gmail account stop working, the victim's Gmail is the only one, and the victim is told."""
    victim = f"victim-{unique_email()}"
    attacker_gmail = f"attacker-{unique_email()}"
    signed_up = await auth.client.post(
        "/api/auth/signup", json={"email": victim, "password": PASSWORD, "name": "Attacker"}
    )
    assert signed_up.status_code == 201
    attacker = signed_up.json()["data"]
    ticket = await auth.client.post("/v1/auth/google/connect-tickets", headers=bearer(attacker["jwt_token"]))
    await google_round_trip(auth, path_and_query(ticket.json()["url"]), google_account=attacker_gmail)

    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=victim)
    owner_token = trip.fragment["at"]
    me = (await auth.client.get("/v1/auth/me", headers=bearer(owner_token))).json()
    assert me["email"] == victim
    assert me["has_password"] is False

    login = await auth.client.post("/api/auth/login", json={"email": victim, "password": PASSWORD})
    assert login.status_code == 401
    renewed = await auth.client.get(
        "/api/auth/renew-refresh-and-jwt-token", headers=bearer(attacker["refresh_token"])
    )
    assert renewed.status_code == 401
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(owner_token))).json()
    assert {(g["email"], g["state"]) for g in gmail} == {
        (victim, "connected"),
        (attacker_gmail, "disconnected"),
    }
    assert await _subject_arrives(auth, victim, "Your MailMerger account is secured")


async def test_google_sign_in_merges_into_a_confirmed_account_and_keeps_its_password(auth: Harness) -> None:
    """A confirmed address proved its owner already: Google signs in to the account, the password stays."""
    email = f"owner-{unique_email()}"
    registered = await sign_up(auth, email)
    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=email)
    me = (await auth.client.get("/v1/auth/me", headers=bearer(trip.fragment["at"]))).json()
    assert me["id"] == registered["user_id"]
    assert me["has_password"] is True
    assert await _login(auth, email) == 200


async def test_a_reset_of_an_unconfirmed_account_disconnects_its_gmail_accounts(auth: Harness) -> None:
    """Resetting by mail is the first proof of ownership: what a squatter connected is disconnected."""
    email = unique_email()
    squatter = await auth.client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    token = squatter.json()["data"]["jwt_token"]
    ticket = await auth.client.post("/v1/auth/google/connect-tickets", headers=bearer(token))
    await google_round_trip(auth, path_and_query(ticket.json()["url"]), google_account=f"sq-{unique_email()}")
    await auth.client.post("/v1/auth/password-resets", json={"email": email})
    reset_token = await mailed_token(auth.emulator, email, RESET_PATH)
    reset = await auth.client.post(
        "/v1/auth/password-resets/confirm",
        json={"token": reset_token, "new_password": "the owner's passphrase"},
    )
    session = reset.json()
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert [g["state"] for g in gmail] == ["disconnected"]


async def test_letters_carry_only_headers_of_our_making(auth: Harness) -> None:
    """A hostile name (an encoded word hiding a Bcc line) lands in the body only; the header set is ours."""
    email = unique_email()
    hostile = "=?utf-8?q?x=0D=0ABcc:_evil@example.org?= Ada\u2028Bcc: evil@example.org"
    await _sign_up_unconfirmed(auth, email, name=hostile)
    await mailed_token(auth.emulator, email, CONFIRM_PATH)
    letter = (await mailed_letters(auth.emulator, email))[-1]
    assert letter["bcc"] == []
    assert letter["cc"] == []
    assert letter["to"] == [email]
    names = [h["name"] for h in letter["headers"]]  # type: ignore[union-attr]
    assert names == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert "evil@example.org" in str(letter["text"])


async def test_letters_are_stored_sealed_until_sent(private_sessions: Sessions) -> None:
    """A queued letter's body (which holds a link's secret) is not readable in the database."""
    sealer = Sealer({"k1": bytes(32)}, "k1")
    letter = Letter(
        recipient="ada@example.org", subject="Confirm", body="open https://x/confirm?token=SECRET"
    )
    async with private_sessions.begin() as session:
        await post_letter(session, sealer, letter, now=datetime.now(UTC))
    async with private_sessions() as session:
        stored = (await session.execute(text("SELECT body FROM auth.system_mail"))).scalar_one()
    async with private_sessions.begin() as session:
        await session.execute(text("DELETE FROM auth.system_mail"))
    assert b"SECRET" not in stored

"""Account pre-hijacking through the gateway: someone registers the victim's address with a
password before the victim arrives; the victim's Google sign-in must leave them nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.support import eventually, mailed_letters
from tests.system.harness import SystemUnderTest, follow_connect_url

PASSWORD = "the attacker's password"


async def test_the_victims_google_sign_in_cuts_every_way_the_squatter_had_in(system: SystemUnderTest) -> None:
    """After the owner signs in with Google, the squatter's password, refresh token and (within a
    second) access token are refused by every service, and the Gmail account the squatter
    connected is no sender of the account any more; the owner's Gmail is, and the owner is told."""
    victim = f"victim-{uuid.uuid4().hex[:10]}@gmail.local"
    squatter_gmail = f"squatter-{uuid.uuid4().hex[:10]}@gmail.local"
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as squatter:
        signed_up = await squatter.post("/api/auth/signup", json={"email": victim, "password": PASSWORD})
        assert signed_up.status_code == 201, signed_up.text  # the legacy client's contract: in at once
        tokens = signed_up.json()["data"]
        squatter.headers["Authorization"] = f"Bearer {tokens['jwt_token']}"
        ticket = await squatter.post("/v1/auth/google/connect-tickets")
        await follow_connect_url(system.base_url, ticket.json()["url"], squatter_gmail)

        async def squatter_sends() -> bool:
            senders = (await squatter.get("/v1/senders/")).json()
            return any(s["email"] == squatter_gmail for s in senders)

        await eventually(squatter_sends, timeout=20)

        finish = await follow_connect_url(system.base_url, "/v1/auth/google/authorize?purpose=signin", victim)
        assert "#at=" in finish, finish
        owner = {"Authorization": "Bearer " + finish.split("#at=", 1)[1].split("&", 1)[0]}

        async def squatter_refused() -> bool:
            answers = [
                await squatter.get("/v1/senders/"),
                await squatter.get("/v1/templates/"),
                await squatter.get("/v1/auth/me"),
            ]
            return all(answer.status_code == 401 for answer in answers)

        assert await eventually(squatter_refused, timeout=5)
        login = await squatter.post("/api/auth/login", json={"email": victim, "password": PASSWORD})
        assert login.status_code == 401
        renewed = await squatter.get(
            "/api/auth/renew-refresh-and-jwt-token",
            headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
        )
        assert renewed.status_code == 401

        async def only_the_owners_gmail() -> bool:
            senders = (await squatter.get("/v1/senders/", headers=owner)).json()
            return [s["email"] for s in senders if s.get("state", "connected") == "connected"] == [victim]

        assert await eventually(only_the_owners_gmail, timeout=20)

    async with httpx.AsyncClient(base_url=system.emulator_url) as emulator:

        async def told() -> bool:
            letters = await mailed_letters(emulator, victim)
            return any(letter["subject"] == "Your MailMerger account is secured" for letter in letters)

        assert await eventually(told)

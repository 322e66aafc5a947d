"""``/v1/auth``: accounts, sessions and the JWKS."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import ownership, service
from mailmerger_auth import sessions as session_rules
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.api.deps import PUBLIC, session_id, wake_post
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import TokenPair
from mailmerger_auth.letters import Mailroom
from mailmerger_auth.ownership import AccountGuard, Acknowledged, Registration
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.service import UserRecord
from mailmerger_auth.settings import AuthSettings
from mailmerger_auth.signing_keys import SigningKeys
from mailmerger_auth.throttle import LoginThrottle
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.web.deps import CurrentUser, Transaction
from mailmerger_shared.web.openapi import problems

# Bounded so that a huge body cannot make argon2 (or the JSON decoder) work for nothing.
Secret = Annotated[str, msgspec.Meta(max_length=1024)]
Email = Annotated[str, msgspec.Meta(max_length=320)]
Name = Annotated[str, msgspec.Meta(max_length=200)]


class SignUp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Secret
    name: Name = ""


class Credentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Secret


class Renewal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=4096)]


class AccountDeletion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: Secret | None = None


class PasswordChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: Secret
    new_password: Secret


class SessionRead(msgspec.Struct, frozen=True, kw_only=True):
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    user_id: int
    user_name: str

    @classmethod
    def of(cls, pair: TokenPair) -> SessionRead:
        return cls(
            access_token=pair.access_token,
            access_token_expires_at=pair.access_token_expires_at,
            refresh_token=pair.refresh_token,
            refresh_token_expires_at=pair.refresh_token_expires_at,
            user_id=pair.user_id,
            user_name=pair.user_name,
        )


class AddressOnly(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email


class LinkToken(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=128)]


class NewPassword(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=128)]
    new_password: Secret


@post("/signup", opt=PUBLIC, status_code=202, responses=problems(422, 429), after_response=wake_post)
async def sign_up(
    data: JSONBody[SignUp],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    mailroom: NamedDependency[Mailroom],
    mail_throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    now: NamedDependency[datetime],
) -> Registration:
    """The same answer for a new and a known address: a confirmation link goes to a new one, a
    note to the owner of a known one. The link signs the new account in (``email-confirmations/confirm``)."""
    return await ownership.register(
        tx,
        passwords,
        mailroom,
        mail_throttle,
        email=data.email,
        password=data.password,
        name=data.name,
        client_address=client_address,
        now=now,
    )


@post("/email-confirmations", opt=PUBLIC, status_code=202, responses=problems(429), after_response=wake_post)
async def resend_confirmation(
    data: JSONBody[AddressOnly],
    tx: Transaction,
    mailroom: NamedDependency[Mailroom],
    mail_throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    now: NamedDependency[datetime],
) -> Acknowledged:
    return await ownership.resend_confirmation(
        tx, mailroom, mail_throttle, email=data.email, client_address=client_address, now=now
    )


@post("/email-confirmations/confirm", opt=PUBLIC, status_code=200, responses=problems(422))
async def confirm_address(
    data: JSONBody[LinkToken],
    tx: Transaction,
    issuer: NamedDependency[TokenIssuer],
    now: NamedDependency[datetime],
) -> SessionRead:
    """The mailed link's token: the address is confirmed, and the answer is a new session."""
    return SessionRead.of(await ownership.confirm_address(tx, issuer, token=data.token, now=now))


@post("/password-resets", opt=PUBLIC, status_code=202, responses=problems(429), after_response=wake_post)
async def request_password_reset(
    data: JSONBody[AddressOnly],
    tx: Transaction,
    mailroom: NamedDependency[Mailroom],
    mail_throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    now: NamedDependency[datetime],
) -> Acknowledged:
    return await ownership.request_password_reset(
        tx, mailroom, mail_throttle, email=data.email, client_address=client_address, now=now
    )


@post("/password-resets/confirm", opt=PUBLIC, status_code=200, responses=problems(422))
async def reset_password(
    data: JSONBody[NewPassword],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    issuer: NamedDependency[TokenIssuer],
    guard: NamedDependency[AccountGuard],
    now: NamedDependency[datetime],
) -> SessionRead:
    """The mailed link's token and a new password: every other session ends."""
    pair = await ownership.reset_password(
        tx, passwords, issuer, guard, token=data.token, new_password=data.new_password, now=now
    )
    return SessionRead.of(pair)


@post("/login", opt=PUBLIC, status_code=200, responses=problems(401, 403, 429))
async def log_in(
    data: JSONBody[Credentials],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    issuer: NamedDependency[TokenIssuer],
    throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    now: NamedDependency[datetime],
) -> SessionRead:
    pair = await service.log_in(
        tx,
        passwords,
        issuer,
        throttle,
        email=data.email,
        password=data.password,
        client_address=client_address,
        now=now,
        require_confirmed=True,
    )
    return SessionRead.of(pair)


@post("/refresh", opt=PUBLIC, status_code=200, responses=problems(401))
async def refresh(
    data: JSONBody[Renewal],
    sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    issuer: NamedDependency[TokenIssuer],
    now: NamedDependency[datetime],
    settings: NamedDependency[AuthSettings],
) -> SessionRead:
    """Rotates: the refresh token sent is spent; reusing it later revokes the session (except a
    second tab refreshing with it within seconds, which gets the current token)."""
    grace = timedelta(seconds=settings.auth.refresh_reuse_grace_seconds)
    pair = await session_rules.renew_session(sessions, issuer, data.refresh_token, now=now, reuse_grace=grace)
    return SessionRead.of(pair)


@post("/logout", status_code=204)
async def log_out(principal: CurrentUser, tx: Transaction, now: NamedDependency[datetime]) -> None:
    await service.log_out(tx, user_id=principal.user_id, session_id=session_id(principal), now=now)


# A token outlives the account it names: once the account is deleted, its routes answer 404.
@get("/me", responses=problems(404))
async def me(principal: CurrentUser, tx: Transaction) -> UserRecord:
    return await service.get_user(tx, principal.user_id)


@delete("/me", status_code=204, responses=problems(403, 404, 422, 429))
async def delete_me(
    principal: CurrentUser,
    tx: Transaction,
    google: NamedDependency[GoogleOAuth | None],
    sealer: NamedDependency[Sealer],
    passwords: NamedDependency[Passwords],
    throttle: NamedDependency[LoginThrottle],
    settings: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
    data: JSONBody[AccountDeletion | None] = None,
) -> None:
    """Delete the account and everything of it: give its password (``{"password": ...}``); an
    account that signs in with Google only must have signed in within the last few minutes."""
    await service.delete_account(
        tx,
        google,
        sealer,
        passwords,
        throttle,
        user_id=principal.user_id,
        session_id=session_id(principal),
        password=data.password if data is not None else None,
        reauthentication_window=timedelta(seconds=settings.auth.reauthentication_window_seconds),
        now=now,
    )


@put("/me/password", status_code=204, responses=problems(403, 404, 409, 422, 429))
async def change_password(
    data: JSONBody[PasswordChange],
    principal: CurrentUser,
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    throttle: NamedDependency[LoginThrottle],
    now: NamedDependency[datetime],
) -> None:
    await service.change_password(
        tx,
        passwords,
        throttle,
        user_id=principal.user_id,
        session_id=session_id(principal),
        current_password=data.current_password,
        new_password=data.new_password,
        now=now,
    )


@get("/.well-known/jwks.json", opt=PUBLIC)
async def jwks(keys: NamedDependency[SigningKeys]) -> Response[dict[str, Any]]:
    # Caches may keep it briefly: a new key is published well before it signs anything.
    return Response(await keys.published_jwks(), headers={"Cache-Control": "public, max-age=60"})


ROUTES = [
    sign_up,
    resend_confirmation,
    confirm_address,
    request_password_reset,
    reset_password,
    log_in,
    refresh,
    log_out,
    me,
    delete_me,
    change_password,
    jwks,
]

"""What auth's handlers are given, built once: the keys it seals and signs with (``Keyring``, before the
app exists, since its token verifier publishes them) and everything else (``Resources``, by
``resources_lifespan`` once the database and Redis are open).

Handlers receive each field of ``Resources`` by its name (``api.deps.dependencies``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.adapters.system_mail import GmailMailer, SmtpMailer
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Clock
from mailmerger_auth.gmail_tokens import GmailTokens
from mailmerger_auth.google_authorization import GoogleAuthorization
from mailmerger_auth.letters import Mailroom
from mailmerger_auth.ownership import AccountGuard
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.settings import DEV_ENCRYPTION_KEY_ID, AuthSettings
from mailmerger_auth.signing_keys import KeyPolicy, SigningKeys
from mailmerger_auth.system_mail import Letter, SystemMailer, SystemPost
from mailmerger_auth.throttle import LoginThrottle
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_auth.worker import keep_up, run_upkeep
from mailmerger_shared.runtime import Infrastructure

log = logging.getLogger(__name__)

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[None]]


@dataclass(frozen=True, kw_only=True)
class Keyring:
    """What auth seals and signs with. Built before the app (its verifier reads
    ``keys.published_jwks``); the keys reach the database once ``resources_lifespan`` binds them."""

    sealer: Sealer  # secrets at rest: Google tokens, the private signing keys
    keys: SigningKeys
    issuer: TokenIssuer

    @classmethod
    def from_settings(cls, settings: AuthSettings, clock: Clock) -> Keyring:
        account = settings.auth
        sealer = Sealer.from_settings(settings.encryption)
        if sealer.active_key_id == DEV_ENCRYPTION_KEY_ID:
            log.warning("secrets are sealed with the published development key; set MM_AUTH_ENCRYPTION_KEYS")
        access_ttl = timedelta(seconds=account.access_token_ttl_seconds)
        session_lifetime = timedelta(seconds=account.session_lifetime_seconds)
        leeway = timedelta(seconds=settings.jwt.leeway_seconds)
        keys = SigningKeys(
            sealer,
            KeyPolicy(
                rotate_after=timedelta(seconds=account.signing_key_rotation_seconds),
                publish_ahead=timedelta(seconds=account.signing_key_publish_ahead_seconds),
                published_after_retirement=access_ttl + leeway,
                verifies_after_retirement=max(session_lifetime, access_ttl) + leeway,
            ),
            clock,
        )
        issuer = TokenIssuer(
            keys,
            settings.jwt,
            access_ttl=access_ttl,
            refresh_ttl=timedelta(seconds=account.refresh_token_ttl_seconds),
            session_lifetime=session_lifetime,
        )
        return cls(sealer=sealer, keys=keys, issuer=issuer)


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Everything auth's handlers use, built once by ``resources_lifespan`` (``app.state.resources``).

    Each field is the dependency of its name: a handler declares ``throttle:
    NamedDependency[LoginThrottle]`` and gets ``resources.throttle``.
    """

    passwords: Passwords
    issuer: TokenIssuer
    keys: SigningKeys
    sealer: Sealer
    mailroom: Mailroom
    sessions: async_sessionmaker[AsyncSession]
    throttle: LoginThrottle
    mail_throttle: LoginThrottle  # requests that mail an address (sign-ups, links)
    google: GoogleOAuth | None  # None: sign-in with Google is not configured
    guard: AccountGuard
    gmail_tokens: GmailTokens
    google_authorization: GoogleAuthorization
    system_post: SystemPost


def resources_lifespan(
    settings: AuthSettings,
    *,
    keyring: Keyring,
    clock: Clock,
    google_transport: httpx.AsyncBaseTransport | None,
) -> Lifespan:
    """Build ``Resources`` into ``app.state.resources`` once the database and Redis are open (so it
    comes after ``infrastructure_lifespan``), and run the key upkeep and the system post meanwhile.

    A signing key exists before the first request; Google's client and the system mailer close, in
    reverse order, when the app stops.
    """
    account = settings.auth
    sealer, keys, issuer = keyring.sealer, keyring.keys, keyring.issuer
    mailroom = Mailroom(
        sealer,
        settings.http.public_url,
        confirmation_ttl=timedelta(seconds=account.email_confirmation_ttl_seconds),
        reset_ttl=timedelta(seconds=account.password_reset_ttl_seconds),
    )
    passwords = Passwords.from_settings(account)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        infra: Infrastructure = app.state.infra
        assert infra.sessions is not None, "auth needs the database"
        assert infra.redis is not None, "auth needs Redis"
        keys.bind(infra.sessions)
        await keep_up(infra.sessions, keys, clock)  # a signing key exists before the first request
        async with contextlib.AsyncExitStack() as stack:
            google = None
            if settings.google.client_id:
                google = await stack.enter_async_context(
                    GoogleOAuth.open(settings.google, clock, transport=google_transport)
                )
            system_post = SystemPost(
                infra.sessions,
                sealer,
                await stack.enter_async_context(_system_mailer(settings, google, clock, google_transport)),
                clock,
            )
            guard = AccountGuard(
                google, sealer, mailroom, app.state.ended_sessions, access_token_lifetime=issuer.access_ttl
            )
            app.state.resources = Resources(
                passwords=passwords,
                issuer=issuer,
                keys=keys,
                sealer=sealer,
                mailroom=mailroom,
                sessions=infra.sessions,
                throttle=_throttle(settings, infra.redis, scope="login"),
                mail_throttle=_throttle(settings, infra.redis, scope="mail"),
                google=google,
                guard=guard,
                gmail_tokens=GmailTokens(
                    infra.sessions,
                    google,
                    sealer,
                    clock,
                    margin=timedelta(seconds=settings.google.refresh_margin_seconds),
                ),
                google_authorization=GoogleAuthorization(
                    settings,
                    google=google,
                    issuer=issuer,
                    sealer=sealer,
                    guard=guard,
                    sessions=infra.sessions,
                    clock=clock,
                ),
                system_post=system_post,
            )
            tasks = [
                asyncio.create_task(run_upkeep(infra.sessions, keys, clock), name="auth-upkeep"),
                asyncio.create_task(system_post.run(), name="auth-system-post"),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return lifespan


def _throttle(settings: AuthSettings, redis: Redis, *, scope: Literal["login", "mail"]) -> LoginThrottle:
    """Sign-in attempts (``login``), or requests that mail an address (``mail``), per account and
    per client address."""
    account = settings.auth
    return LoginThrottle(
        redis,
        key_prefix=settings.redis.key_prefix,
        per_account=account.login_attempts_per_account
        if scope == "login"
        else account.mail_requests_per_account,
        per_address=account.login_attempts_per_address,
        window=timedelta(seconds=account.login_window_seconds),
        scope=scope,
    )


@contextlib.asynccontextmanager
async def _system_mailer(
    settings: AuthSettings,
    google: GoogleOAuth | None,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
) -> AsyncIterator[SystemMailer]:
    """The transport of the system's letters (MM_SYSTEM_MAIL_TRANSPORT)."""
    mail = settings.system_mail
    if mail.transport == "smtp":
        yield SmtpMailer(mail, clock)
        return
    if google is None:
        log.error("system mail goes through Gmail, which needs MM_GOOGLE_CLIENT_ID; letters wait unsent")
        yield _Unsendable()
        return
    async with httpx.AsyncClient(transport=transport) as http:
        yield GmailMailer(mail, google, http, clock)


class _Unsendable:
    """Without a transport, letters stay queued (and are sent once one is configured)."""

    async def send(self, letter: Letter) -> None:
        raise RuntimeError(
            "no system mail transport: set MM_GOOGLE_CLIENT_ID or MM_SYSTEM_MAIL_TRANSPORT=smtp"
        )

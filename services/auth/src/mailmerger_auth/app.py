"""Composition root of the auth service. Accounts, tokens, Google sign-in and connected Gmail accounts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.adapters.system_mail import GmailMailer, SmtpMailer
from mailmerger_auth.api import routes
from mailmerger_auth.api.deps import client_address
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Clock, utc_now
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
from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.runtime import Infrastructure, infrastructure_lifespan, outbox_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import token_verifier

NAME = "auth"
log = logging.getLogger(__name__)


def create_app(
    settings: AuthSettings,
    *,
    google_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utc_now,
) -> Litestar:
    """``google_transport`` carries the calls to Google, the system's Gmail account's included
    (tests give the emulator's); ``clock`` is the time every rule reads (tests move it)."""
    account = settings.auth
    sealer = Sealer.from_settings(settings.encryption)
    if sealer.active_key_id == DEV_ENCRYPTION_KEY_ID:
        log.warning("secrets are sealed with the published development key; set MM_AUTH_ENCRYPTION_KEYS")
    access_ttl = timedelta(seconds=account.access_token_ttl_seconds)
    session_lifetime = timedelta(seconds=account.session_lifetime_seconds)
    keys = SigningKeys(
        sealer,
        KeyPolicy(
            rotate_after=timedelta(seconds=account.signing_key_rotation_seconds),
            publish_ahead=timedelta(seconds=account.signing_key_publish_ahead_seconds),
            published_after_retirement=access_ttl + timedelta(seconds=settings.jwt.leeway_seconds),
            verifies_after_retirement=max(session_lifetime, access_ttl)
            + timedelta(seconds=settings.jwt.leeway_seconds),
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

    mailroom = Mailroom(
        sealer,
        settings.http.public_url,
        confirmation_ttl=timedelta(seconds=account.email_confirmation_ttl_seconds),
        reset_ttl=timedelta(seconds=account.password_reset_ttl_seconds),
    )
    passwords = Passwords.from_settings(account)

    @contextlib.asynccontextmanager
    async def auth_lifespan(app: Litestar) -> AsyncIterator[None]:
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
                google, sealer, mailroom, app.state.ended_sessions, access_token_lifetime=access_ttl
            )
            app.state.resources = Resources(
                settings=settings,
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

    return service_app(
        name=NAME,
        route_handlers=routes(settings),
        http=settings.http,
        verifier=token_verifier(settings.jwt, keys.published_jwks),
        lifespan=[
            infrastructure_lifespan(
                NAME, database=settings.database, redis=settings.redis, broker=settings.broker
            ),
            outbox_lifespan(models.outbox),
            auth_lifespan,
        ],
        dependencies=dependencies(clock, trusted_proxy_hops=account.trusted_proxy_hops),
    )


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Everything auth's handlers use, built once by the app's lifespan (``app.state.resources``).

    Each field is the dependency of its name: a handler declares ``throttle:
    NamedDependency[LoginThrottle]`` and gets ``resources.throttle``.
    """

    settings: AuthSettings
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


def dependencies(clock: Clock, *, trusted_proxy_hops: int) -> dict[str, Provide]:
    """Every dependency auth's handlers may declare, by name: the fields of ``Resources``, the
    time every rule reads (``now``), and the client's address (``client_address``)."""

    def resource(name: str) -> Provide:
        def provide(state: State) -> Any:
            return getattr(state.resources, name)

        return Provide(provide, sync_to_thread=False)

    def provide_now() -> datetime:
        return clock()

    def provide_client_address(request: Request[Any, Any, Any]) -> str:
        return client_address(request, trusted_proxy_hops)

    return {
        **{field.name: resource(field.name) for field in fields(Resources)},
        "now": Provide(provide_now, sync_to_thread=False),
        "client_address": Provide(provide_client_address, sync_to_thread=False),
    }


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


SERVICE = ServiceRegistration(
    name=NAME,
    settings_type=AuthSettings,
    create_app=create_app,
    public_prefixes=("/v1/auth", "/api/auth", "/api/oauth", "/schema/auth"),
)

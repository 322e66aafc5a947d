"""The browser's round trip through Google as one use case: sign up, sign in, connect Gmail.

``GoogleAuthorization`` binds the flow of ``oauth_flow`` to this deployment (its redirect URIs,
scopes, state lifetime and frontend) and to the resources it needs, so that a handler passes only
what its request carries. ``legacy`` picks the legacy client's callback URI; the flow is the same.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import oauth_flow
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Clock, Purpose
from mailmerger_auth.ownership import AccountGuard
from mailmerger_auth.settings import GMAIL_METADATA, AuthSettings
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.errors import Invalid, Unavailable

CALLBACK_PATH = "/v1/auth/google/callback"
LEGACY_CALLBACK_PATH = "/api/oauth/oauth2callback"


def redirect_uri(settings: AuthSettings, *, legacy: bool) -> str:
    configured = settings.google.legacy_redirect_uri if legacy else settings.google.redirect_uri
    return configured or settings.http.public_url.rstrip("/") + (
        LEGACY_CALLBACK_PATH if legacy else CALLBACK_PATH
    )


def requested_scopes(settings: AuthSettings, *, metadata: bool) -> list[str]:
    if not metadata:
        return list(settings.google.scopes)
    if not settings.google.metadata_tier:
        raise Invalid("reading Gmail metadata is not offered by this deployment")
    return [*settings.google.scopes, *settings.google.metadata_scopes]


def declined_notice(declined: tuple[str, ...]) -> str:
    """What a declined Gmail scope costs the user, in plain words."""
    if GMAIL_METADATA in declined:
        return (
            "Gmail is connected for sending only: you did not allow MailMerger to read message "
            "headers, so replies and bounces are not detected and follow-ups stop only when you "
            "mark a recipient replied. Connect again and tick that permission to turn detection on."
        )
    return "Gmail is connected without: " + ", ".join(declined)


class GoogleAuthorization:
    """Start an authorization (``start``) and finish it when Google sends the browser back (``finish``)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        google: GoogleOAuth | None,
        issuer: TokenIssuer,
        sealer: Sealer,
        guard: AccountGuard,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> None:
        self.settings = settings
        self._google = google
        self._issuer = issuer
        self._sealer = sealer
        self._guard = guard
        self._sessions = sessions
        self._clock = clock

    @property
    def state_ttl(self) -> timedelta:
        """How long a started authorization (and the browser's binding cookie) lasts."""
        return timedelta(seconds=self.settings.auth.oauth_state_ttl_seconds)

    async def start(
        self,
        tx: AsyncSession,
        *,
        purpose: Purpose,
        ticket: str | None,
        metadata: bool,
        legacy: bool,
        browser_secret: str | None,
    ) -> oauth_flow.Authorization:
        """A new authorization: where to send the browser, and the secret its cookie must hold."""
        now = self._clock()
        user_id = (
            await oauth_flow.redeem_connect_ticket(tx, ticket, now=now)
            if purpose is Purpose.CONNECT and ticket
            else None
        )
        if purpose is Purpose.CONNECT and user_id is None:
            raise Invalid("connecting Gmail needs a connect ticket (ask for one while signed in)")
        return await oauth_flow.begin_authorization(
            tx,
            self._require_google(),
            purpose=purpose,
            user_id=user_id,
            redirect_uri=redirect_uri(self.settings, legacy=legacy),
            scopes=requested_scopes(self.settings, metadata=metadata),
            browser_secret=browser_secret,
            now=now,
            ttl=self.state_ttl,
        )

    async def finish(
        self,
        tx: AsyncSession,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        legacy: bool,
        browser_secret: str | None,
    ) -> str:
        """The frontend's oauth-finish URL, with the new session or the refusal in its fragment.

        An invalid state is refused outright (``InvalidAuthorizationState``): nothing proves the
        request came from our own authorization.
        """
        now = self._clock()
        pending = await oauth_flow.take_pending_authorization(
            self._sessions,
            state=state,
            browser_secret=browser_secret,
            redirect_uri=redirect_uri(self.settings, legacy=legacy),
            now=now,
        )
        try:
            completed = await oauth_flow.complete_authorization(
                tx,
                self._require_google(),
                self._issuer,
                self._sealer,
                pending,
                self._guard,
                code=code,
                error=error,
                now=now,
            )
        except oauth_flow.AuthorizationFailed as failure:
            fragment = {"error": failure.error, "error_description": failure.description}
        else:
            fragment = {"at": completed.session.access_token, "rt": completed.session.refresh_token}
            if completed.declined:
                # The user unticked a scope on Google's consent screen (granular consent): the
                # account is connected without it, and the frontend can say what that means.
                fragment["declined_scopes"] = " ".join(completed.declined)
                fragment["notice"] = declined_notice(completed.declined)
        return self.settings.auth.frontend_url.rstrip("/") + "/oauth-finish#" + urlencode(fragment)

    def _require_google(self) -> GoogleOAuth:
        if self._google is None:
            raise Unavailable("sign-in with Google is not configured (MM_GOOGLE_CLIENT_ID)")
        return self._google

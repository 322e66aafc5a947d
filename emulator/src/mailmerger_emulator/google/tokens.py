"""OAuth state: pending consents, authorization codes, grants and the tokens issued under them.

Invariants:
- A code is redeemed at most once, before it expires, by the client and redirect URI it was issued
  for, with the PKCE verifier matching its challenge (when one was sent).
- A *grant* is what one user allowed one client; every refresh and access token belongs to one.
  Revoking any of its tokens revokes the grant, with every token issued under it (Google: "if the
  token is an access token with a corresponding refresh token, the refresh token is also revoked").
- A grant keeps at most 100 refresh tokens; a new one silently invalidates the oldest.
- A refresh token also ends, as Google ends them (GMAIL_FACTS.md 2.5): after six months unused,
  when the user changes their password (tokens with Gmail scopes), and seven days after it was
  issued when the client is in "Testing" publishing status (tokens with more than sign-in scopes).
  Every ended token answers ``invalid_grant`` "Token has been expired or revoked.".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from mailmerger_emulator.google.errors import OAuthError

CODE_TTL_SECONDS = 600
CONSENT_TTL_SECONDS = 3600
MAX_REFRESH_TOKENS_PER_GRANT = 100
UNUSED_REFRESH_TOKEN_SECONDS = 183 * 86_400  # "has not been used for six months"
TESTING_REFRESH_TOKEN_SECONDS = 7 * 86_400
_SIGN_IN_SCOPES = frozenset(
    {
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
    }
)
_EXPIRED_OR_REVOKED = "Token has been expired or revoked."


def _has_gmail_scope(scopes: tuple[str, ...]) -> bool:
    return any(scope == "https://mail.google.com/" or "/auth/gmail." in scope for scope in scopes)


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """A validated ``/o/oauth2/v2/auth`` request, waiting for the user's decision."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    offline: bool
    prompt: frozenset[str]
    login_hint: str | None
    include_granted_scopes: bool


@dataclass(frozen=True, kw_only=True)
class IssuedCode:
    request: AuthorizationRequest
    user_email: str
    scopes: tuple[str, ...]
    with_refresh_token: bool
    expires_at: float


@dataclass(slots=True, kw_only=True)
class AccessToken:
    token: str
    client_id: str
    user_email: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(slots=True, kw_only=True)
class RefreshToken:
    token: str
    client_id: str
    user_email: str
    scopes: tuple[str, ...]
    last_used_at: float
    # When it ends regardless of use (a "Testing" client's 7 days), if it does.
    ends_at: float | None = None


@dataclass(kw_only=True)
class Grant:
    scopes: list[str] = field(default_factory=list)
    # Insertion-ordered, oldest first, so the 101st token evicts the oldest.
    refresh_tokens: dict[str, None] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)


@dataclass(frozen=True, kw_only=True)
class TokenSet:
    """What the token endpoint hands out; ``refresh_token`` only on an offline first consent."""

    access: AccessToken
    refresh_token: str | None
    nonce: str | None


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


class TokenStore:
    def __init__(
        self,
        clock: Callable[[], float],
        access_token_ttl: int,
        testing_clients: frozenset[str] = frozenset(),
    ) -> None:
        self._clock = clock
        self._testing_clients = testing_clients
        self._access_token_ttl = access_token_ttl
        self._pending: dict[str, tuple[AuthorizationRequest, float]] = {}
        self._codes: dict[str, IssuedCode] = {}
        self._grants: dict[tuple[str, str], Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}

    # --- consent ---------------------------------------------------------------------------

    def hold_for_consent(self, request: AuthorizationRequest) -> str:
        """Park a request while the consent page is shown; the id is the form's only credential."""
        consent_id = secrets.token_urlsafe(24)
        self._pending[consent_id] = (request, self._clock() + CONSENT_TTL_SECONDS)
        return consent_id

    def take_consent(self, consent_id: str) -> AuthorizationRequest | None:
        """The parked request, once: a consent form cannot be submitted twice."""
        held = self._pending.pop(consent_id, None)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]

    def granted_scopes(self, user_email: str, client_id: str) -> list[str]:
        grant = self._grants.get((user_email, client_id))
        return list(grant.scopes) if grant else []

    def issue_code(self, request: AuthorizationRequest, user_email: str) -> tuple[str, tuple[str, ...]]:
        """Record the user's approval; the code and the scopes it will grant."""
        grant = self._grants.setdefault((user_email, request.client_id), Grant())
        new_scopes = [scope for scope in request.scopes if scope not in grant.scopes]
        with_refresh = request.offline and (
            "consent" in request.prompt or bool(new_scopes) or not grant.refresh_tokens
        )
        grant.scopes.extend(new_scopes)
        scopes = tuple(grant.scopes) if request.include_granted_scopes else request.scopes
        code = "4/0" + secrets.token_urlsafe(48)
        self._codes[code] = IssuedCode(
            request=request,
            user_email=user_email,
            scopes=scopes,
            with_refresh_token=with_refresh,
            expires_at=self._clock() + CODE_TTL_SECONDS,
        )
        return code, scopes

    # --- token endpoint --------------------------------------------------------------------

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str | None, verifier: str | None
    ) -> TokenSet:
        issued = self._codes.pop(code, None)  # popped first: a failed redemption still burns it
        if issued is None:
            # Google tells a code it never issued from one that is spent or expired.
            description = "Bad Request" if code.startswith("4/") else "Malformed auth code."
            raise OAuthError(400, "invalid_grant", description)
        request = issued.request
        if issued.expires_at <= self._clock() or request.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        if redirect_uri != request.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if request.code_challenge is not None:
            if not verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if not _pkce_matches(verifier, request.code_challenge, request.code_challenge_method):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        grant = self._grants.setdefault((issued.user_email, client_id), Grant())
        refresh_token = None
        if issued.with_refresh_token:
            refresh_token = self._issue_refresh(grant, client_id, issued.user_email, issued.scopes)
        access = self._issue_access(grant, client_id, issued.user_email, issued.scopes)
        return TokenSet(access=access, refresh_token=refresh_token, nonce=request.nonce)

    def refresh(self, token: str, *, client_id: str, scope: str | None) -> AccessToken:
        refresh = self._refresh.get(token)
        if refresh is None or refresh.client_id != client_id:
            raise OAuthError(400, "invalid_grant", _EXPIRED_OR_REVOKED)
        now = self._clock()
        if now - refresh.last_used_at > UNUSED_REFRESH_TOKEN_SECONDS or (
            refresh.ends_at is not None and now >= refresh.ends_at
        ):
            self._forget_refresh(refresh)
            raise OAuthError(400, "invalid_grant", _EXPIRED_OR_REVOKED)
        refresh.last_used_at = now
        scopes = refresh.scopes
        if scope is not None:
            narrowed = tuple(scope.split())
            if not set(narrowed) <= set(scopes):
                raise OAuthError(400, "invalid_scope", "Some requested scopes were invalid.")
            scopes = narrowed
        grant = self._grants[(refresh.user_email, client_id)]
        return self._issue_access(grant, client_id, refresh.user_email, scopes)

    def revoke(self, token: str) -> bool:
        """Revoke the grant behind an access or refresh token; False when the token is unknown."""
        owner = self._refresh.get(token) or self._access.get(token)
        if owner is None:
            return False
        grant = self._grants.pop((owner.user_email, owner.client_id))
        for refresh_token in grant.refresh_tokens:
            self._refresh.pop(refresh_token, None)
        for access_token in grant.access_tokens:
            self._access.pop(access_token, None)
        return True

    def password_changed(self, user_email: str) -> int:
        """The user changed their password: their refresh tokens with Gmail scopes end.

        Returns how many ended."""
        ended = [
            refresh
            for refresh in self._refresh.values()
            if refresh.user_email == user_email and _has_gmail_scope(refresh.scopes)
        ]
        for refresh in ended:
            self._forget_refresh(refresh)
        return len(ended)

    def _forget_refresh(self, refresh: RefreshToken) -> None:
        self._refresh.pop(refresh.token, None)
        grant = self._grants.get((refresh.user_email, refresh.client_id))
        if grant is not None:
            grant.refresh_tokens.pop(refresh.token, None)

    # --- resource servers ------------------------------------------------------------------

    def access(self, token: str) -> AccessToken | None:
        """The live access token, or None when unknown, revoked or expired."""
        found = self._access.get(token)
        if found is None:
            return None
        if found.expires_at <= self._clock():
            del self._access[token]
            return None
        return found

    def _issue_access(
        self, grant: Grant, client_id: str, user_email: str, scopes: tuple[str, ...]
    ) -> AccessToken:
        # Forget the grant's expired tokens here, so a long run that refreshes hourly stays bounded.
        now = self._clock()
        for expired in [
            t for t in grant.access_tokens if t not in self._access or self._access[t].expires_at <= now
        ]:
            grant.access_tokens.discard(expired)
            self._access.pop(expired, None)
        access = AccessToken(
            token="ya29." + secrets.token_urlsafe(64),
            client_id=client_id,
            user_email=user_email,
            scopes=frozenset(scopes),
            expires_at=now + self._access_token_ttl,
        )
        self._access[access.token] = access
        grant.access_tokens.add(access.token)
        return access

    def seed_refresh(self, token: str, *, client_id: str, user_email: str, scopes: tuple[str, ...]) -> None:
        """A grant that exists from the start, with a refresh token known in advance (the system's
        own mail account in development, which nobody could click a consent page for)."""
        grant = self._grants.setdefault((user_email, client_id), Grant())
        grant.scopes.extend(scope for scope in scopes if scope not in grant.scopes)
        self._issue_refresh(grant, client_id, user_email, scopes, token=token)

    def _issue_refresh(
        self,
        grant: Grant,
        client_id: str,
        user_email: str,
        scopes: tuple[str, ...],
        *,
        token: str | None = None,
    ) -> str:
        token = token or "1//0" + secrets.token_urlsafe(72)
        now = self._clock()
        testing = client_id in self._testing_clients and not set(scopes) <= _SIGN_IN_SCOPES
        self._refresh[token] = RefreshToken(
            token=token,
            client_id=client_id,
            user_email=user_email,
            scopes=scopes,
            last_used_at=now,
            ends_at=now + TESTING_REFRESH_TOKEN_SECONDS if testing else None,
        )
        grant.refresh_tokens[token] = None
        if len(grant.refresh_tokens) > MAX_REFRESH_TOKENS_PER_GRANT:
            oldest = next(iter(grant.refresh_tokens))
            del grant.refresh_tokens[oldest]
            del self._refresh[oldest]
        return token
